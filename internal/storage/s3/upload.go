package s3

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/dmsnet/dms/internal/storage"
)

// hashBuffer is the buffer a file is hashed through.
const hashBuffer = 256 << 10

// Upload puts every regular file under dir to loc.Prefix + its path
// relative to dir (symbolic links and other non-regular files are left
// out). Files of PartSize or more go multipart with Concurrency parts in
// flight (in all, not per file); each part streams from the file, so the
// extra memory does not grow with the part size or the file (a few 64 KiB
// signing buffers per request). Each object gets user
// metadata sha256=<hex of the whole file>, computed before it is sent.
//
// journal is a file where the state of the uploads is saved atomically
// after each part: after the process dies, a new call with the same
// journal continues the multipart uploads (ListObjectParts confirms what
// the server has) and re-sends only the parts that were in flight;
// Stats.ResentBytes says how much. Files the journal says are uploaded
// with the same size and SHA-256 are skipped (Stats.Skipped), so a
// periodic sync only sends what changed. journal "" = no resume.
func (t *Transfer) Upload(ctx context.Context, loc Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (Stats, error) {
	c, err := t.connect(loc, cred)
	if err != nil {
		return Stats{}, err
	}
	files, err := walk(dir, loc.keyPrefix())
	if err != nil {
		return Stats{}, fmt.Errorf("s3 upload: %w", err)
	}
	j, err := openJournal(journal, c.host, loc.Bucket)
	if err != nil {
		return Stats{}, fmt.Errorf("s3 upload: %w", err)
	}
	u := &uploader{
		t: t, c: c, j: j,
		prog:    &progress{fn: p},
		sending: make(chan struct{}, t.opts.Concurrency),
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	u.prog.total(total, len(files))

	g, gctx := errgroup.WithContext(ctx)
	todo := make(chan localFile)
	g.Go(func() error {
		defer close(todo)
		for _, f := range files {
			select {
			case todo <- f:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range t.opts.Concurrency {
		g.Go(func() error {
			for f := range todo {
				if err := u.file(gctx, f); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = g.Wait()
	if err != nil && ctx.Err() != nil && contextError(err) == nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stats, err
}

// localFile is a file to upload.
type localFile struct {
	path, key string
	size      int64
	mtime     int64
}

// walk lists the regular files under dir, in key order.
func walk(dir, prefix string) ([]localFile, error) {
	var files []localFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, localFile{
			path: p, key: prefix + filepath.ToSlash(rel),
			size: info.Size(), mtime: info.ModTime().UnixNano(),
		})
		return nil
	})
	slices.SortFunc(files, func(a, b localFile) int { return strings.Compare(a.key, b.key) })
	return files, err
}

// uploader is one Upload call.
type uploader struct {
	t    *Transfer
	c    *conn
	j    *journal
	prog *progress

	sending chan struct{} // a slot per part in flight, across files

	mu    sync.Mutex // guards stats
	stats Stats
}

func (u *uploader) count(fn func(*Stats)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fn(&u.stats)
}

// file uploads one file, or skips it when the journal has it.
func (u *uploader) file(ctx context.Context, f localFile) error {
	sum, err := hashFile(f)
	if err != nil {
		return u.c.errorf("put", f.key, err)
	}
	id := fileID{Size: f.size, MTime: f.mtime, SHA256: sum}
	var done bool
	u.j.read(func(st *journalState) {
		d, ok := st.Done[f.key]
		done = ok && d.Size == id.Size && d.SHA256 == id.SHA256
	})
	if done {
		u.count(func(s *Stats) { s.Skipped++ })
		u.prog.add(f.size, 1)
		return nil
	}
	if ps := u.t.partSize(f.size); f.size >= ps {
		err = u.multipart(ctx, f, id, ps)
	} else {
		u.abortStale(ctx, f.key) // the file was large once
		err = u.single(ctx, f, id)
	}
	if err != nil {
		return u.c.errorf("put", f.key, err)
	}
	if err := u.j.update(func(st *journalState) {
		delete(st.Uploads, f.key)
		st.Done[f.key] = id
	}); err != nil {
		return u.c.errorf("put", f.key, err)
	}
	u.count(func(s *Stats) { s.Objects++ })
	u.prog.add(0, 1)
	return nil
}

// abortStale aborts the journal's multipart upload of key, if any (best
// effort: an upload left over costs space on the server, not
// correctness).
func (u *uploader) abortStale(ctx context.Context, key string) {
	var id string
	u.j.read(func(st *journalState) {
		if up := st.Uploads[key]; up != nil {
			id = up.UploadID
		}
	})
	if id != "" {
		_ = u.c.core.AbortMultipartUpload(ctx, u.c.loc.Bucket, key, id)
	}
}

// hashFile is the SHA-256 of a file, in hex; the file must still be the
// one listed.
func hashFile(f localFile) (string, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, errRefused)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, fh, make([]byte, min(hashBuffer, max(f.size, 512))))
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, errRefused)
	}
	if n != f.size {
		return "", fmt.Errorf("%s changed while it was read: %w", f.path, errRefused)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func putOptions(id fileID) minio.PutObjectOptions {
	return minio.PutObjectOptions{UserMetadata: map[string]string{metaSHA256: id.SHA256}}
}

// single puts a file smaller than a part in one request.
func (u *uploader) single(ctx context.Context, f localFile, id fileID) error {
	var sent int64
	err := u.t.retry(ctx, func() error {
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%w: %w", err, errRefused)
		}
		defer fh.Close()
		u.prog.add(-sent, 0)
		sent = 0
		r := io.LimitReader(fh, f.size)
		_, err = u.c.core.PutObject(ctx, u.c.loc.Bucket, f.key, r, f.size, "", id.SHA256, putOptions(id))
		if err == nil {
			sent = f.size
			u.prog.add(f.size, 0)
		}
		return err
	})
	if err == nil {
		u.count(func(s *Stats) { s.Bytes += f.size })
	}
	return err
}

// multipart uploads a file in parts, continuing the journal's upload of
// it when it is the same content.
func (u *uploader) multipart(ctx context.Context, f localFile, id fileID, partSize int64) error {
	c := u.c
	nparts := int((f.size + partSize - 1) / partSize)
	partLen := func(n int) int64 { return min(partSize, f.size-int64(n-1)*partSize) }

	var prev *upload
	u.j.read(func(st *journalState) {
		if up := st.Uploads[f.key]; up != nil {
			cp := *up
			cp.Parts = maps(up.Parts)
			cp.Sending = mapb(up.Sending)
			prev = &cp
		}
	})
	have := map[int]string{} // parts the server has: number → ETag
	var uploadID string
	if prev != nil && prev.Size == id.Size && prev.SHA256 == id.SHA256 && prev.PartSize == partSize {
		parts, err := u.listParts(ctx, f.key, prev.UploadID)
		switch {
		case err == nil:
			uploadID = prev.UploadID
			for _, p := range parts {
				if p.PartNumber >= 1 && p.PartNumber <= nparts && p.Size == partLen(p.PartNumber) {
					have[p.PartNumber] = p.ETag
				}
			}
			u.count(func(s *Stats) { s.Resumed = true })
		case errorResponse(err).Code == "NoSuchUpload":
		default:
			return err
		}
	} else if prev != nil { // the file changed: its old upload is of no use
		_ = c.core.AbortMultipartUpload(ctx, c.loc.Bucket, f.key, prev.UploadID)
	}
	// Parts an earlier call sent (or started) that are sent again.
	var earlier map[int]bool
	if prev != nil {
		earlier = map[int]bool{}
		for n := range prev.Sending {
			earlier[n] = true
		}
		for n := range prev.Parts {
			earlier[n] = true
		}
	}
	if uploadID == "" {
		err := u.t.retry(ctx, func() error {
			var err error
			uploadID, err = c.core.NewMultipartUpload(ctx, c.loc.Bucket, f.key, putOptions(id))
			return err
		})
		if err != nil {
			return err
		}
	}
	if err := u.j.update(func(st *journalState) {
		st.Uploads[f.key] = &upload{fileID: id, UploadID: uploadID, PartSize: partSize, Parts: maps(have)}
	}); err != nil {
		return err
	}
	var haveBytes int64
	for n := range have {
		haveBytes += partLen(n)
	}
	u.prog.add(haveBytes, 0)

	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("%w: %w", err, errRefused)
	}
	defer fh.Close()

	var (
		mu    sync.Mutex // guards etags
		etags = maps(have)
	)
	g, gctx := errgroup.WithContext(ctx)
	var journalErr error
parts:
	for n := 1; n <= nparts; n++ {
		if _, ok := have[n]; ok {
			continue
		}
		size := partLen(n)
		select {
		case u.sending <- struct{}{}:
		case <-gctx.Done():
			break parts
		}
		if err := u.j.update(func(st *journalState) {
			up := st.Uploads[f.key]
			if up.Sending == nil {
				up.Sending = map[int]bool{}
			}
			up.Sending[n] = true
		}); err != nil {
			<-u.sending
			journalErr = err
			break
		}
		if earlier[n] {
			u.count(func(s *Stats) { s.ResentBytes += size })
		}
		g.Go(func() error {
			defer func() { <-u.sending }()
			var part minio.ObjectPart
			err := u.t.retry(gctx, func() error {
				// The part streams from the file: no buffer, and a retry
				// reads it again. Its payload is not signed (that would
				// hash it with SHA-256 a second time): a CRC32C the
				// server checks guards it in transit, and the whole
				// object's SHA-256 is in its metadata.
				r := io.NewSectionReader(fh, int64(n-1)*partSize, size)
				crc := crc32.New(castagnoli)
				if _, err := io.CopyBuffer(crc, r, make([]byte, 64<<10)); err != nil {
					return fmt.Errorf("read %s: %w: %w", f.path, err, errRefused)
				}
				if _, err := r.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("read %s: %w: %w", f.path, err, errRefused)
				}
				var err error
				part, err = c.core.PutObjectPart(gctx, c.loc.Bucket, f.key, uploadID, n, r, size, minio.PutObjectPartOptions{
					DisableContentSha256: true,
					CustomHeader:         http.Header{"X-Amz-Checksum-Crc32c": {base64.StdEncoding.EncodeToString(crc.Sum(nil))}},
				})
				return err
			})
			if err != nil {
				return fmt.Errorf("part %d: %w", n, err)
			}
			mu.Lock()
			etags[n] = part.ETag
			mu.Unlock()
			u.count(func(s *Stats) { s.Bytes += size })
			u.prog.add(size, 0)
			return u.j.update(func(st *journalState) {
				up := st.Uploads[f.key]
				delete(up.Sending, n)
				up.Parts[n] = part.ETag
			})
		})
	}
	err = g.Wait()
	if err == nil {
		err = cmp.Or(journalErr, ctx.Err())
	}
	if err != nil {
		if u.j.path == "" { // nothing will resume it: free the parts
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = c.core.AbortMultipartUpload(actx, c.loc.Bucket, f.key, uploadID)
			cancel()
		}
		return err
	}
	if info, err := fh.Stat(); err != nil || info.Size() != f.size || info.ModTime().UnixNano() != f.mtime {
		return fmt.Errorf("%s changed while it was uploaded: %w", f.path, errRefused)
	}
	parts := make([]minio.CompletePart, 0, nparts)
	for n := 1; n <= nparts; n++ {
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: etags[n]})
	}
	return u.t.retry(ctx, func() error {
		_, err := c.core.CompleteMultipartUpload(ctx, c.loc.Bucket, f.key, uploadID, parts, putOptions(id))
		if errorResponse(err).Code == "NoSuchUpload" {
			// An earlier attempt may have completed it and lost the answer.
			info, serr := c.core.StatObject(ctx, c.loc.Bucket, f.key, minio.StatObjectOptions{})
			if serr == nil && info.Size == f.size && info.UserMetadata[metaKey(info.UserMetadata)] == id.SHA256 {
				return nil
			}
		}
		return err
	})
}

// metaKey is the key sha256 has in a user metadata map (servers differ
// in case).
func metaKey(m map[string]string) string {
	for k := range m {
		if strings.EqualFold(k, metaSHA256) || strings.EqualFold(k, "X-Amz-Meta-"+metaSHA256) {
			return k
		}
	}
	return metaSHA256
}

// listParts lists the parts the server has of an upload.
func (u *uploader) listParts(ctx context.Context, key, uploadID string) ([]minio.ObjectPart, error) {
	var parts []minio.ObjectPart
	marker := 0
	for {
		var res minio.ListObjectPartsResult
		err := u.t.retry(ctx, func() error {
			var err error
			res, err = u.c.core.ListObjectParts(ctx, u.c.loc.Bucket, key, uploadID, marker, 1000)
			return err
		})
		if err != nil {
			return nil, err
		}
		parts = append(parts, res.ObjectParts...)
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
	}
}

func maps(m map[int]string) map[int]string {
	out := make(map[int]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapb(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
