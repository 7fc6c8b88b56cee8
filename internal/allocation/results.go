package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/atomicfile"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
)

// defaultResultsRetention is Config.ResultsRetention's default.
const defaultResultsRetention = 24 * time.Hour

// keptFile describes a kept allocation's results, in its directory
// <ResultsDir>/<deployment>/<allocation name>/ (a volume name cannot
// start with a dot).
const keptFile = ".result.json"

// keptResults is what keptFile holds.
type keptResults struct {
	Deployment string `json:"deployment"`
	Allocation string `json:"allocation"`
	// Orchestrator and Owner (the root of the allocation's chain: the user
	// who deployed it) may fetch the results.
	Orchestrator identity.DID          `json:"orchestrator"`
	Owner        identity.DID          `json:"owner,omitempty"`
	Kept         time.Time             `json:"kept"`
	Volumes      map[string]keptVolume `json:"volumes"`
}

type keptVolume struct {
	Size int64 `json:"size,omitempty"` // a loop-mounted image of this size beside the directory
}

// ownerOf is the root of the chain the allocation was started with (the
// user who deployed it), if any.
func ownerOf(rec *Record) identity.DID {
	if strings.TrimSpace(rec.Chain) == "" {
		return ""
	}
	c, err := cap.DecodeChain([]byte(strings.TrimSpace(rec.Chain)))
	if err != nil {
		return ""
	}
	return c.Root()
}

// keptDir is where the results of allocation name of deployment are kept.
func (m *Manager) keptDir(deployment, name string) string {
	return filepath.Join(m.cfg.ResultsDir, deployment, name)
}

// releaseVolumes is part of removing an allocation: its local out volumes
// that hold something are moved to the results directory (kept for
// ResultsRetention), every other volume is unmounted and deleted.
func (m *Manager) releaseVolumes(a *alloc, rec Record) error {
	var errs []error
	var keep []string
	for _, name := range sortedKeys(rec.Spec.Volumes) {
		v := rec.Spec.Volumes[name]
		dir := a.volumeDir(name)
		if _, err := os.Stat(dir); err != nil {
			continue // never made
		}
		if kept(v) && rec.Ran {
			keep = append(keep, name)
			continue
		}
		if err := m.removeDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: remove: %w", name, err))
		}
	}
	if len(keep) == 0 {
		return errors.Join(errs...)
	}
	dest := m.keptDir(rec.Deployment, rec.Name)
	if err := m.dropKept(dest); err != nil { // an earlier attempt's
		errs = append(errs, err)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return errors.Join(append(errs, fmt.Errorf("results: %w", err))...)
	}
	info := keptResults{Deployment: rec.Deployment, Allocation: rec.Name, Orchestrator: rec.Orchestrator.DID,
		Owner: ownerOf(&rec), Kept: m.cfg.Now(), Volumes: map[string]keptVolume{}}
	for _, name := range keep {
		v := rec.Spec.Volumes[name]
		src, dst := a.volumeDir(name), filepath.Join(dest, name)
		if err := m.moveVolume(src, dst, int64(v.Size)); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: keep: %w", name, err))
			if err := m.removeDir(src); err != nil {
				errs = append(errs, fmt.Errorf("volume %s: remove: %w", name, err))
			}
			continue
		}
		info.Volumes[name] = keptVolume{Size: int64(v.Size)}
	}
	b, err := json.Marshal(info)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(dest, keptFile), b, 0o600)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("results: %w", err))
	}
	m.log.Info("results kept", "deployment_id", rec.Deployment, "allocation", rec.Name, "volumes", len(info.Volumes),
		"until", info.Kept.Add(m.cfg.ResultsRetention))
	return errors.Join(errs...)
}

// moveVolume moves a volume's directory (and its image, if size > 0) to
// dst, mounted again there.
func (m *Manager) moveVolume(src, dst string, size int64) error {
	if size > 0 && m.cfg.Mounter != nil {
		if err := m.cfg.Mounter.Unmount(src); err != nil {
			return err
		}
		if err := os.Rename(src+".img", dst+".img"); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		return m.cfg.Mounter.Mount(dst, size)
	}
	return os.Rename(src, dst)
}

