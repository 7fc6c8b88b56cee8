package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/storage"
)

// resultsTimeout bounds one request to a provider for results.
const resultsTimeout = 30 * time.Second

// S3Location is where an s3 result volume's objects are.
type S3Location struct{ Endpoint, Region, Bucket, Prefix string }

// S3Reader reads the objects of an s3 result volume, for dms deployment
// results (the node wires internal/storage/s3).
type S3Reader interface {
	// List returns the objects under loc.Prefix as files relative to it,
	// with their sizes and SHA-256 (hex).
	List(ctx context.Context, loc S3Location, cred storage.Credentials) ([]deployproto.ResultFile, error)
	// ReadAt reads up to n bytes of the object at loc.Prefix+path from off.
	ReadAt(ctx context.Context, loc S3Location, cred storage.Credentials, path string, off int64, n int) ([]byte, error)
}

// ResultVolume is an out volume of a deployment's allocation, as dms
// deployment results sees it.
type ResultVolume struct {
	deployproto.ResultVolume
	Provider string // peer ID of the provider that ran the allocation
}

// resultVolume is one out volume of the spec.
type resultVolume struct {
	alloc, name string
	v           ensemble.Volume
}

// outVolumes lists the out volumes of spec: s3 in mode out or inout, and
// local in mode out.
func outVolumes(spec *ensemble.Spec) []resultVolume {
	var out []resultVolume
	for _, an := range allocNames(spec) {
		vols := spec.Allocations[an].Volumes
		for _, vn := range mapkeys.Sorted(vols) {
			v := vols[vn]
			s3 := v.Kind == ensemble.S3 && (v.Mode == ensemble.ModeOut || v.Mode == ensemble.ModeInOut)
			local := (v.Kind == ensemble.Local || v.Kind == "") && v.Mode == ensemble.ModeOut
			if s3 || local {
				out = append(out, resultVolume{an, vn, v})
			}
		}
	}
	return out
}

// resultsNeedSecrets reports whether an s3 out volume of spec names a
// secret: its results are read with it after the deployment ends.
func resultsNeedSecrets(spec *ensemble.Spec) bool {
	for _, rv := range outVolumes(spec) {
		if rv.v.Secret() != "" {
			return true
		}
	}
	return false
}

// Results lists the out volumes of a deployment's allocations: where each
// is and whether it can be fetched now. It asks each provider once.
func (s *Service) Results(ctx context.Context, id string) ([]ResultVolume, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	d := r.snapshot()
	vols := outVolumes(r.specOf(d))
	type answer struct {
		vols map[[2]string]deployproto.ResultVolume
		err  error
	}
	answers := map[string]*answer{}
	for _, rv := range vols {
		if a := d.Allocations[rv.alloc]; a != nil && a.Handle.Host != "" && answers[a.Handle.Host] == nil {
			answers[a.Handle.Host] = &answer{}
		}
	}
	done := make(chan struct{}, len(answers))
	for host, ans := range answers {
		go func() {
			defer func() { done <- struct{}{} }()
			var rep deployproto.ResultsReply
			ans.err = r.askResults(ctx, host, deployproto.ResultsRequest{Deployment: d.ID, Op: deployproto.ResultsList}, &rep)
			ans.vols = map[[2]string]deployproto.ResultVolume{}
			for _, v := range rep.Volumes {
				ans.vols[[2]string{v.Allocation, v.Volume}] = v
			}
		}()
	}
	for range answers {
		<-done
	}
	out := make([]ResultVolume, 0, len(vols))
	for _, rv := range vols {
		res := ResultVolume{ResultVolume: deployproto.ResultVolume{Allocation: rv.alloc, Volume: rv.name, Kind: rv.v.Kind, Mode: rv.v.Mode}}
		if res.Kind == "" {
			res.Kind = ensemble.Local
		}
		a := d.Allocations[rv.alloc]
		if a == nil || a.Handle.Host == "" {
			res.Reason = "the allocation was never placed"
			out = append(out, res)
			continue
		}
		res.Provider = a.Handle.Host
		ans := answers[a.Handle.Host]
		got, have := ans.vols[[2]string{rv.alloc, rv.name}]
		if have {
			res.ResultVolume = got
		}
		switch {
		case res.Kind == ensemble.S3:
			s3v := rv.v.S3
			res.Bucket, res.Endpoint, res.Region = s3v.Bucket, s3v.Endpoint, s3v.Region
			if !have {
				// The provider is gone or forgot it: the bucket holds
				// what was uploaded.
				res.Prefix = defaultOutPrefix(d.ID, rv.alloc, a.Attempt, s3v.Prefix)
				res.Ready, res.Reason = true, ""
			}
			if s3v.Credentials != nil && s3v.Credentials.Provider != "" {
				res.Ready = false
				res.Reason = fmt.Sprintf("the bucket's keys are the provider's (credentials.provider: %s): fetch s3://%s/%s with your own S3 client", s3v.Credentials.Provider, res.Bucket, res.Prefix)
			}
		case ans.err != nil:
			res.Ready, res.Reason = false, fmt.Sprintf("its provider %s does not answer: %v", identity.ShortPeerID(a.Handle.Host), ans.err)
		case !have:
			res.Ready, res.Reason = false, fmt.Sprintf("its provider %s no longer keeps it (removed after its retention, or never made)", identity.ShortPeerID(a.Handle.Host))
		}
		out = append(out, res)
	}
	return out, nil
}

