package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dmsnet/dms/internal/storage"
)

// pattern returns n bytes that differ at every offset of a chunk.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i>>9) ^ seed
	}
	return b
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// tree is the source directory of the tests: regular files of many sizes,
// and things Download must not carry.
var tree = []struct {
	path string
	data []byte
	mode fs.FileMode
}{
	{"a.txt", []byte("hello\n"), 0o644},
	{"big.bin", pattern(3*ChunkSize+12345, 1), 0o644},
	{"empty", nil, 0o600},
	{"sub/deep/x.bin", pattern(ChunkSize, 2), 0o755},
	{"sub/y", pattern(1000, 3), 0o640},
	{"z.part.txt", []byte("not a part file"), 0o644},
}

func makeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range tree {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"link-out": outside, "link-in": "a.txt", "sub/link-up": "../../"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func checkTree(t *testing.T, dest string) {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		got = append(got, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range tree {
		want = append(want, f.path)
		b, err := os.ReadFile(filepath.Join(dest, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, f.data) {
			t.Errorf("%s: %d bytes, sha256 %s; want %d, %s", f.path, len(b), hexSum(b), len(f.data), hexSum(f.data))
		}
		fi, _ := os.Stat(filepath.Join(dest, f.path))
		if wantMode := f.mode | 0o600; fi.Mode().Perm() != wantMode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), wantMode)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dest holds %q, want %q", got, want)
	}
}

func TestBuildManifest(t *testing.T) {
	dir := makeTree(t)
	m, err := BuildManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want Manifest
	for _, f := range tree {
		want.Files = append(want.Files, File{Path: f.path, Size: int64(len(f.data)), SHA256: hexSum(f.data), Mode: uint32(f.mode)})
		want.Bytes += int64(len(f.data))
	}
	gotJSON, _ := json.Marshal(m)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("BuildManifest = %s\nwant %s", gotJSON, wantJSON)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate of a built manifest = %v", err)
	}
	if _, err := BuildManifest(filepath.Join(dir, "missing")); err == nil {
		t.Error("BuildManifest of a missing directory = nil error")
	}
}

