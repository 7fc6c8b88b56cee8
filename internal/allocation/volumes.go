package allocation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/storage"
)

// The storage the Manager uses for volumes beyond plain directories. The
// node wires the real packages (storage/local, storage/s3, storage/web,
// storage/transfer) behind these.

// Mounter makes a volume's directory, of a bounded size when size > 0
// (storage/local).
type Mounter interface {
	// Mount makes dir a volume of at most size bytes (0: a plain
	// directory); mounting a mounted one does nothing, and an unmounted
	// one with data (after a restart) is mounted again with its data.
	Mount(dir string, size int64) error
	// Unmount unmounts dir, keeping its data.
	Unmount(dir string) error
	// Remove unmounts and deletes dir and its data.
	Remove(dir string) error
}

// S3Location is where an s3 volume's objects are.
type S3Location struct{ Endpoint, Region, Bucket, Prefix string }

// TransferStats sums up one S3 transfer.
type TransferStats struct {
	Objects     int
	Bytes       int64
	ResentBytes int64 // bytes sent again after a resume
	Resumed     bool
}

// ObjectStore moves a directory from and to an S3 prefix (storage/s3).
type ObjectStore interface {
	// Download stages every object under loc into dir, each checked.
	Download(ctx context.Context, loc S3Location, cred storage.Credentials, dir string, p storage.ProgressFunc) (TransferStats, error)
	// Upload puts dir's files under loc; journal is a file that lets an
	// interrupted upload resume (and unchanged files be skipped).
	Upload(ctx context.Context, loc S3Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (TransferStats, error)
}

// Fetcher downloads one file over HTTP(S) into dir/file, checked by its
// SHA-256 (storage/web); maxSize 0 means the fetcher's default bound.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL, sha256hex, dir, file string, maxSize int64, p storage.ProgressFunc) error
}

// ResultReader reads a result volume's files for BehaviorResults
// (storage/transfer): its manifest, and chunks of its files (refusing
// paths that leave dir).
type ResultReader interface {
	Manifest(dir string) (deployproto.ResultFiles, error)
	Chunk(dir, path string, off int64, n int) ([]byte, error)
}

// defaultProgressEvery is how often a long transfer writes its progress
// to the allocation's log.
const defaultProgressEvery = 5 * time.Second

