// Package transfer copies a directory from one node to another in
// checked, resumable chunks, over whatever carries the requests.
//
// The side holding the files (a provider's out volume) answers two
// questions: what is there (BuildManifest: every regular file with its
// size, mode and SHA-256) and what bytes are at this offset of this file
// (ReadChunk, never outside the directory). Dir answers both for a local
// directory. The side fetching (the user's node) calls Download with a
// Source that asks them, across the network or not:
//
//	stats, err := transfer.Download(ctx, src, "results/", progress)
//	if errors.Is(err, transfer.ErrChecksum) { … a file came out different … }
//
// Download writes each file to dest/PATH.part, resumes such a file from
// its length when called again, checks the whole file's SHA-256 before
// renaming it into place (with the manifest's permission bits, plus read
// and write for the owner), and skips files already there with the right
// hash. Paths are slash-separated and relative; a manifest naming a path
// outside dest (absolute, "..") is refused whole, and every write goes
// through an os.Root of dest, so a symlink left in dest cannot lead out
// of it either.
//
// Symbolic links, devices, sockets and pipes in the source directory are
// skipped: only regular files are listed and served.
//
// Concurrency: Download fetches up to Files files at once and keeps at
// most InFlight chunk requests outstanding in all, so it holds at most
// InFlight × ChunkSize bytes of chunks in memory.
package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/storage"
)

const (
	// MaxChunk is the most bytes one ReadChunk returns.
	MaxChunk = 1 << 20
	// ChunkSize is the size of the chunks Download asks for.
	ChunkSize = MaxChunk
	// InFlight bounds the chunk requests Download has outstanding.
	InFlight = 8
	// Files bounds the files Download fetches at once.
	Files = 4
	// MaxFiles bounds a manifest.
	MaxFiles = 1 << 20
	// maxPath bounds one path in a manifest.
	maxPath = 4096
	// chunkAttempts bounds the requests for one chunk.
	chunkAttempts = 3
)

// ErrChecksum is wrapped by Download when a file's bytes do not have the
// SHA-256 its manifest gives; the message names the file.
var ErrChecksum = errors.New("sha256 mismatch")

// File is one regular file of a manifest.
type File struct {
	Path   string `json:"path"`   // slash-separated, relative to the directory
	Size   int64  `json:"size"`   // bytes
	SHA256 string `json:"sha256"` // lower-case hex
	Mode   uint32 `json:"mode"`   // permission bits (0o777 at most)
}

// Manifest lists the regular files of a directory, sorted by path.
type Manifest struct {
	Files []File `json:"files"`
	Bytes int64  `json:"bytes"` // the sum of the sizes
}

// Source answers for a directory somewhere else.
type Source interface {
	Manifest(ctx context.Context) (Manifest, error)
	// Chunk returns n bytes of path at off (fewer only at the file's end).
	Chunk(ctx context.Context, path string, off int64, n int) ([]byte, error)
}

// Stats tells what a Download did.
type Stats struct {
	Files   int   // files fetched and put in place
	Bytes   int64 // bytes fetched
	Skipped int   // files already in place with the right hash
	Resumed int64 // bytes kept from .part files of an earlier Download
}

// Dir is a Source over a local directory.
type Dir string

var _ Source = Dir("")

// Manifest lists the directory (see BuildManifest).
func (d Dir) Manifest(ctx context.Context) (Manifest, error) { return BuildManifest(string(d)) }

// Chunk reads from the directory (see ReadChunk).
func (d Dir) Chunk(ctx context.Context, path string, off int64, n int) ([]byte, error) {
	return ReadChunk(string(d), path, off, n)
}

