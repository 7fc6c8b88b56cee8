package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dmsnet/dms/internal/storage"
	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// testPart is the part size of the tests: S3's minimum, which versitygw
// enforces.
const testPart = 5 << 20

func newTest(opts Options) *Transfer {
	if opts.PartSize == 0 {
		opts.PartSize = testPart
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = time.Millisecond
	}
	return New(opts)
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree is every regular file under dir, by slash path.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		names := func(m map[string][]byte) (s []string) {
			for k := range m {
				s = append(s, k)
			}
			return s
		}
		t.Fatalf("tree has %d files %v, want %d %v", len(got), names(got), len(want), names(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, w) {
			t.Errorf("file %s: %d bytes (present %v), want %d bytes equal", k, len(g), ok, len(w))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("data")
	files := map[string][]byte{
		"a.txt":              []byte("hello\n"),
		"empty":              {},
		"nested/dir/b.bin":   randBytes(t, 70_000),
		"nested/big.bin":     randBytes(t, 3*testPart+12345), // 4 parts
		"exact.bin":          randBytes(t, 2*testPart),       // 2 full parts
		"name with spaces/x": []byte("x"),
	}
	tests := []struct {
		name        string
		prefix      string
		concurrency int
	}{
		{"whole bucket", "", 1},
		{"prefix without slash", "run/1", 4},
		{"prefix with slash", "run/2/", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bucket := strings.ReplaceAll(strings.ToLower(tc.name), " ", "-")
			srv.MakeBucket(bucket)
			src := t.TempDir()
			writeTree(t, src, files)
			tr := newTest(Options{Concurrency: tc.concurrency})
			loc := Location{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: tc.prefix}
			var last storage.Progress
			st, err := tr.Upload(context.Background(), loc, srv.Credentials, src, "", func(p storage.Progress) { last = p })
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			var total int64
			for _, b := range files {
				total += int64(len(b))
			}
			if st.Objects != len(files) || st.Bytes != total {
				t.Errorf("Upload stats = %+v, want %d objects, %d bytes", st, len(files), total)
			}
			if last.Bytes != total || last.Objects != len(files) || last.TotalBytes != total {
				t.Errorf("last progress = %+v, want %d bytes of %d, %d objects", last, total, total, len(files))
			}
			key := loc.keyPrefix() + "nested/big.bin"
			info, err := srv.Stat(bucket, key)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(files["nested/big.bin"])
			if got := info.UserMetadata[metaKey(info.UserMetadata)]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("%s metadata sha256 = %q, want %x (metadata %v)", key, got, sum, info.UserMetadata)
			}

			dst := filepath.Join(t.TempDir(), "staged")
			st, err = tr.Download(context.Background(), loc, srv.Credentials, dst, nil)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			if st.Objects != len(files) || st.Bytes != total || st.Unverified != 0 {
				t.Errorf("Download stats = %+v, want %d objects, %d bytes, all verified", st, len(files), total)
			}
			sameTree(t, readTree(t, dst), files)
		})
	}
}

// Objects put by other tools: single-part ones are checked by their MD5
// ETag; a multipart one without a SHA-256 is counted as unverified.
func TestDownloadForeignObjects(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("bkt")
	small := randBytes(t, 1000)
	big := randBytes(t, 11<<20)
	srv.Put("bkt", "in/small", small)
	_, err := srv.Client().PutObject(context.Background(), "bkt", "in/big", bytes.NewReader(big), int64(len(big)),
		minio.PutObjectOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv.Put("bkt", "in/sub/", nil) // a directory marker
	srv.Put("bkt", "other", []byte("not under the prefix"))
	dst := t.TempDir()
	st, err := newTest(Options{}).Download(context.Background(), Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "in"}, srv.Credentials, dst, nil)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	sameTree(t, readTree(t, dst), map[string][]byte{"small": small, "big": big})
	if fi, err := os.Stat(filepath.Join(dst, "sub")); err != nil || !fi.IsDir() {
		t.Errorf("directory marker in/sub/: %v", err)
	}
	if st.Unverified != 0 {
		t.Errorf("Unverified = %d, want 0 (in/big has the server's full-object CRC)", st.Unverified)
	}
	// That CRC is checked: a corrupted multipart object is caught.
	srv.Corrupt("bkt", "in/big", 6<<20)
	_, err = newTest(Options{}).Download(context.Background(), Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "in"}, srv.Credentials, t.TempDir(), nil)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "in/big") {
		t.Errorf("Download of corrupted in/big = %v, want ErrChecksum naming it", err)
	}
}