// OutputState is the upload state of an s3 out volume, kept in the Record.
type OutputState struct {
	State   string    `json:"state"` // deployproto.ResultUploading, ResultUploaded or ResultFailed
	Error   string    `json:"error,omitempty"`
	Prefix  string    `json:"prefix"` // the prefix actually used
	Objects int       `json:"objects,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	Time    time.Time `json:"time"`
}

// FinalState is the end of an allocation that waits for the upload of its
// out volumes: it is reported once they are uploaded (a restart of the
// node resumes the upload).
type FinalState struct {
	State   deployproto.AllocationState `json:"state"`
	Result  *executor.Result            `json:"result,omitempty"`
	Message string                      `json:"message,omitempty"`
}

// volumeDir is where volume name lives on the host.
func (a *alloc) volumeDir(name string) string { return filepath.Join(a.dir, "volumes", name) }

// kindOf is v's kind with the default filled in.
func kindOf(v ensemble.Volume) ensemble.VolumeKind {
	if v.Kind == "" {
		return ensemble.Local
	}
	return v.Kind
}

// readOnly reports whether v is mounted read-only: asked for, an input,
// or a url.
func readOnly(v ensemble.Volume) bool {
	return v.ReadOnly || v.Mode == ensemble.ModeIn || kindOf(v) == ensemble.URL
}

// stagedIn reports whether v is filled before the start.
func stagedIn(v ensemble.Volume) bool {
	switch kindOf(v) {
	case ensemble.URL:
		return true
	case ensemble.S3:
		return v.Mode == ensemble.ModeIn || v.Mode == ensemble.ModeInOut
	}
	return false
}

// uploaded reports whether v is an s3 volume uploaded after the exit.
func uploaded(v ensemble.Volume) bool {
	return kindOf(v) == ensemble.S3 && (v.Mode == ensemble.ModeOut || v.Mode == ensemble.ModeInOut)
}

// kept reports whether v is a local result, kept after the allocation.
func kept(v ensemble.Volume) bool { return kindOf(v) == ensemble.Local && v.Mode == ensemble.ModeOut }

// outputs returns the names of the spec's s3 volumes uploaded after the
// exit, in order.
func outputs(s *deployproto.AllocationSpec) []string {
	var out []string
	for _, name := range sortedKeys(s.Volumes) {
		if uploaded(s.Volumes[name]) {
			out = append(out, name)
		}
	}
	return out
}

// mountDir makes dir a volume of size bytes through the Mounter (a plain
// directory without one).
func (m *Manager) mountDir(dir string, size int64) error {
	if m.cfg.Mounter != nil {
		return m.cfg.Mounter.Mount(dir, size)
	}
	if size > 0 {
		return errors.New("this node cannot bound a volume's size (no volume driver)")
	}
	return os.MkdirAll(dir, 0o755)
}

// removeDir deletes a volume's directory (and its image).
func (m *Manager) removeDir(dir string) error {
	if m.cfg.Mounter != nil {
		return m.cfg.Mounter.Remove(dir)
	}
	return os.RemoveAll(dir)
}

// prepareVolumes mounts every volume (again after a restart) and, the
// first time, stages the inputs, in name order. A failure is a
// *storage.VolumeError naming the volume. Staging done is recorded, so a
// restart does not stage twice.
func (a *alloc) prepareVolumes(ctx context.Context) error {
	rec := a.record()
	names := sortedKeys(rec.Spec.Volumes)
	for _, name := range names {
		v := rec.Spec.Volumes[name]
		dir := a.volumeDir(name)
		size := int64(v.Size)
		if kindOf(v) == ensemble.URL {
			size = 0
		}
		if err := a.m.mountDir(dir, size); err != nil {
			return &storage.VolumeError{Volume: name, Op: "mount", Err: err}
		}
	}
	if rec.Staged {
		return nil
	}
	staged := false
	for _, name := range names {
		v := rec.Spec.Volumes[name]
		if !stagedIn(v) {
			continue
		}
		staged = true
		if err := a.stage(ctx, &rec, name, v); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ve *storage.VolumeError
			if errors.As(err, &ve) {
				return err
			}
			op := "stage"
			if kindOf(v) == ensemble.URL {
				op = "fetch"
			}
			return &storage.VolumeError{Volume: name, Op: op, Err: err}
		}
	}
	a.mu.Lock()
	a.rec.Staged = true
	a.mu.Unlock()
	if staged {
		// Written now, so a restart does not stage again; with nothing
		// staged, a restart would stage nothing, and the next transition
		// writes the flag.
		a.persist()
	}
	return nil
}

// stage fills one input volume.
func (a *alloc) stage(ctx context.Context, rec *Record, name string, v ensemble.Volume) error {
	dir := a.volumeDir(name)
	start := time.Now()
	switch kindOf(v) {
	case ensemble.URL:
		if a.m.cfg.Fetcher == nil {
			return errors.New("this node cannot fetch url volumes")
		}
		a.dmsLine("volume %s: fetching from %s", name, hostOf(v.URL))
		p := a.progress(name, "fetched")
		if err := a.m.cfg.Fetcher.Fetch(ctx, v.URL, v.SHA256, dir, v.File, 0, p.update); err != nil {
			return err
		}
		a.dmsLine("volume %s: fetched %s in %s", name, p.done(), time.Since(start).Round(time.Millisecond))
	case ensemble.S3:
		if a.m.cfg.ObjectStore == nil {
			return errors.New("this node cannot reach s3 volumes")
		}
		cred, err := a.credentials(rec, name, v)
		if err != nil {
			return &storage.VolumeError{Volume: name, Op: "credentials", Err: err}
		}
		loc := s3Location(v, v.S3.Prefix)
		a.dmsLine("volume %s: staging s3://%s/%s from %s", name, loc.Bucket, loc.Prefix, endpointOf(loc))
		p := a.progress(name, "staged")
		st, err := a.m.cfg.ObjectStore.Download(ctx, loc, cred, dir, p.update)
		if err != nil {
			return err
		}
		a.dmsLine("volume %s: staged %s, %s in %s", name, objectsText(st.Objects), sizeText(st.Bytes), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// s3Location is v's location with prefix.
func s3Location(v ensemble.Volume, prefix string) S3Location {
	s := v.S3
	return S3Location{Endpoint: s.Endpoint, Region: s.Region, Bucket: s.Bucket, Prefix: prefix}
}

// endpointOf names the server of loc for messages.
func endpointOf(loc S3Location) string {
	if loc.Endpoint != "" {
		return loc.Endpoint
	}
	region := loc.Region
	if region == "" {
		region = "us-east-1"
	}
	return "https://s3." + region + ".amazonaws.com"
}

// outPrefix is the prefix an out volume's objects go to: the ensemble's,
// else <deployment>/<allocation>/<attempt>/.
func outPrefix(rec *Record, v ensemble.Volume) string {
	if v.S3 != nil && v.S3.Prefix != "" {
		return v.S3.Prefix
	}
	attempt := max(rec.Spec.Attempt, 1)
	return fmt.Sprintf("%s/%s/%d/", rec.Deployment, rec.Name, attempt)
}

// credentials opens the keys of s3 volume name: the operator's, by name,
// or the user's secret, sealed to this node's key. Its errors name the
// source, never a key.
func (a *alloc) credentials(rec *Record, name string, v ensemble.Volume) (storage.Credentials, error) {
	c := v.S3.Credentials
	switch {
	case c == nil || (c.Provider == "" && c.Secret == ""):
		return storage.Credentials{}, nil
	case c.Provider != "":
		cred, ok := a.m.cfg.Credentials[c.Provider]
		if !ok {
			return storage.Credentials{}, fmt.Errorf("credentials.provider %q: this node's operator offers no credentials by that name", c.Provider)
		}
		return cred, nil
	}
	sealed, ok := rec.Secrets[c.Secret]
	if !ok {
		return storage.Credentials{}, fmt.Errorf("credentials.secret %q: the secret was not given with the deployment", c.Secret)
	}
	if a.m.cfg.NodeKey == nil {
		return storage.Credentials{}, fmt.Errorf("credentials.secret %q: this node has no key to open secrets", c.Secret)
	}
	plain, err := a.m.cfg.NodeKey.OpenSealed(sealed, deployproto.SecretContext(rec.Deployment, c.Secret))
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("credentials.secret %q: does not open with this node's key (sealed to another node or deployment)", c.Secret)
	}
	cred, err := storage.ParseCredentials(plain)
	clear(plain)
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("credentials.secret %q: %w", c.Secret, err)
	}
	return cred, nil
}

// progressLog writes a transfer's progress to the allocation's log at
// most every progressEvery.
type progressLog struct {
	a    *alloc
	name string
	verb string

	mu   sync.Mutex
	last time.Time        // guarded by mu
	p    storage.Progress // guarded by mu
}

func (a *alloc) progress(name, verb string) *progressLog {
	return &progressLog{a: a, name: name, verb: verb, last: time.Now()}
}

func (l *progressLog) update(p storage.Progress) {
	l.mu.Lock()
	l.p = p
	due := time.Since(l.last) >= l.a.m.progressEvery
	if due {
		l.last = time.Now()
	}
	l.mu.Unlock()
	if due {
		l.a.dmsLine("volume %s: %s %s", l.name, l.verb, progressText(p))
	}
}

// done describes what was transferred.
func (l *progressLog) done() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sizeText(l.p.Bytes)
}

func progressText(p storage.Progress) string {
	s := sizeText(p.Bytes)
	if p.TotalBytes > 0 {
		s += " of " + sizeText(p.TotalBytes)
	}
	if p.TotalObjects > 0 {
		s += fmt.Sprintf(" (%d of %d objects)", p.Objects, p.TotalObjects)
	}
	return s
}

// sizeText prints n bytes in binary units.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// objectsText is "1 object", "2 objects".
func objectsText(n int) string {
	if n == 1 {
		return "1 object"
	}
	return fmt.Sprintf("%d objects", n)
}

// hostOf names the server of a URL for the log (never its path or
// query, which may hold secrets).
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "its server"
}

// uploadOutputs uploads every s3 out volume, in name order; the first
// failure is returned as a *storage.VolumeError. It runs on ctx (the
// allocation's life: a stop does not cut it short, a removal does).
func (a *alloc) uploadOutputs(ctx context.Context) error {
	rec := a.record()
	for _, name := range outputs(&rec.Spec) {
		if err := a.uploadOne(ctx, name, false); err != nil {
			return err
		}
	}
	return nil
}

// uploadOne uploads out volume name; periodic marks a sync while running
// (its progress is not logged).
func (a *alloc) uploadOne(ctx context.Context, name string, periodic bool) error {
	rec := a.record()
	v := rec.Spec.Volumes[name]
	prefix := outPrefix(&rec, v)
	failOp := func(op string, err error) error {
		if ctx.Err() == nil {
			a.setOutput(name, OutputState{State: deployproto.ResultFailed, Error: err.Error(), Prefix: prefix, Time: a.m.cfg.Now()})
		}
		return &storage.VolumeError{Volume: name, Op: op, Err: err}
	}
	fail := func(err error) error { return failOp("upload", err) }
	if a.m.cfg.ObjectStore == nil {
		return fail(errors.New("this node cannot reach s3 volumes"))
	}
	cred, err := a.credentials(&rec, name, v)
	if err != nil {
		return failOp("credentials", err)
	}
	dir := a.volumeDir(name)
	if err := a.m.mountDir(dir, int64(v.Size)); err != nil { // again, after a restart
		return fail(err)
	}
	loc := s3Location(v, prefix)
	a.setOutput(name, OutputState{State: deployproto.ResultUploading, Prefix: prefix, Time: a.m.cfg.Now()})
	start := time.Now()
	var p storage.ProgressFunc
	if !periodic {
		a.dmsLine("volume %s: uploading to s3://%s/%s at %s", name, loc.Bucket, prefix, endpointOf(loc))
		p = a.progress(name, "uploaded").update
	}
	st, err := a.m.cfg.ObjectStore.Upload(ctx, loc, cred, dir, filepath.Join(a.dir, "upload-"+name+".journal"), p)
	if err != nil {
		return fail(err)
	}
	a.setOutput(name, OutputState{State: deployproto.ResultUploaded, Prefix: prefix, Objects: st.Objects, Bytes: st.Bytes, Time: a.m.cfg.Now()})
	if !periodic {
		resumed := ""
		if st.Resumed {
			resumed = fmt.Sprintf(" (resumed; %s sent again)", sizeText(st.ResentBytes))
		}
		a.dmsLine("volume %s: uploaded %s, %s in %s%s", name, objectsText(st.Objects), sizeText(st.Bytes), time.Since(start).Round(time.Millisecond), resumed)
	}
	return nil
}

// setOutput records the upload state of out volume name.
func (a *alloc) setOutput(name string, st OutputState) {
	a.mu.Lock()
	if a.rec.Outputs == nil {
		a.rec.Outputs = map[string]OutputState{}
	}
	a.rec.Outputs[name] = st
	a.mu.Unlock()
	a.persist()
}

// syncOutputs uploads the out volumes that ask for it every SyncEvery
// while ctx lasts (a service's run); failures are logged, not fatal.
func (a *alloc) syncOutputs(ctx context.Context) (wait func()) {
	rec := a.record()
	var wg sync.WaitGroup
	for _, name := range outputs(&rec.Spec) {
		every := rec.Spec.Volumes[name].S3.SyncEvery
		if every <= 0 {
			continue
		}
		wg.Add(1)
		if !a.m.goTracked(func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := a.uploadOne(ctx, name, true); err != nil && ctx.Err() == nil {
					a.dmsLine("%v (will try again in %s)", err, every)
				}
			}
		}) {
			wg.Done()
		}
	}
	return wg.Wait
}

// conclude ends the allocation in state with the last run's result res:
// when it has s3 out volumes and ran, they are uploaded first (recorded
// as its FinalState, so that a restart of the node resumes the upload),
// and an upload failure fails it with the volume's reason. It returns
// false when the manager closed during the upload (the state stays as it
// is; Resume carries on).
func (a *alloc) conclude(state deployproto.AllocationState, res *executor.Result, msg string) bool {
	rec := a.record()
	if !rec.Ran || len(outputs(&rec.Spec)) == 0 {
		a.finish(state, res, msg)
		return true
	}
	a.mu.Lock()
	a.rec.Final = &FinalState{State: state, Result: res, Message: msg}
	a.mu.Unlock()
	a.persist()
	return a.completeUpload()
}

// completeUpload uploads the out volumes of an allocation whose end is
// recorded in its FinalState, and then records that end (or the upload's
// failure).
func (a *alloc) completeUpload() bool {
	f := a.record().Final
	if f == nil {
		return true
	}
	a.mu.Lock()
	a.rec.Message = "uploading the out volumes; then " + string(f.State)
	a.queue = append(a.queue, a.reportLocked())
	a.notifyLocked()
	a.mu.Unlock()
	a.persist()
	a.poke()
	err := a.uploadOutputs(a.life)
	if err != nil && a.life.Err() != nil {
		return false
	}
	state, msg := f.State, f.Message
	if err != nil {
		state, msg = deployproto.AllocFailed, err.Error()
		a.dmsLine("%v", err)
	}
	a.finish(state, f.Result, msg)
	return true
}

// checkVolume checks what the provider needs of a volume (the ensemble's
// validation checks the rest before it gets here).
func checkVolume(v ensemble.Volume) error {
	switch kindOf(v) {
	case ensemble.Local:
		if v.Mode != "" && v.Mode != ensemble.ModeOut {
			return fmt.Errorf("mode %q: a local volume is a directory (no mode) or a result (out)", v.Mode)
		}
	case ensemble.S3:
		switch {
		case v.S3 == nil || v.S3.Bucket == "":
			return errors.New("s3.bucket: required for an s3 volume")
		case v.Mode != ensemble.ModeIn && v.Mode != ensemble.ModeOut && v.Mode != ensemble.ModeInOut:
			return fmt.Errorf("mode %q is not in, out or inout", v.Mode)
		case v.S3.SyncEvery < 0:
			return errors.New("s3.sync_every: negative")
		}
	case ensemble.URL:
		if v.URL == "" || len(v.SHA256) != 64 {
			return errors.New("url and sha256 (64 hex digits): required for a url volume")
		}
		if v.Mode != "" && v.Mode != ensemble.ModeIn {
			return fmt.Errorf("mode %q: a url volume is an input", v.Mode)
		}
	default:
		return fmt.Errorf("kind %q is not local, s3 or url", v.Kind)
	}
	if v.Size > 1<<62 {
		return fmt.Errorf("size: %d bytes is too large", v.Size)
	}
	return nil
}

// secretsOf returns the secrets spec's volumes name, of those given.
func secretsOf(spec deployproto.AllocationSpec, given map[string][]byte) map[string][]byte {
	var out map[string][]byte
	for _, v := range spec.Volumes {
		if v.S3 == nil || v.S3.Credentials == nil || v.S3.Credentials.Secret == "" {
			continue
		}
		if b, ok := given[v.S3.Credentials.Secret]; ok {
			if out == nil {
				out = map[string][]byte{}
			}
			out[v.S3.Credentials.Secret] = b
		}
	}
	return out
}