// dropKept deletes a kept allocation's results directory.
func (m *Manager) dropKept(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, keptFile))
	var info keptResults
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	var errs []error
	if err == nil {
		for name := range info.Volumes {
			if err := m.removeDir(filepath.Join(dir, name)); err != nil {
				errs = append(errs, err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("results: unreadable description, removing", "dir", dir, "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// kept lists the kept results of deployment (every deployment: "").
func (m *Manager) keptList(deployment string) []keptResults {
	pattern := filepath.Join(m.cfg.ResultsDir, "*", "*", keptFile)
	if deployment != "" {
		pattern = filepath.Join(m.cfg.ResultsDir, deployment, "*", keptFile)
	}
	files, _ := filepath.Glob(pattern)
	var out []keptResults
	for _, f := range files {
		b, err := os.ReadFile(f)
		var info keptResults
		if err == nil {
			err = json.Unmarshal(b, &info)
		}
		if err != nil {
			m.log.Warn("results: unreadable description", "file", f, "err", err)
			continue
		}
		out = append(out, info)
	}
	return out
}

// SweepResults removes the kept results older than ResultsRetention and
// returns how many allocations' results it removed. Resume runs it, and
// then every tenth of the retention (at most hourly).
func (m *Manager) SweepResults() int {
	now := m.cfg.Now()
	n := 0
	for _, info := range m.keptList("") {
		if now.Sub(info.Kept) < m.cfg.ResultsRetention {
			continue
		}
		dir := m.keptDir(info.Deployment, info.Allocation)
		if err := m.dropKept(dir); err != nil {
			m.log.Warn("results: remove", "dir", dir, "err", err)
			continue
		}
		os.Remove(filepath.Dir(dir)) // the deployment's, once empty
		n++
		m.log.Info("results removed after their retention", "deployment_id", info.Deployment, "allocation", info.Allocation)
	}
	return n
}

// sweepLoop runs SweepResults periodically until the manager closes.
func (m *Manager) sweepLoop() {
	every := min(max(m.cfg.ResultsRetention/10, time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.life.Done():
			return
		case <-t.C:
			m.SweepResults()
		}
	}
}

// Results answers deployproto.BehaviorResults for from, the invoking
// actor: the deployment's orchestrator (as recorded by its allocations
// here) or the user who deployed it (the root of their chains). Anyone
// else gets an *actor.Error of code actor.CodeDenied.
func (m *Manager) Results(ctx context.Context, from identity.DID, req deployproto.ResultsRequest) (deployproto.ResultsReply, error) {
	if err := deployproto.CheckName("deployment", req.Deployment); err != nil {
		return deployproto.ResultsReply{}, err
	}
	if req.Allocation != "" {
		if err := deployproto.CheckName("allocation", req.Allocation); err != nil {
			return deployproto.ResultsReply{}, err
		}
	}
	m.mu.Lock()
	var live []*alloc
	for _, a := range m.allocs {
		if a.rec.Deployment == req.Deployment { // Deployment never changes
			live = append(live, a)
		}
	}
	m.mu.Unlock()
	recs := make([]Record, len(live))
	for i, a := range live {
		recs[i] = a.record()
	}
	keptRes := m.keptList(req.Deployment)
	if len(recs) == 0 && len(keptRes) == 0 {
		return deployproto.ResultsReply{}, fmt.Errorf("results: this node holds nothing of deployment %s", req.Deployment)
	}
	allowed := false
	for i := range recs {
		allowed = allowed || from == recs[i].Orchestrator.DID || from == ownerOf(&recs[i])
	}
	for _, k := range keptRes {
		allowed = allowed || from == k.Orchestrator || from == k.Owner
	}
	allowed = allowed && from != ""
	if !allowed {
		return deployproto.ResultsReply{}, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("results of deployment %s: %s is neither its orchestrator nor the user who deployed it", req.Deployment, from)}
	}
	switch req.Op {
	case deployproto.ResultsList:
		return deployproto.ResultsReply{Volumes: m.listResults(req.Allocation, recs, keptRes)}, nil
	case deployproto.ResultsManifest, deployproto.ResultsChunk:
	default:
		return deployproto.ResultsReply{}, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("results: op %q is not list, manifest or chunk", req.Op)}
	}
	if m.cfg.Results == nil {
		return deployproto.ResultsReply{}, errors.New("results: this node cannot serve result files")
	}
	dir, err := m.resultDir(req, live, recs, keptRes)
	if err != nil {
		return deployproto.ResultsReply{}, err
	}
	if req.Op == deployproto.ResultsManifest {
		return m.manifestPage(dir, req)
	}
	if req.Length <= 0 || req.Length > deployproto.MaxResultsChunk || req.Offset < 0 {
		return deployproto.ResultsReply{}, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("results: chunk of %d bytes at %d: want 1-%d bytes at an offset ≥ 0", req.Length, req.Offset, deployproto.MaxResultsChunk)}
	}
	data, err := m.cfg.Results.Chunk(dir, req.Path, req.Offset, req.Length)
	if err != nil {
		return deployproto.ResultsReply{}, fmt.Errorf("results: volume %s: %w", req.Volume, err)
	}
	return deployproto.ResultsReply{Data: data}, nil
}

// resultDir finds the directory of the local out volume a manifest or
// chunk request names: the live allocation's, else the kept one.
func (m *Manager) resultDir(req deployproto.ResultsRequest, live []*alloc, recs []Record, keptRes []keptResults) (string, error) {
	if req.Allocation == "" || req.Volume == "" {
		return "", &actor.Error{Code: actor.CodeBadEnvelope, Msg: "results: name the allocation and the volume"}
	}
	for i, rec := range recs {
		if rec.Name != req.Allocation {
			continue
		}
		v, ok := rec.Spec.Volumes[req.Volume]
		switch {
		case !ok:
			return "", fmt.Errorf("results: allocation %s has no volume %s", req.Allocation, req.Volume)
		case kindOf(v) == ensemble.S3:
			return "", fmt.Errorf("results: volume %s is an s3 volume: its objects are in bucket %s (list says where)", req.Volume, v.S3.Bucket)
		case !kept(v):
			return "", fmt.Errorf("results: volume %s of allocation %s is not a local out volume", req.Volume, req.Allocation)
		}
		dir := live[i].volumeDir(req.Volume)
		if rec.Ran { // mounted again after a reboot; a volume never made is not made here
			if err := m.mountDir(dir, int64(v.Size)); err != nil {
				return "", fmt.Errorf("results: volume %s: mount: %w", req.Volume, err)
			}
		}
		return dir, nil
	}
	for _, k := range keptRes {
		if k.Allocation != req.Allocation {
			continue
		}
		kv, ok := k.Volumes[req.Volume]
		if !ok {
			return "", fmt.Errorf("results: allocation %s kept no volume %s", req.Allocation, req.Volume)
		}
		dir := filepath.Join(m.keptDir(k.Deployment, k.Allocation), req.Volume)
		if err := m.mountDir(dir, kv.Size); err != nil { // again, after a reboot
			return "", fmt.Errorf("results: volume %s: mount: %w", req.Volume, err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("results: no allocation %s of deployment %s here", req.Allocation, req.Deployment)
}

// listResults lists the out volumes of the live allocations and the kept
// results (of allocation only, if given).
func (m *Manager) listResults(allocation string, recs []Record, keptRes []keptResults) []deployproto.ResultVolume {
	out := []deployproto.ResultVolume{}
	seen := map[string]bool{}
	for _, rec := range recs {
		if allocation != "" && rec.Name != allocation {
			continue
		}
		for _, name := range sortedKeys(rec.Spec.Volumes) {
			v := rec.Spec.Volumes[name]
			rv := deployproto.ResultVolume{Allocation: rec.Name, Volume: name, Kind: kindOf(v), Mode: v.Mode}
			switch {
			case kept(v):
				rv.State = deployproto.ResultLive
				seen[rec.Name+"/"+name] = true
			case uploaded(v):
				rv.Bucket, rv.Endpoint, rv.Region = v.S3.Bucket, endpointOf(s3Location(v, "")), v.S3.Region
				rv.Prefix, rv.State = outPrefix(&rec, v), deployproto.ResultPending
				if st, ok := rec.Outputs[name]; ok {
					rv.State, rv.Error, rv.Prefix, rv.Objects, rv.Bytes = st.State, st.Error, st.Prefix, st.Objects, st.Bytes
				}
			default:
				continue
			}
			switch {
			case !rec.State.Terminal():
				rv.Reason = fmt.Sprintf("the allocation is %s", rec.State)
			case rv.State == deployproto.ResultFailed:
				rv.Reason = "the upload failed: " + rv.Error
			case rv.State == deployproto.ResultPending || rv.State == deployproto.ResultUploading:
				rv.Reason = "not uploaded yet"
			case kept(v) && !rec.Ran:
				rv.Reason = "the allocation never ran"
			default:
				rv.Ready = true
			}
			out = append(out, rv)
		}
	}
	for _, k := range keptRes {
		if allocation != "" && k.Allocation != allocation {
			continue
		}
		for _, name := range sortedKeys(k.Volumes) {
			if seen[k.Allocation+"/"+name] {
				continue // a newer attempt runs here
			}
			out = append(out, deployproto.ResultVolume{Allocation: k.Allocation, Volume: name, Kind: ensemble.Local,
				Mode: ensemble.ModeOut, State: deployproto.ResultKept, Ready: true, Expires: k.Kept.Add(m.cfg.ResultsRetention)})
		}
	}
	slices.SortFunc(out, func(x, y deployproto.ResultVolume) int {
		return strings.Compare(x.Allocation+"/"+x.Volume, y.Allocation+"/"+y.Volume)
	})
	return out
}

// manifestTTL is how long a manifest built for its first page serves the
// next pages.
const manifestTTL = time.Minute

type builtManifest struct {
	at  time.Time
	man deployproto.ResultFiles
}

// manifestPage answers one page of a volume's manifest: the first page
// builds it (hashing every file), the next ones come from that build.
func (m *Manager) manifestPage(dir string, req deployproto.ResultsRequest) (deployproto.ResultsReply, error) {
	if req.Offset < 0 {
		return deployproto.ResultsReply{}, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("results: manifest from file %d", req.Offset)}
	}
	m.manMu.Lock()
	b, ok := m.manifests[dir]
	m.manMu.Unlock()
	if req.Offset == 0 || !ok || time.Since(b.at) > manifestTTL {
		man, err := m.cfg.Results.Manifest(dir)
		if err != nil {
			return deployproto.ResultsReply{}, fmt.Errorf("results: volume %s: manifest: %w", req.Volume, err)
		}
		b = builtManifest{at: time.Now(), man: man}
		m.manMu.Lock()
		for k, old := range m.manifests { // drop the stale ones
			if time.Since(old.at) > manifestTTL {
				delete(m.manifests, k)
			}
		}
		m.manifests[dir] = b
		m.manMu.Unlock()
	}
	files := b.man.Files
	if req.Offset > int64(len(files)) {
		return deployproto.ResultsReply{}, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("results: manifest from file %d of %d", req.Offset, len(files))}
	}
	page := deployproto.ResultFiles{Files: []deployproto.ResultFile{}, Bytes: b.man.Bytes}
	size := 0
	i := int(req.Offset)
	for ; i < len(files) && (size == 0 || size+len(files[i].Path)+128 <= deployproto.MaxManifestPage); i++ {
		page.Files = append(page.Files, files[i])
		size += len(files[i].Path) + 128
	}
	reply := deployproto.ResultsReply{Manifest: &page}
	if i < len(files) {
		reply.NextFile = int64(i)
	}
	return reply, nil
}

// unmountIdle unmounts, at Close, the size-bounded volumes that no
// workload uses once this process is gone: those of the allocations in all
// that ended or whose executor cannot outlive the process (no Lister), and
// the kept results. Their images stay; they are mounted again when needed
// (a start, an upload, a results request).
func (m *Manager) unmountIdle(all []*alloc) {
	if m.cfg.Mounter == nil {
		return
	}
	unmount := func(dir string) {
		if err := m.cfg.Mounter.Unmount(dir); err != nil {
			m.log.Warn("unmount volume", "dir", dir, "err", err)
		}
	}
	for _, a := range all {
		rec := a.record()
		_, outlives := a.ex.(executor.Lister)
		if !rec.State.Terminal() && outlives {
			continue
		}
		for name, v := range rec.Spec.Volumes {
			if v.Size > 0 && kindOf(v) != ensemble.URL {
				unmount(a.volumeDir(name))
			}
		}
	}
	for _, k := range m.keptList("") {
		for name, kv := range k.Volumes {
			if kv.Size > 0 {
				unmount(filepath.Join(m.keptDir(k.Deployment, k.Allocation), name))
			}
		}
	}
}