func TestDownloadRoundTrip(t *testing.T) {
	src := makeTree(t)
	dest := filepath.Join(t.TempDir(), "results")
	var last storage.Progress
	stats, err := Download(context.Background(), Dir(src), dest, func(p storage.Progress) { last = p })
	if err != nil {
		t.Fatalf("Download = %v", err)
	}
	checkTree(t, dest)
	var total int64
	for _, f := range tree {
		total += int64(len(f.data))
	}
	if want := (Stats{Files: len(tree), Bytes: total}); stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	if want := (storage.Progress{Bytes: total, TotalBytes: total, Objects: len(tree), TotalObjects: len(tree)}); last != want {
		t.Errorf("last progress = %+v, want %+v", last, want)
	}
	// Again: everything is in place already.
	stats, err = Download(context.Background(), Dir(src), dest, nil)
	if err != nil {
		t.Fatalf("second Download = %v", err)
	}
	if want := (Stats{Skipped: len(tree)}); stats != want {
		t.Errorf("second stats = %+v, want %+v", stats, want)
	}
	// A file changed at the destination is fetched again.
	if err := os.WriteFile(filepath.Join(dest, "sub/y"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	stats, err = Download(context.Background(), Dir(src), dest, nil)
	if err != nil {
		t.Fatalf("third Download = %v", err)
	}
	if want := (Stats{Files: 1, Bytes: 1000, Skipped: len(tree) - 1}); stats != want {
		t.Errorf("third stats = %+v, want %+v", stats, want)
	}
	checkTree(t, dest)
}

func TestDownloadResumesAfterCancel(t *testing.T) {
	src := makeTree(t)
	dest := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Download(ctx, Dir(src), dest, func(p storage.Progress) {
		if p.Bytes >= 2*ChunkSize {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Download = %v, want context.Canceled", err)
	}
	parts, _ := filepath.Glob(filepath.Join(dest, "*.part"))
	more, _ := filepath.Glob(filepath.Join(dest, "sub/deep/*.part"))
	if len(parts)+len(more) == 0 {
		t.Fatal("no .part file kept after the cancel")
	}
	stats, err := Download(context.Background(), Dir(src), dest, nil)
	if err != nil {
		t.Fatalf("resumed Download = %v", err)
	}
	t.Logf("resumed: %+v", stats)
	checkTree(t, dest)
	if stats.Resumed == 0 && stats.Skipped == 0 {
		t.Errorf("stats = %+v: nothing resumed or skipped", stats)
	}
	var total int64
	for _, f := range tree {
		total += int64(len(f.data))
	}
	if stats.Bytes >= total {
		t.Errorf("resumed Download fetched %d bytes of %d: all over again", stats.Bytes, total)
	}
	if left, _ := filepath.Glob(filepath.Join(dest, "*.part")); len(left) != 0 {
		t.Errorf("part files left: %v", left)
	}
}

// corrupt is a Source that changes one byte of one chunk.
type corrupt struct {
	Dir
	path string
	off  int64
}

func (c corrupt) Chunk(ctx context.Context, p string, off int64, n int) ([]byte, error) {
	b, err := c.Dir.Chunk(ctx, p, off, n)
	if err == nil && p == c.path && off == c.off {
		b[len(b)/2] ^= 0x40
	}
	return b, err
}

func TestDownloadCorruptChunk(t *testing.T) {
	src := makeTree(t)
	dest := t.TempDir()
	_, err := Download(context.Background(), corrupt{Dir(src), "big.bin", ChunkSize}, dest, nil)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "big.bin") {
		t.Fatalf("Download = %v, want a checksum error naming big.bin", err)
	}
	for _, p := range []string{"big.bin", "big.bin.part"} {
		if _, err := os.Stat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a checksum failure: %v", p, err)
		}
	}
}

func TestDownloadRestartsStalePart(t *testing.T) {
	src := makeTree(t)
	dest := t.TempDir()
	// An earlier Download of another big.bin left this.
	if err := os.WriteFile(filepath.Join(dest, "big.bin.part"), pattern(ChunkSize+7, 9), 0o600); err != nil {
		t.Fatal(err)
	}
	stats, err := Download(context.Background(), Dir(src), dest, nil)
	if err != nil {
		t.Fatalf("Download = %v", err)
	}
	checkTree(t, dest)
	// Its bytes were not kept: all of big.bin was fetched (twice: the
	// rest after the stale part, then the whole).
	big := int64(len(tree[1].data))
	if stats.Resumed != 0 || stats.Bytes != 2*big-(ChunkSize+7)+int64(len(tree[0].data)+len(tree[3].data)+len(tree[4].data)+len(tree[5].data)) {
		t.Errorf("stats = %+v, want Resumed 0 and big.bin fetched after its stale part and again whole", stats)
	}
}

// fixed is a Source with a given manifest over a real directory.
type fixed struct {
	Dir
	m Manifest
}

func (f fixed) Manifest(context.Context) (Manifest, error) { return f.m, nil }

func TestDownloadRefusesBadManifest(t *testing.T) {
	sum := hexSum(nil)
	file := func(p string) File { return File{Path: p, SHA256: sum, Mode: 0o644} }
	cases := []struct {
		name string
		m    Manifest
		err  string
	}{
		{"parent escape", Manifest{Files: []File{file("../../etc/passwd")}}, "not clean"},
		{"absolute", Manifest{Files: []File{file("/etc/passwd")}}, "absolute"},
		{"inner escape", Manifest{Files: []File{file("a/../../x")}}, "not clean"},
		{"dot", Manifest{Files: []File{file("./a")}}, "not clean"},
		{"empty element", Manifest{Files: []File{file("a//b")}}, "not clean"},
		{"trailing slash", Manifest{Files: []File{file("a/")}}, "not clean"},
		{"empty", Manifest{Files: []File{file("")}}, "empty"},
		{"backslash", Manifest{Files: []File{file(`..\..\x`)}}, "backslash"},
		{"NUL", Manifest{Files: []File{file("a\x00b")}}, "NUL"},
		{"twice", Manifest{Files: []File{file("a"), file("a")}}, "listed twice"},
		{"unsorted", Manifest{Files: []File{file("b"), file("a")}}, "not sorted"},
		{"file and dir", Manifest{Files: []File{file("a"), file("a/b")}}, "both a file and a directory"},
		{"part collision", Manifest{Files: []File{file("a"), file("a.part")}}, "downloaded to"},
		{"bad sha", Manifest{Files: []File{{Path: "a", SHA256: "00"}}}, "sha256"},
		{"upper-case sha", Manifest{Files: []File{{Path: "a", SHA256: strings.ToUpper(sum)}}}, "sha256"},
		{"setuid", Manifest{Files: []File{{Path: "a", SHA256: sum, Mode: 0o4755}}}, "mode"},
		{"negative size", Manifest{Files: []File{{Path: "a", SHA256: sum, Size: -1}}, Bytes: -1}, "size"},
		{"bytes wrong", Manifest{Files: []File{file("a")}, Bytes: 5}, "bytes 5"},
		{"overflow", Manifest{Files: []File{{Path: "a", SHA256: sum, Size: 1 << 62}, {Path: "b", SHA256: sum, Size: 1 << 62}}}, "overflow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "deep", "dest")
			_, err := Download(context.Background(), fixed{Dir(t.TempDir()), tc.m}, dest, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Download = %v, want an error with %q", err, tc.err)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Errorf("a refused manifest wrote %v", ents)
			}
		})
	}
}

func TestDownloadStaysInDest(t *testing.T) {
	src := makeTree(t)
	dest := t.TempDir()
	outside := t.TempDir()
	// dest/sub leads out: writes to sub/y must not land in outside.
	if err := os.Symlink(outside, filepath.Join(dest, "sub")); err != nil {
		t.Fatal(err)
	}
	_, err := Download(context.Background(), Dir(src), dest, nil)
	if err == nil {
		t.Fatal("Download through a symlink out of dest = nil error")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("Download wrote %v outside dest", ents)
	}
}

// flaky fails the first request for each chunk, and counts the requests
// in flight.
type flaky struct {
	Dir
	mu       sync.Mutex
	seen     map[string]bool
	now, top atomic.Int32
}

func (f *flaky) Chunk(ctx context.Context, p string, off int64, n int) ([]byte, error) {
	now := f.now.Add(1)
	for top := f.top.Load(); now > top && !f.top.CompareAndSwap(top, now); top = f.top.Load() {
	}
	defer f.now.Add(-1)
	key := fmt.Sprint(p, off)
	f.mu.Lock()
	first := !f.seen[key]
	f.seen[key] = true
	f.mu.Unlock()
	if first {
		return nil, errors.New("connection reset")
	}
	return f.Dir.Chunk(ctx, p, off, n)
}

func TestDownloadRetriesChunksWithBoundedRequests(t *testing.T) {
	src := &flaky{Dir: Dir(makeTree(t)), seen: map[string]bool{}}
	dest := t.TempDir()
	if _, err := Download(context.Background(), src, dest, nil); err != nil {
		t.Fatalf("Download = %v", err)
	}
	checkTree(t, dest)
	if top := src.top.Load(); top > InFlight {
		t.Errorf("%d chunk requests at once, want at most %d", top, InFlight)
	}
}

// short answers fewer bytes than asked.
type short struct{ Dir }

func (s short) Chunk(ctx context.Context, p string, off int64, n int) ([]byte, error) {
	b, err := s.Dir.Chunk(ctx, p, off, n)
	if len(b) > 1 {
		b = b[:len(b)-1]
	}
	return b, err
}

func TestDownloadShortChunk(t *testing.T) {
	_, err := Download(context.Background(), short{Dir(makeTree(t))}, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "changed at the source") {
		t.Fatalf("Download = %v, want a short-chunk error", err)
	}
}

func TestReadChunk(t *testing.T) {
	dir := makeTree(t)
	big := tree[1].data
	cases := []struct {
		name string
		path string
		off  int64
		n    int
		want []byte
		err  string
	}{
		{"start", "big.bin", 0, 100, big[:100], ""},
		{"whole chunk", "big.bin", ChunkSize, MaxChunk, big[ChunkSize : 2*ChunkSize], ""},
		{"end", "big.bin", int64(len(big)) - 10, 100, big[len(big)-10:], ""},
		{"past end", "big.bin", int64(len(big)) + 10, 100, []byte{}, ""},
		{"nested", "sub/y", 10, 5, tree[4].data[10:15], ""},
		{"empty file", "empty", 0, 1, []byte{}, ""},
		{"zero size", "big.bin", 0, 0, nil, "size 0"},
		{"too big", "big.bin", 0, MaxChunk + 1, nil, "not in 1.."},
		{"negative offset", "big.bin", -1, 10, nil, "negative offset"},
		{"parent", "../secret", 0, 10, nil, "not clean"},
		{"absolute", "/etc/passwd", 0, 10, nil, "absolute"},
		{"link out", "link-out", 0, 10, nil, "not a regular file"},
		{"link in", "link-in", 0, 10, nil, "not a regular file"},
		{"through a link", "sub/link-up/etc/passwd", 0, 10, nil, "escapes"},
		{"directory", "sub", 0, 10, nil, "not a regular file"},
		{"fifo", "fifo", 0, 10, nil, "not a regular file"},
		{"missing", "nope", 0, 10, nil, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadChunk(dir, tc.path, tc.off, tc.n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ReadChunk(%q, %d, %d) = %d bytes, %v; want an error with %q", tc.path, tc.off, tc.n, len(got), err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("ReadChunk(%q, %d, %d) = %d bytes, %v; want %d bytes", tc.path, tc.off, tc.n, len(got), err, len(tc.want))
			}
		})
	}
}

