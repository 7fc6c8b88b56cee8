package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/storage/s3"
	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// TestListAndReadAt: the objects under a prefix come back as files with
// their SHA-256, whether Upload wrote it, or another tool put the object
// without one (it is then computed); ReadAt reads ranges and refuses
// paths out of the prefix.
func TestListAndReadAt(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("res")
	ctx := context.Background()
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a.txt": []byte("hello"), "sub/big.bin": big} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr := s3.New(s3.Options{})
	loc := s3.Location{Endpoint: srv.Endpoint, Bucket: "res", Prefix: "d1/job/1/"}
	if _, err := tr.Upload(ctx, loc, srv.Credentials, dir, "", nil); err != nil {
		t.Fatal(err)
	}
	srv.Put("res", "d1/job/1/foreign.txt", []byte("put by another tool"))
	srv.Put("res", "d1/job/2/other.txt", []byte("another attempt"))

	objs, err := tr.List(ctx, loc, srv.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"a.txt": []byte("hello"), "foreign.txt": []byte("put by another tool"), "sub/big.bin": big}
	if len(objs) != len(want) {
		t.Fatalf("listed %v, want %d objects", objs, len(want))
	}
	for _, o := range objs {
		data, ok := want[o.Path]
		sum := sha256.Sum256(data)
		if !ok || o.Size != int64(len(data)) || o.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("object %+v: not one of the uploaded files, or its size or sha256 is wrong", o)
		}
	}

	cases := []struct {
		name string
		path string
		off  int64
		n    int
		want []byte
		err  string
	}{
		{"whole", "a.txt", 0, 100, []byte("hello"), ""},
		{"middle", "sub/big.bin", 16, 4, []byte("0123"), ""},
		{"tail", "a.txt", 3, 10, []byte("lo"), ""},
		{"past the end", "a.txt", 5, 10, nil, ""},
		{"escape", "../2/other.txt", 0, 10, nil, "not a path under the prefix"},
		{"absolute", "/a.txt", 0, 10, nil, "not a path under the prefix"},
		{"no bytes", "a.txt", 0, 0, nil, "at least one byte"},
		{"missing", "nope.txt", 0, 10, nil, "nope.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tr.ReadAt(ctx, loc, srv.Credentials, tc.path, tc.off, tc.n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), srv.Credentials.SecretAccessKey) {
					t.Fatal("the error holds the secret key")
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("ReadAt = %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	if _, err := tr.List(ctx, s3.Location{Endpoint: srv.Endpoint, Bucket: "nope"}, srv.Credentials); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("List of a missing bucket: %v", err)
	}
}