// BuildManifest lists the regular files under dir (slash paths relative to
// dir, sorted) with their sizes, permission bits and SHA-256. Symbolic
// links and other non-regular files are skipped, not followed.
func BuildManifest(dir string) (Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	defer root.Close()
	var m Manifest
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked; links, devices, pipes skipped
		}
		if len(m.Files) >= MaxFiles {
			return fmt.Errorf("more than %d files", MaxFiles)
		}
		f, err := root.Open(filepath.FromSlash(p))
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() { // replaced since the listing
			return nil
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, File{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(fi.Mode().Perm())})
		m.Bytes += n
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// ParseManifest decodes a manifest from JSON and validates it.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Validate checks that every path is a plain relative slash path (no
// "..", ".", empty or absolute), listed once in sorted order, that no path
// is also a directory of another or the .part file of another, and that
// sizes, hashes, modes and the byte total are well-formed.
func (m Manifest) Validate() error {
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("manifest: %d files, more than %d", len(m.Files), MaxFiles)
	}
	var total int64
	paths := make(map[string]bool, len(m.Files))
	dirs := map[string]bool{}
	for i, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return fmt.Errorf("manifest: %q listed after %q: not sorted or listed twice", f.Path, m.Files[i-1].Path)
		}
		switch {
		case f.Size < 0:
			return fmt.Errorf("manifest: %q: size %d", f.Path, f.Size)
		case f.Mode&^0o777 != 0:
			return fmt.Errorf("manifest: %q: mode %#o has bits beyond permissions", f.Path, f.Mode)
		case !isHexSHA256(f.SHA256):
			return fmt.Errorf("manifest: %q: sha256 %q is not 64 lower-case hex digits", f.Path, f.SHA256)
		case total > 1<<62-f.Size:
			return fmt.Errorf("manifest: sizes overflow")
		}
		total += f.Size
		paths[f.Path] = true
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	if total != m.Bytes {
		return fmt.Errorf("manifest: bytes %d, but the files hold %d", m.Bytes, total)
	}
	for _, f := range m.Files {
		if dirs[f.Path] {
			return fmt.Errorf("manifest: %q is both a file and a directory", f.Path)
		}
		if part := f.Path + ".part"; paths[part] || dirs[part] {
			return fmt.Errorf("manifest: %q and %q: the second is where the first is downloaded to", f.Path, part)
		}
	}
	return nil
}

// checkPath refuses a path that is not a plain relative slash path.
func checkPath(p string) error {
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("path %q is empty", p)
	case len(p) > maxPath:
		return fmt.Errorf("path of %d bytes, more than %d", len(p), maxPath)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("path %q holds a backslash or NUL", p)
	case !fs.ValidPath(p):
		return fmt.Errorf("path %q is not clean (\"..\", \".\" or empty elements)", p)
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ReadChunk reads up to n bytes (1 ≤ n ≤ MaxChunk) of the regular file at
// slash path p under dir, at offset off. It refuses paths that are
// absolute, hold "..", name anything but a regular file, or resolve
// outside dir through a symbolic link. Fewer than n bytes means the file
// ends; none, that off is at or past its end.
func ReadChunk(dir, p string, off int64, n int) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("chunk: %w", err)
	}
	if n < 1 || n > MaxChunk {
		return nil, fmt.Errorf("chunk %s: size %d not in 1..%d", p, n, MaxChunk)
	}
	if off < 0 {
		return nil, fmt.Errorf("chunk %s: negative offset %d", p, off)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", p, err)
	}
	defer root.Close()
	name := filepath.FromSlash(p)
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("chunk %s: not a regular file", p)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", p, err)
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("chunk %s at %d: %w", p, off, err)
	}
	return buf[:k], nil
}

