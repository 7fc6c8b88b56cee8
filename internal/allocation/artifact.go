package allocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/atomicfile"
	"github.com/dmsnet/dms/internal/deployproto"
)

// ErrDigest is returned when a fetched artifact's content does not match
// its reference.
var ErrDigest = errors.New("artifact digest mismatch")

const (
	chunkTimeout  = time.Minute
	chunkAttempts = 3
)

// artifactCache keeps fetched artifacts as files named by their SHA-256,
// and fetches each digest once even when several allocations ask at once.
type artifactCache struct {
	dir string
	max int64

	mu       sync.Mutex
	inflight map[string]*fetch // guarded by mu: by digest
}

type fetch struct {
	done chan struct{}
	err  error
}

// path returns where digest ("sha256:<hex>") is cached.
func (c *artifactCache) path(digest string) string {
	return filepath.Join(c.dir, strings.TrimPrefix(digest, "sha256:"))
}

// get returns the file holding digest, fetching it with from (the
// allocation actor) from the orchestrator when it is not cached yet.
func (c *artifactCache) get(ctx context.Context, from *actor.Actor, orch actor.Handle, deployment, digest string) (string, error) {
	p := c.path(digest)
	for {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		c.mu.Lock()
		f, ok := c.inflight[digest]
		if !ok {
			f = &fetch{done: make(chan struct{})}
			c.inflight[digest] = f
			c.mu.Unlock()
			f.err = c.download(ctx, from, orch, deployment, digest, p)
			c.mu.Lock()
			delete(c.inflight, digest)
			c.mu.Unlock()
			close(f.done)
			if f.err != nil {
				return "", f.err
			}
			return p, nil
		}
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && ctx.Err() == nil && !errors.Is(f.err, context.Canceled) {
				return "", f.err
			}
			// Fetched, or the fetcher gave up because its own context
			// ended: look again (and fetch ourselves if need be).
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// download fetches digest in chunks into a temporary file, checks its
// SHA-256 and renames it to dst.
func (c *artifactCache) download(ctx context.Context, from *actor.Actor, orch actor.Handle, deployment, digest, dst string) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	tmp, err := atomicfile.Create(dst, 0o600)
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	defer tmp.Cleanup()
	h := sha256.New()
	var off, size int64 = 0, -1
	for size < 0 || off < size {
		chunk, err := fetchChunk(ctx, from, orch, deployproto.ArtifactRequest{Deployment: deployment, Digest: digest, Offset: off})
		if err != nil {
			return fmt.Errorf("fetch %s at %d: %w", digest, off, err)
		}
		switch {
		case chunk.Size < 0 || chunk.Size > c.max:
			return fmt.Errorf("fetch %s: size %d is outside 0-%d", digest, chunk.Size, c.max)
		case size >= 0 && chunk.Size != size:
			return fmt.Errorf("fetch %s: size changed from %d to %d", digest, size, chunk.Size)
		case len(chunk.Data) > deployproto.ArtifactChunkSize:
			return fmt.Errorf("fetch %s: chunk of %d bytes exceeds %d", digest, len(chunk.Data), deployproto.ArtifactChunkSize)
		case off+int64(len(chunk.Data)) > chunk.Size:
			return fmt.Errorf("fetch %s: chunk at %d overruns the size %d", digest, off, chunk.Size)
		case len(chunk.Data) == 0 && off < chunk.Size:
			return fmt.Errorf("fetch %s: empty chunk at %d of %d", digest, off, chunk.Size)
		}
		size = chunk.Size
		if _, err := tmp.Write(chunk.Data); err != nil {
			return fmt.Errorf("artifact cache: %w", err)
		}
		h.Write(chunk.Data)
		off += int64(len(chunk.Data))
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: %s has content %s", ErrDigest, digest, got)
	}
	if err := tmp.Commit(); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	return nil
}

// fetchChunk asks for one chunk, retrying failures that may pass.
func fetchChunk(ctx context.Context, from *actor.Actor, orch actor.Handle, req deployproto.ArtifactRequest) (deployproto.ArtifactChunk, error) {
	var err error
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return deployproto.ArtifactChunk{}, ctx.Err()
		}
		var chunk deployproto.ArtifactChunk
		cctx, cancel := context.WithTimeout(ctx, chunkTimeout)
		err = from.Invoke(cctx, orch, deployproto.BehaviorArtifact, req, &chunk)
		cancel()
		if err == nil {
			return chunk, nil
		}
		if attempt == chunkAttempts || ctx.Err() != nil || !transient(err) {
			return deployproto.ArtifactChunk{}, err
		}
		if !sleep(ctx, time.Duration(attempt)*time.Second) {
			return deployproto.ArtifactChunk{}, ctx.Err()
		}
	}
}

// transient reports whether an invocation error may pass by itself.
func transient(err error) bool {
	e := actor.AsError(err)
	switch e.Code {
	case actor.CodeTimeout, actor.CodeUnreachable, actor.CodeMailboxFull, actor.CodeRateLimited, actor.CodeShuttingDown:
		return true
	}
	return false
}

// sleep waits d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