func TestExpected(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	tests := []struct {
		name string
		info minio.ObjectInfo
		how  string // "" = nothing to check
	}{
		{"server sha256", minio.ObjectInfo{ChecksumSHA256: b64, ETag: "abc-2"}, "x-amz-checksum-sha256"},
		{"composite sha256 ignored", minio.ObjectInfo{ChecksumSHA256: b64, ChecksumMode: "COMPOSITE", ETag: "abc-2"}, ""},
		{"composite sha256 by suffix", minio.ObjectInfo{ChecksumSHA256: b64 + "-3", ETag: "abc-2"}, ""},
		{"metadata", minio.ObjectInfo{UserMetadata: map[string]string{"Sha256": hex.EncodeToString(sum[:])}, ETag: "abc-2"}, "metadata sha256"},
		{"bad metadata, md5 etag", minio.ObjectInfo{UserMetadata: map[string]string{"Sha256": "zz"}, ETag: `"0123456789abcdef0123456789abcdef"`}, "etag md5"},
		{"multipart etag, crc32c", minio.ObjectInfo{ETag: "0123456789abcdef0123456789abcdef-3", ChecksumCRC32C: "AAAAAA=="}, "x-amz-checksum-crc32c"},
		{"multipart etag, crc64nvme", minio.ObjectInfo{ETag: "x-3", ChecksumCRC64NVME: "AAAAAAAAAAA="}, "x-amz-checksum-crc64nvme"},
		{"multipart etag, composite crc", minio.ObjectInfo{ETag: "x-3", ChecksumCRC32C: "AAAAAA==-3"}, ""},
		{"multipart etag only", minio.ObjectInfo{ETag: "0123456789abcdef0123456789abcdef-3"}, ""},
	}
	for _, tc := range tests {
		_, h, how := expected(tc.info)
		if how != tc.how || (h == nil) != (tc.how == "") {
			t.Errorf("%s: expected() checks by %q (hash %v), want %q", tc.name, how, h != nil, tc.how)
		}
	}
}

// A second Upload with the journal sends only what changed.
func TestUploadSkipsUnchanged(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("out")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": randBytes(t, 100), "bkt": randBytes(t, 2*testPart+1), "c": []byte("c")})
	journal := filepath.Join(t.TempDir(), "journal")
	loc := Location{Endpoint: srv.Endpoint, Bucket: "out", Prefix: "sync"}
	tr := newTest(Options{})
	if _, err := tr.Upload(context.Background(), loc, srv.Credentials, src, journal, nil); err != nil {
		t.Fatal(err)
	}
	changed := randBytes(t, 200)
	writeTree(t, src, map[string][]byte{"a": changed, "d": []byte("new")})
	st, err := tr.Upload(context.Background(), loc, srv.Credentials, src, journal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Objects != 2 || st.Skipped != 2 || st.Bytes != 203 {
		t.Errorf("second Upload = %+v, want 2 objects (a, d) of 203 bytes sent, 2 skipped", st)
	}
	if got, err := srv.Get("out", "sync/a"); err != nil || !bytes.Equal(got, changed) {
		t.Errorf("sync/a after the second upload: %d bytes, %v; want the new content", len(got), err)
	}
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestErrors(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("bkt")
	tr := newTest(Options{Retries: 2})
	// An object uploaded by us (metadata sha256), and one put by another
	// tool (ETag MD5), each corrupted on disk.
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"ours.bin": randBytes(t, 5000)})
	if _, err := tr.Upload(context.Background(), Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "c1"}, srv.Credentials, src, "", nil); err != nil {
		t.Fatal(err)
	}
	srv.Corrupt("bkt", "c1/ours.bin", 4000)
	big := t.TempDir() // uploaded in parts
	writeTree(t, big, map[string][]byte{"big.bin": randBytes(t, 2*testPart+100)})
	if _, err := tr.Upload(context.Background(), Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "c3"}, srv.Credentials, big, "", nil); err != nil {
		t.Fatal(err)
	}
	srv.Corrupt("bkt", "c3/big.bin", testPart+7)
	srv.Put("bkt", "c2/theirs.bin", randBytes(t, 3000))
	srv.Corrupt("bkt", "c2/theirs.bin", 10)
	srv.Put("bkt", "esc/a/../../x", []byte("escape")) // stored as esc/x by some servers: checked below

	wrong := srv.Credentials
	wrong.SecretAccessKey = "wrong-" + wrong.SecretAccessKey[6:]
	secrets := []string{srv.Credentials.SecretAccessKey, wrong.SecretAccessKey}

	type op func(loc Location, cred storage.Credentials, dir string) error
	download := func(loc Location, cred storage.Credentials, dir string) error {
		_, err := tr.Download(context.Background(), loc, cred, dir, nil)
		return err
	}
	upload := func(loc Location, cred storage.Credentials, dir string) error {
		_, err := tr.Upload(context.Background(), loc, cred, src, "", nil)
		return err
	}
	tests := []struct {
		name     string
		op       op
		loc      Location
		cred     storage.Credentials
		want     error  // nil: only the message is checked
		mentions string // besides the bucket
	}{
		{"download: no such bucket", download, Location{Endpoint: srv.Endpoint, Bucket: "nope"}, srv.Credentials, ErrNoSuchBucket, ""},
		{"upload: no such bucket", upload, Location{Endpoint: srv.Endpoint, Bucket: "nope"}, srv.Credentials, ErrNoSuchBucket, "ours.bin"},
		{"download: wrong secret", download, Location{Endpoint: srv.Endpoint, Bucket: "bkt"}, wrong, ErrAccessDenied, ""},
		{"upload: wrong secret", upload, Location{Endpoint: srv.Endpoint, Bucket: "bkt"}, wrong, ErrAccessDenied, "ours.bin"},
		{"download: anonymous", download, Location{Endpoint: srv.Endpoint, Bucket: "bkt"}, storage.Credentials{}, ErrAccessDenied, ""},
		{"download: endpoint refuses", download, Location{Endpoint: closedPort(t), Bucket: "bkt"}, srv.Credentials, ErrUnreachable, "127.0.0.1"},
		{"upload: endpoint refuses", upload, Location{Endpoint: closedPort(t), Bucket: "bkt"}, srv.Credentials, ErrUnreachable, "127.0.0.1"},
		{"corrupted object, sha256 metadata", download, Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "c1"}, srv.Credentials, ErrChecksum, "c1/ours.bin"},
		{"corrupted multipart object, sha256 metadata", download, Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "c3"}, srv.Credentials, ErrChecksum, "c3/big.bin"},
		{"corrupted object, md5 etag", download, Location{Endpoint: srv.Endpoint, Bucket: "bkt", Prefix: "c2"}, srv.Credentials, ErrChecksum, "c2/theirs.bin"},
		{"bad endpoint", download, Location{Endpoint: "ftp://x", Bucket: "bkt"}, srv.Credentials, nil, "ftp://x"},
		{"no bucket", download, Location{Endpoint: srv.Endpoint}, srv.Credentials, nil, "no bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := tc.op(tc.loc, tc.cred, dir)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if tc.loc.Bucket != "" && !strings.Contains(msg, "bucket "+tc.loc.Bucket) {
				t.Errorf("error %q does not name bucket %s", msg, tc.loc.Bucket)
			}
			if !strings.Contains(msg, tc.mentions) {
				t.Errorf("error %q does not mention %q", msg, tc.mentions)
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error %q holds the secret", msg)
				}
			}
			// Nothing half-written is left behind.
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".dms-part-") {
					t.Errorf("left behind: %s", p)
				}
				return nil
			})
		})
	}
}