// Download fetches every file of src's manifest into dest (created). See
// the package doc for resuming, checking and limits. p may be nil; it is
// called from one goroutine at a time.
func Download(ctx context.Context, src Source, dest string, p storage.ProgressFunc) (Stats, error) {
	m, err := src.Manifest(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("download: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Stats{}, fmt.Errorf("download: %w", err)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return Stats{}, fmt.Errorf("download: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return Stats{}, fmt.Errorf("download: %w", err)
	}
	defer root.Close()
	if p == nil {
		p = func(storage.Progress) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &download{
		src: src, root: root, slots: make(chan struct{}, InFlight), p: p,
		prog: storage.Progress{TotalBytes: m.Bytes, TotalObjects: len(m.Files)},
	}
	p(d.prog)
	files := make(chan File)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(Files, max(len(m.Files), 1)) {
		wg.Go(func() {
			for f := range files {
				if err := d.file(ctx, f); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
feed:
	for _, f := range m.Files {
		select {
		case files <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(files)
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return d.stats, fmt.Errorf("download: %w", first)
	}
	return d.stats, nil
}

// download is one Download under way.
type download struct {
	src   Source
	root  *os.Root
	slots chan struct{} // a token per chunk request outstanding
	p     storage.ProgressFunc

	mu    sync.Mutex
	stats Stats            // guarded by mu
	prog  storage.Progress // guarded by mu
}

// report adds to the progress and the stats and tells p.
func (d *download) report(bytes int64, objects int, s Stats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prog.Bytes += bytes
	d.prog.Objects += objects
	d.stats.Files += s.Files
	d.stats.Bytes += s.Bytes
	d.stats.Skipped += s.Skipped
	d.stats.Resumed += s.Resumed
	d.p(d.prog)
}

// file fetches one file into place.
func (d *download) file(ctx context.Context, f File) error {
	name := filepath.FromSlash(f.Path)
	if fi, err := d.root.Lstat(name); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: exists and is not a regular file", f.Path)
		}
		if fi.Size() == f.Size {
			if sum, err := d.hashOf(name); err == nil && sum == f.SHA256 {
				d.report(f.Size, 1, Stats{Skipped: 1})
				return nil
			}
		}
	}
	if dir := path.Dir(f.Path); dir != "." {
		if err := d.root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	part := name + ".part"
	out, err := d.root.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	defer out.Close()
	h := sha256.New()
	kept, err := io.Copy(h, out)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if kept > f.Size {
		if kept, err = 0, restart(out, h); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if kept > 0 {
		d.report(kept, 0, Stats{Resumed: kept})
	}
	for try := 0; ; try++ {
		if err := d.fetch(ctx, f.Path, kept, f.Size, out, h); err != nil {
			return err // the part is kept for the next Download
		}
		got := hex.EncodeToString(h.Sum(nil))
		if got == f.SHA256 {
			break
		}
		if err := restart(out, h); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if kept == 0 || try > 0 {
			_ = d.root.Remove(part)
			return fmt.Errorf("%s: %w: got %s, want %s", f.Path, ErrChecksum, got, f.SHA256)
		}
		// The kept part may be of an older file: once more from scratch.
		d.report(-f.Size, 0, Stats{Resumed: -kept})
		kept = 0
	}
	if err := out.Chmod(fs.FileMode(f.Mode) | 0o600); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := d.root.Rename(part, name); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	d.report(0, 1, Stats{Files: 1})
	return nil
}

func (d *download) hashOf(name string) (string, error) {
	f, err := d.root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// restart empties a part file and its hash.
func restart(out *os.File, h hash.Hash) error {
	h.Reset()
	if err := out.Truncate(0); err != nil {
		return err
	}
	_, err := out.Seek(0, io.SeekStart)
	return err
}

// chunk is the answer to one chunk request.
type chunk struct {
	b   []byte
	err error
}

// fetch appends bytes off..size of p to out and h, with chunk requests
// running ahead of the writes (a slot of d.slots each), written in order.
func (d *download) fetch(ctx context.Context, p string, off, size int64, out io.Writer, h io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan chunk, InFlight)
	go func() {
		defer close(queue)
		for o := off; o < size; o += ChunkSize {
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			ch := make(chan chunk, 1)
			queue <- ch // never blocks for long: the consumer drains it
			go func(o int64, n int) { ch <- d.chunk(ctx, p, o, n) }(o, int(min(ChunkSize, size-o)))
		}
	}()
	var err error
	for ch := range queue {
		c := <-ch
		<-d.slots
		if err == nil {
			err = c.err
		}
		if err == nil {
			if _, err = out.Write(c.b); err != nil {
				err = fmt.Errorf("%s: %w", p, err)
			}
			h.Write(c.b)
		}
		if err != nil {
			cancel() // the rest is drained, its slots given back
			continue
		}
		d.report(int64(len(c.b)), 0, Stats{Bytes: int64(len(c.b))})
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// chunk asks for one chunk, retrying a failure twice after a pause.
func (d *download) chunk(ctx context.Context, p string, off int64, n int) chunk {
	var err error
	for try := range chunkAttempts {
		if try > 0 {
			t := time.NewTimer(time.Duration(try) * 200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return chunk{err: ctx.Err()}
			case <-t.C:
			}
		}
		var b []byte
		b, err = d.src.Chunk(ctx, p, off, n)
		switch {
		case ctx.Err() != nil:
			return chunk{err: ctx.Err()}
		case err != nil:
			err = fmt.Errorf("%s at %d: %w", p, off, err)
		case len(b) != n:
			// The file changed size at the source: retrying will not help.
			return chunk{err: fmt.Errorf("%s at %d: %d bytes, want %d (changed at the source?)", p, off, len(b), n)}
		default:
			return chunk{b: b}
		}
	}
	return chunk{err: err}
}
