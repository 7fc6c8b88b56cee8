package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/dmsnet/dms/internal/storage"
)

// Object is an object under a prefix, as a file of the prefix's
// directory: dms deployment results fetches s3 out volumes through these.
type Object struct {
	Path   string // the key without the prefix (slash-separated)
	Size   int64
	SHA256 string // hex
}

// List lists the objects under loc.Prefix in key order, each with its
// SHA-256: the server's x-amz-checksum-sha256 or the metadata Upload
// writes (one HEAD per object), else computed by reading the object, so
// that every file of a manifest can be checked. A key that would escape
// the prefix's directory is refused.
func (t *Transfer) List(ctx context.Context, loc Location, cred storage.Credentials) ([]Object, error) {
	c, err := t.connect(loc, cred)
	if err != nil {
		return nil, err
	}
	prefix := loc.keyPrefix()
	var out []Object
	err = t.list(ctx, c, prefix, func(o minio.ObjectInfo) error {
		if strings.HasSuffix(o.Key, "/") {
			return nil // a directory marker
		}
		if _, err := localPath(prefix, o.Key); err != nil {
			return c.errorf("list", o.Key, err)
		}
		sum, err := t.sha256Of(ctx, c, o.Key)
		if err != nil {
			return err
		}
		out = append(out, Object{Path: strings.TrimPrefix(o.Key, prefix), Size: o.Size, SHA256: sum})
		return nil
	})
	return out, err
}

// sha256Of returns the SHA-256 (hex) of an object.
func (t *Transfer) sha256Of(ctx context.Context, c *conn, key string) (string, error) {
	var info minio.ObjectInfo
	err := t.retry(ctx, func() error {
		var err error
		info, err = c.core.Client.StatObject(ctx, c.loc.Bucket, key, minio.StatObjectOptions{Checksum: true})
		if err != nil {
			return c.errorf("stat", key, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if want, h, _ := expected(info); want != nil && h.Size() == sha256.Size {
		return hex.EncodeToString(want), nil
	}
	var sum string
	err = t.retry(ctx, func() error {
		r, err := c.core.Client.GetObject(ctx, c.loc.Bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return c.errorf("get", key, err)
		}
		defer r.Close()
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return c.errorf("get", key, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return sum, err
}

// ReadAt reads up to n bytes of the object loc.Prefix+p from off (fewer at
// its end).
func (t *Transfer) ReadAt(ctx context.Context, loc Location, cred storage.Credentials, p string, off int64, n int) ([]byte, error) {
	if n < 1 || off < 0 {
		return nil, fmt.Errorf("s3 read %s: %d bytes at %d: want at least one byte from an offset ≥ 0", p, n, off)
	}
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
		return nil, fmt.Errorf("s3 read: %q is not a path under the prefix", p)
	}
	c, err := t.connect(loc, cred)
	if err != nil {
		return nil, err
	}
	key := loc.keyPrefix() + p
	var out []byte
	err = t.retry(ctx, func() error {
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(off, off+int64(n)-1); err != nil {
			return fmt.Errorf("s3 read %s: %w", key, errors.Join(err, errRefused))
		}
		r, _, _, err := c.core.GetObject(ctx, c.loc.Bucket, key, opts)
		if err != nil {
			if errorResponse(err).Code == "InvalidRange" {
				out = nil // at or past the end
				return nil
			}
			return c.errorf("get", key, err)
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err != nil {
			return c.errorf("get", key, err)
		}
		out = b
		return nil
	})
	return out, err
}