func TestLocalPath(t *testing.T) {
	tests := []struct {
		prefix, key, want string
		ok                bool
	}{
		{"", "a", "a", true},
		{"in/", "in/a/b", "a/b", true},
		{"in/", "in/a//b", "a/b", true},
		{"in/", "in/./a", "a", true},
		{"in/", "in/../x", "", false},
		{"in/", "in/a/../../x", "", false},
		{"in/", "in/a/../b", "", false},
		{"", "../x", "", false},
		{"", "/etc/passwd", "etc/passwd", true},
		{"in/", "in/", "", false},
		{"in/", "other/a", "", false},
		{"", "a\x00b", "", false},
		{"", `a\..\..\x`, "", false},
	}
	for _, tc := range tests {
		got, err := localPath(tc.prefix, tc.key)
		if (err == nil) != tc.ok || filepath.ToSlash(got) != tc.want {
			t.Errorf("localPath(%q, %q) = %q, %v; want %q, ok %v", tc.prefix, tc.key, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, errRefused) {
			t.Errorf("localPath(%q, %q) error %v is not a refusal", tc.prefix, tc.key, err)
		}
	}
}

// Parts go unsigned with a CRC32C: the server must refuse a part whose
// bytes do not match it, or a part damaged in transit would be kept.
func TestServerChecksPartCRC(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("bkt")
	c, err := newTest(Options{}).connect(Location{Endpoint: srv.Endpoint, Bucket: "bkt"}, srv.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.core.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 1000)
	crc := crc32.Checksum(data, castagnoli)
	for _, tc := range []struct {
		name string
		crc  uint32
		ok   bool
	}{{"right", crc, true}, {"wrong", crc ^ 1, false}} {
		sum := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, tc.crc))
		_, err := c.core.PutObjectPart(ctx, "bkt", "k", id, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{
			DisableContentSha256: true, CustomHeader: http.Header{"X-Amz-Checksum-Crc32c": {sum}},
		})
		if (err == nil) != tc.ok {
			t.Errorf("%s crc32c: PutObjectPart = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