// defaultOutPrefix is the prefix an out volume's objects go to: the
// ensemble's, else <deployment>/<allocation>/<attempt>/ (as the
// allocation computes it).
func defaultOutPrefix(dep, alloc string, attempt int, prefix string) string {
	if prefix != "" {
		return prefix
	}
	return fmt.Sprintf("%s/%s/%d/", dep, alloc, max(attempt, 1))
}

// ErrNotReady is wrapped by the error of a result volume that cannot be
// fetched yet; ErrBadChunk by that of a chunk request out of bounds.
var (
	ErrNotReady = errors.New("not ready")
	ErrBadChunk = errors.New("bad chunk request")
)

// readyResult finds a result volume of a deployment that its provider
// says is ready (one list round to the providers: a manifest's check).
func (s *Service) readyResult(ctx context.Context, id, alloc, volume string) (ResultVolume, error) {
	vols, err := s.Results(ctx, id)
	if err != nil {
		return ResultVolume{}, err
	}
	for _, v := range vols {
		if v.Allocation == alloc && v.Volume == volume {
			if !v.Ready {
				return v, fmt.Errorf("%s: %w", v.Reason, ErrNotReady)
			}
			return v, nil
		}
	}
	return ResultVolume{}, fmt.Errorf("deployment %s has no out volume %s of allocation %s: %w", id, volume, alloc, ErrNotFound)
}

// resultSource is where the files of a result volume are read from: its
// provider (a local volume), or the bucket with the keys (an s3 one).
type resultSource struct {
	r        *run
	kind     ensemble.VolumeKind
	provider string
	s3       S3Location
	cred     storage.Credentials
}

// source finds an out volume of a deployment from its record alone (no
// provider asked: each chunk of a download comes through here) and, for
// an s3 volume, opens its keys.
func (s *Service) source(id, alloc, volume string) (*resultSource, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	d := r.snapshot()
	for _, rv := range outVolumes(r.specOf(d)) {
		if rv.alloc != alloc || rv.name != volume {
			continue
		}
		a := d.Allocations[alloc]
		if a == nil || a.Handle.Host == "" {
			return nil, fmt.Errorf("the allocation was never placed: %w", ErrNotReady)
		}
		src := &resultSource{r: r, kind: rv.v.Kind, provider: a.Handle.Host}
		if rv.v.Kind != ensemble.S3 {
			return src, nil
		}
		if s.cfg.S3 == nil {
			return nil, errors.New("this node reads no S3 results")
		}
		src.s3 = S3Location{Endpoint: rv.v.S3.Endpoint, Region: rv.v.S3.Region, Bucket: rv.v.S3.Bucket, Prefix: defaultOutPrefix(d.ID, alloc, a.Attempt, rv.v.S3.Prefix)}
		if name := rv.v.Secret(); name != "" {
			secrets, err := s.openSecrets(d)
			if err != nil {
				return nil, err
			}
			if src.cred, err = storage.ParseCredentials([]byte(secrets[name])); err != nil {
				return nil, fmt.Errorf("secret %s: %w", name, err)
			}
		}
		return src, nil
	}
	return nil, fmt.Errorf("deployment %s has no out volume %s of allocation %s: %w", id, volume, alloc, ErrNotFound)
}

