package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/dmsnet/dms/internal/storage"
)

// An object streams through copyBuffers buffers of copyBuffer bytes: one
// filled from the network and written to the file while the others are
// hashed, so the hash does not slow the copy.
const (
	copyBuffer  = 256 << 10
	copyBuffers = 4
)

func newBuffers() chan []byte {
	bufs := make(chan []byte, copyBuffers)
	for range copyBuffers {
		bufs <- make([]byte, copyBuffer)
	}
	return bufs
}

// copyHash copies src to dst and, on another goroutine, writes the same
// bytes to h (if not nil). bufs holds the free buffers; all are back in it
// when copyHash returns.
func copyHash(dst io.Writer, src io.Reader, h hash.Hash, bufs chan []byte) (int64, error) {
	full := make(chan []byte, copyBuffers)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range full {
			if h != nil {
				h.Write(b)
			}
			bufs <- b[:cap(b)]
		}
	}()
	var total int64
	var err error
	for {
		b := <-bufs
		n, rerr := io.ReadFull(src, b)
		if n > 0 {
			if _, werr := dst.Write(b[:n]); werr != nil {
				err = werr
				bufs <- b
				break
			}
			total += int64(n)
		}
		full <- b[:n]
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(full)
	<-done
	return total, err
}

// Download stages every object under loc.Prefix into dir (created if
// missing): keys relative to the prefix become paths; a key that would
// escape dir, e.g. "../x", is refused. Every object is checked: by the
// server's full-object SHA-256 checksum if it has one, else by the user
// metadata sha256 Upload writes, else by its ETag when that is a plain
// MD5; a multipart object with none of them is accepted after its size is
// checked, and counted in Stats.Unverified (a full-object CRC the server
// has is checked when there is nothing better). A mismatch is an error
// wrapping ErrChecksum naming the key. Each object streams to a temporary
// file renamed into place once checked; Concurrency objects at once.
func (t *Transfer) Download(ctx context.Context, loc Location, cred storage.Credentials, dir string, p storage.ProgressFunc) (Stats, error) {
	c, err := t.connect(loc, cred)
	if err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("s3 download: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("s3 download: %w", err)
	}
	defer root.Close()

	prefix := loc.keyPrefix()
	prog := &progress{fn: p}
	var (
		mu    sync.Mutex // guards stats
		stats Stats
	)
	g, gctx := errgroup.WithContext(ctx)
	objects := make(chan minio.ObjectInfo, 2*t.opts.Concurrency)
	g.Go(func() error {
		defer close(objects)
		return t.list(gctx, c, prefix, func(o minio.ObjectInfo) error {
			prog.total(o.Size, 1)
			select {
			case objects <- o:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range t.opts.Concurrency {
		g.Go(func() error {
			bufs := newBuffers()
			for o := range objects {
				verified, err := t.fetch(gctx, c, root, prefix, o, bufs, prog)
				if err != nil {
					return err
				}
				mu.Lock()
				stats.Objects++
				stats.Bytes += o.Size
				if !verified {
					stats.Unverified++
				}
				mu.Unlock()
			}
			return nil
		})
	}
	err = g.Wait()
	if err != nil && ctx.Err() != nil && contextError(err) == nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return stats, err
}

// list calls fn with every object under prefix, in key order, retrying a
// failed page from the last key seen.
func (t *Transfer) list(ctx context.Context, c *conn, prefix string, fn func(minio.ObjectInfo) error) error {
	after := ""
	return t.retry(ctx, func() error {
		for o := range c.core.Client.ListObjects(ctx, c.loc.Bucket, minio.ListObjectsOptions{
			Prefix: prefix, Recursive: true, StartAfter: after,
		}) {
			if o.Err != nil {
				return c.errorf("list", prefix, o.Err)
			}
			if err := fn(o); err != nil {
				return err
			}
			after = o.Key
		}
		return nil
	})
}

// localPath is where key goes under the directory, or an error if it
// would land outside it.
func localPath(prefix, key string) (string, error) {
	rel, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", fmt.Errorf("key %q is not under prefix %q: %w", key, prefix, errRefused)
	}
	if strings.ContainsRune(rel, 0) || strings.Contains(rel, `\`) {
		return "", fmt.Errorf("key %q: not a portable path: %w", key, errRefused)
	}
	for _, el := range strings.Split(rel, "/") {
		if el == ".." {
			return "", fmt.Errorf("key %q would escape the directory: %w", key, errRefused)
		}
	}
	p := filepath.FromSlash(path.Clean("/" + rel))[1:]
	if p == "" || !filepath.IsLocal(p) {
		return "", fmt.Errorf("key %q would escape the directory: %w", key, errRefused)
	}
	return p, nil
}

// fetch downloads one object into root and checks it; verified is false
// when there was nothing but its size to check it by.
func (t *Transfer) fetch(ctx context.Context, c *conn, root *os.Root, prefix string, o minio.ObjectInfo, bufs chan []byte, prog *progress) (verified bool, err error) {
	name, err := localPath(prefix, o.Key)
	if strings.HasSuffix(o.Key, "/") { // a "directory" marker
		if err == nil {
			err = root.MkdirAll(name, 0o755)
		}
		if err != nil {
			return true, c.errorf("get", o.Key, err)
		}
		prog.add(0, 1)
		return true, nil
	}
	if err != nil {
		return false, c.errorf("get", o.Key, err)
	}
	if d := filepath.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return false, c.errorf("get", o.Key, fmt.Errorf("%w: %w", err, errRefused))
		}
	}
	tmp := filepath.Join(filepath.Dir(name), ".dms-part-"+filepath.Base(name)+"-"+rand.Text()[:8])
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false, c.errorf("get", o.Key, fmt.Errorf("%w: %w", err, errRefused))
	}
	defer func() {
		if f != nil {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	var sent int64 // progress reported for this object, taken back on a retry
	err = t.retry(ctx, func() error {
		if sent > 0 {
			prog.add(-sent, 0)
			sent = 0
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: %w", err, errRefused)
		}
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("%w: %w", err, errRefused)
		}
		// Ask for the server's checksums, but check them here: one hash
		// of the body, not minio-go's and ours.
		var opts minio.GetObjectOptions
		opts.Set("x-amz-checksum-mode", "ENABLED")
		body, info, _, err := c.core.GetObject(ctx, c.loc.Bucket, o.Key, opts)
		if err != nil {
			return err
		}
		defer body.Close()
		want, h, how := expected(info)
		w := &counter{w: f, fn: func(n int64) { sent += n; prog.add(n, 0) }}
		n, err := copyHash(w, body, h, bufs)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) { // the local write failed: not the server's fault
				return fmt.Errorf("write %s: %w: %w", name, err, errRefused)
			}
			return err
		}
		if n != info.Size {
			return fmt.Errorf("got %d bytes of %d", n, info.Size) // retried
		}
		verified = h != nil
		if h != nil && !bytes.Equal(h.Sum(nil), want) {
			return fmt.Errorf("%w: %s %x, got %x", ErrChecksum, how, want, h.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return false, c.errorf("get", o.Key, err)
	}
	if err := f.Close(); err != nil {
		return false, c.errorf("get", o.Key, err)
	}
	f = nil
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp)
		return false, c.errorf("get", o.Key, fmt.Errorf("%w: %w", err, errRefused))
	}
	prog.add(0, 1)
	return verified, nil
}

// expected is what an object is checked by: the digest, a fresh hash to
// compute it, and how the digest was known; a nil hash when there is
// nothing to check.
func expected(info minio.ObjectInfo) (want []byte, h hash.Hash, how string) {
	if s := info.ChecksumSHA256; s != "" && !strings.Contains(s, "-") && !strings.EqualFold(info.ChecksumMode, "COMPOSITE") {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == sha256.Size {
			return b, sha256.New(), "x-amz-checksum-sha256"
		}
	}
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, metaSHA256) || strings.EqualFold(k, "X-Amz-Meta-"+metaSHA256) {
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				return b, sha256.New(), "metadata sha256"
			}
		}
	}
	if etag := strings.Trim(info.ETag, `"`); len(etag) == 2*md5.Size {
		if b, err := hex.DecodeString(etag); err == nil {
			return b, md5.New(), "etag md5"
		}
	}
	// A multipart object put by another tool may have a full-object CRC.
	if !strings.EqualFold(info.ChecksumMode, "COMPOSITE") {
		for _, c := range []struct {
			v    string
			h    func() hash.Hash
			name string
		}{
			{info.ChecksumCRC64NVME, func() hash.Hash { return crc64nvme.New() }, "x-amz-checksum-crc64nvme"},
			{info.ChecksumCRC32C, func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }, "x-amz-checksum-crc32c"},
			{info.ChecksumCRC32, func() hash.Hash { return crc32.NewIEEE() }, "x-amz-checksum-crc32"},
		} {
			if c.v == "" || strings.Contains(c.v, "-") {
				continue
			}
			if b, err := base64.StdEncoding.DecodeString(c.v); err == nil {
				if h := c.h(); len(b) == h.Size() {
					return b, h, c.name
				}
			}
		}
	}
	return nil, nil, ""
}

// metaSHA256 is the user metadata key Upload writes the whole object's
// SHA-256 (hex) under.
const metaSHA256 = "sha256"

type counter struct {
	w  io.Writer
	fn func(int64)
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.fn(int64(n))
	return n, err
}