func FuzzManifestJSON(f *testing.F) {
	good, _ := json.Marshal(Manifest{Files: []File{{Path: "a/b.txt", Size: 3, SHA256: hexSum([]byte("abc")), Mode: 0o644}}, Bytes: 3})
	f.Add(good)
	f.Add([]byte(`{"files":[{"path":"../../etc/passwd","size":0,"sha256":"","mode":0}],"bytes":0}`))
	f.Add([]byte(`{"files":[{"path":"/abs","size":1}],"bytes":1}`))
	f.Add([]byte(`{"files":null,"bytes":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		dest := "/dest"
		var total int64
		for _, file := range m.Files {
			if !filepath.IsLocal(file.Path) || strings.Contains(file.Path, "..") && !validDots(file.Path) {
				t.Fatalf("accepted path %q is not local", file.Path)
			}
			if j := filepath.Join(dest, file.Path); !strings.HasPrefix(j, dest+"/") || j != dest+"/"+file.Path {
				t.Fatalf("accepted path %q lands at %q", file.Path, j)
			}
			total += file.Size
		}
		if total != m.Bytes {
			t.Fatalf("accepted bytes %d, files hold %d", m.Bytes, total)
		}
	})
}

// validDots reports whether every ".." in p is part of a longer name
// ("a..b"), not an element.
func validDots(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return false
		}
	}
	return true
}
