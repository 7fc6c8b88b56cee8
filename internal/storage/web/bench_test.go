package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFetch fetches 64 MiB from a loopback server; the anchor, in the
// same run, is a GET copied to a file with its SHA-256 and an fsync.
func BenchmarkFetch(b *testing.B) {
	data := bytes.Repeat(body, 64<<20/len(body)+1)[:64<<20]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	b.Run("anchor GET+sha256+fsync", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			resp, err := srv.Client().Get(srv.URL + "/f")
			if err != nil {
				b.Fatal(err)
			}
			out, _ := os.Create(filepath.Join(b.TempDir(), "f"))
			if _, err := io.Copy(io.MultiWriter(out, sha256.New()), resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			out.Sync()
			out.Close()
		}
	})
	b.Run("Fetch", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := Fetch(context.Background(), srv.Client(), srv.URL+"/f", sum(data), b.TempDir(), "", 0, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