// ResultManifest lists the files of a result volume.
func (s *Service) ResultManifest(ctx context.Context, id, alloc, volume string) (*deployproto.ResultFiles, error) {
	m, err := s.manifest(ctx, id, alloc, volume)
	if err != nil {
		return nil, fmt.Errorf("results of %s/%s: %w", alloc, volume, err)
	}
	return m, nil
}

func (s *Service) manifest(ctx context.Context, id, alloc, volume string) (*deployproto.ResultFiles, error) {
	if _, err := s.readyResult(ctx, id, alloc, volume); err != nil {
		return nil, err
	}
	src, err := s.source(id, alloc, volume)
	if err != nil {
		return nil, err
	}
	m := &deployproto.ResultFiles{}
	if src.kind == ensemble.S3 {
		if m.Files, err = s.cfg.S3.List(ctx, src.s3, src.cred); err != nil {
			return nil, err
		}
		for _, f := range m.Files {
			m.Bytes += f.Size
		}
		return m, nil
	}
	for page := int64(0); ; {
		var rep deployproto.ResultsReply
		req := deployproto.ResultsRequest{Deployment: id, Allocation: alloc, Volume: volume, Op: deployproto.ResultsManifest, Offset: page}
		if err := src.r.askResults(ctx, src.provider, req, &rep); err != nil {
			return nil, err
		}
		if rep.Manifest == nil {
			return nil, errors.New("the provider sent no manifest")
		}
		m.Files = append(m.Files, rep.Manifest.Files...)
		m.Bytes = rep.Manifest.Bytes
		if rep.NextFile <= page {
			// 0 once complete; never backwards.
			return m, nil
		}
		page = rep.NextFile
	}
}

// ResultChunk reads up to n bytes of a file of a result volume from off.
func (s *Service) ResultChunk(ctx context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error) {
	b, err := s.chunk(ctx, id, alloc, volume, path, off, n)
	if err != nil {
		return nil, fmt.Errorf("results of %s/%s: %w", alloc, volume, err)
	}
	return b, nil
}

func (s *Service) chunk(ctx context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error) {
	if n < 1 || n > deployproto.MaxResultsChunk || off < 0 {
		return nil, fmt.Errorf("a chunk is 1 to %d bytes from an offset ≥ 0: %w", deployproto.MaxResultsChunk, ErrBadChunk)
	}
	src, err := s.source(id, alloc, volume)
	if err != nil {
		return nil, err
	}
	if src.kind == ensemble.S3 {
		return s.cfg.S3.ReadAt(ctx, src.s3, src.cred, path, off, n)
	}
	var rep deployproto.ResultsReply
	req := deployproto.ResultsRequest{Deployment: id, Allocation: alloc, Volume: volume, Op: deployproto.ResultsChunk, Path: path, Offset: off, Length: n}
	if err := src.r.askResults(ctx, src.provider, req, &rep); err != nil {
		return nil, err
	}
	if len(rep.Data) > n {
		return nil, fmt.Errorf("the provider sent %d bytes for %d", len(rep.Data), n)
	}
	return rep.Data, nil
}

// askResults invokes BehaviorResults on the provider node host.
func (r *run) askResults(ctx context.Context, host string, req deployproto.ResultsRequest, rep *deployproto.ResultsReply) error {
	h, err := actor.NodeHandle(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, resultsTimeout)
	defer cancel()
	return r.actor.Invoke(ctx, h, deployproto.BehaviorResults, req, rep)
}
