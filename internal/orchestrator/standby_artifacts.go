package orchestrator

// A standby holds the deployment's artifacts: the files shipped with it
// (wasm modules, vm kernels, initrds and root filesystems, by digest) that
// allocations fetch from their orchestrator when they start. A standby
// that takes over must serve them, since a redeploy starts a new copy; so
// at every replicate that names artifacts it lacks, it fetches them in
// the background from the primary's orchestrator actor, chunk by chunk
// (deployproto.BehaviorArtifact), checks their SHA-256 and stores them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

// maxArtifactSize bounds an artifact a standby fetches from its primary.
// Artifacts reach the primary inside one API request, far smaller.
const maxArtifactSize = 1 << 30

const (
	artifactChunkTimeout  = 30 * time.Second
	artifactChunkAttempts = 3
	// maxArtifactFetches bounds the fetches under way on a node; the
	// others wait for a later replicate.
	maxArtifactFetches = 4
)

// missingArtifacts returns the digests of d's artifacts that this node's
// store does not hold.
func (s *Service) missingArtifacts(d *Deployment) []string {
	var out []string
	for _, digest := range d.Artifacts {
		if _, _, err := s.cfg.Store.Artifact(digest, 0, 0); err != nil {
			out = append(out, digest)
		}
	}
	return out
}

// fetchArtifacts fetches, each in the background, the artifacts of
// deployment id in missing from its orchestrator actor primary, unless a
// fetch of that digest is under way (or maxArtifactFetches are). What is
// not fetched, or failed, is fetched at the next call (the next
// replicate).
func (s *Service) fetchArtifacts(id string, primary actor.Handle, missing []string) {
	for _, digest := range missing {
		if !ensemble.IsDigest(digest) {
			s.log.Warn("standby: the primary names an artifact that is no sha256 digest", "deployment_id", id, "digest", digest)
			continue
		}
		s.fetchMu.Lock()
		if s.fetching[digest] || len(s.fetching) >= maxArtifactFetches || s.ctx.Err() != nil {
			s.fetchMu.Unlock()
			continue
		}
		s.fetching[digest] = true
		s.fetchMu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.fetchMu.Lock()
				delete(s.fetching, digest)
				s.fetchMu.Unlock()
			}()
			get := func(ctx context.Context, off int64) (deployproto.ArtifactChunk, error) {
				return s.artifactChunk(ctx, primary, deployproto.ArtifactRequest{Deployment: id, Digest: digest, Offset: off})
			}
			data, err := fetchArtifact(s.ctx, digest, maxArtifactSize, get)
			if err == nil {
				err = s.cfg.Store.PutArtifact(digest, data)
			}
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Warn("standby: fetch an artifact from the primary", "deployment_id", id, "digest", digest,
						"primary", identity.ShortPeerID(primary.Host), "err", err)
				}
				return
			}
			s.log.Info("standby: fetched an artifact from the primary", "deployment_id", id, "digest", digest, "bytes", len(data))
		}()
	}
}

// artifactChunk asks the orchestrator actor orch for one chunk, retrying
// failures that may pass.
func (s *Service) artifactChunk(ctx context.Context, orch actor.Handle, req deployproto.ArtifactRequest) (deployproto.ArtifactChunk, error) {
	for attempt := 1; ; attempt++ {
		var chunk deployproto.ArtifactChunk
		cctx, cancel := context.WithTimeout(ctx, artifactChunkTimeout)
		err := s.cfg.Node.Invoke(cctx, orch, deployproto.BehaviorArtifact, req, &chunk)
		cancel()
		if err == nil {
			return chunk, nil
		}
		switch actor.AsError(err).Code {
		case actor.CodeTimeout, actor.CodeUnreachable, actor.CodeMailboxFull, actor.CodeRateLimited:
		default:
			return chunk, err
		}
		if attempt == artifactChunkAttempts || ctx.Err() != nil {
			return chunk, err
		}
		t := time.NewTimer(time.Duration(attempt) * time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// fetchArtifact reads the artifact digest ("sha256:<hex>") of at most max
// bytes chunk by chunk with get, and returns it once its SHA-256 matches
// the digest. Chunks that are too large, overrun or change the size, or
// stop short are refused.
func fetchArtifact(ctx context.Context, digest string, max int64, get func(ctx context.Context, off int64) (deployproto.ArtifactChunk, error)) ([]byte, error) {
	h := sha256.New()
	var data []byte
	var off, size int64 = 0, -1
	for size < 0 || off < size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk, err := get(ctx, off)
		if err != nil {
			return nil, fmt.Errorf("fetch %s at %d: %w", digest, off, err)
		}
		switch {
		case chunk.Size < 0 || chunk.Size > max:
			return nil, fmt.Errorf("fetch %s: size %d is outside 0-%d", digest, chunk.Size, max)
		case size >= 0 && chunk.Size != size:
			return nil, fmt.Errorf("fetch %s: size changed from %d to %d", digest, size, chunk.Size)
		case len(chunk.Data) > deployproto.ArtifactChunkSize:
			return nil, fmt.Errorf("fetch %s: chunk of %d bytes exceeds %d", digest, len(chunk.Data), deployproto.ArtifactChunkSize)
		case off+int64(len(chunk.Data)) > chunk.Size:
			return nil, fmt.Errorf("fetch %s: chunk at %d overruns the size %d", digest, off, chunk.Size)
		case len(chunk.Data) == 0 && off < chunk.Size:
			return nil, fmt.Errorf("fetch %s: empty chunk at %d of %d", digest, off, chunk.Size)
		}
		size = chunk.Size
		data = append(data, chunk.Data...)
		h.Write(chunk.Data)
		off += int64(len(chunk.Data))
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return nil, fmt.Errorf("fetch %s: the primary served content %s", digest, got)
	}
	return data, nil
}

// holdArtifacts starts fetching the artifacts of replica d that this node
// lacks from d's orchestrator, and returns how many it lacks.
func (s *Service) holdArtifacts(d *Deployment) int {
	missing := s.missingArtifacts(d)
	s.fetchArtifacts(d.ID, d.Orchestrator, missing)
	return len(missing)
}

// standbyMissing records how many artifacts a standby said it lacks, and
// logs a change. A standby that lacks artifacts still counts toward the
// lease: the lease is about who may decide, and a standby decides nothing
// until it takes over; the artifacts only matter for what it can redeploy
// then, which the takeover records.
func (r *run) standbyMissing(peer string, missing int) {
	r.ha.mu.Lock()
	before, known := r.ha.missing[peer]
	r.ha.missing[peer] = missing
	r.ha.mu.Unlock()
	if known && before == missing {
		return
	}
	switch {
	case missing > 0:
		r.s.log.Info("a standby is fetching the deployment's artifacts", "deployment_id", r.d.ID, "peer_id", peer, "missing", missing)
	case known:
		r.s.log.Info("a standby holds every artifact of the deployment", "deployment_id", r.d.ID, "peer_id", peer)
	}
}
