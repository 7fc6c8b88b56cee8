package s3

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/dmsnet/dms/internal/storage/s3/s3test"
)

// flaky is a proxy in front of the real server that answers the first
// fail requests itself, with status (0: it drops the connection).
type flaky struct {
	proxy    *httputil.ReverseProxy
	fail     atomic.Int64
	status   int
	requests atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if f.fail.Add(-1) >= 0 {
		if f.status == 0 {
			hj, ok := w.(http.Hijacker)
			if ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		w.WriteHeader(f.status)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

func startFlaky(t *testing.T, srv *s3test.Server, status int) (*flaky, string) {
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{proxy: httputil.NewSingleHostReverseProxy(u), status: status}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts.URL
}

var errAny = errors.New("any error")

// Transient failures (5xx, a dropped connection) are retried; a
// permanent one (no such bucket) is tried once.
func TestRetries(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("bkt")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": randBytes(t, 100), "big": randBytes(t, 2*testPart+1)})
	tests := []struct {
		name    string
		status  int
		fail    int64
		retries int
		bucket  string
		wantErr error // nil: success
		minReqs int64 // requests the proxy must see (0: not checked)
		maxReqs int64 // requests the proxy may see (0: not checked)
	}{
		{"503 twice", http.StatusServiceUnavailable, 2, 5, "bkt", nil, 0, 0},
		{"500 three times", http.StatusInternalServerError, 3, 5, "bkt", nil, 0, 0},
		{"connection dropped", 0, 2, 5, "bkt", nil, 0, 0},
		// Two files at once, each tried 1 + 2 times.
		{"503 more than the retries", http.StatusServiceUnavailable, 100, 2, "bkt", errAny, 3, 6},
		// Each of the two files tried once.
		{"no such bucket is not retried", 0, 0, 5, "nope", ErrNoSuchBucket, 1, 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, endpoint := startFlaky(t, srv, tc.status)
			f.fail.Store(tc.fail)
			tr := newTest(Options{Retries: tc.retries})
			loc := Location{Endpoint: endpoint, Bucket: tc.bucket, Prefix: "retry" + string(rune('a'+i))}
			_, err := tr.Upload(context.Background(), loc, srv.Credentials, src, "", nil)
			if err == nil {
				_, err = tr.Download(context.Background(), loc, srv.Credentials, filepath.Join(t.TempDir(), "d"), nil)
			}
			switch {
			case tc.wantErr == errAny:
				if err == nil {
					t.Fatal("no error, want one after the retries are used up")
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("error %v, want success after %d failures", err, tc.fail)
			}
			if n := f.requests.Load(); tc.maxReqs > 0 && (n < tc.minReqs || n > tc.maxReqs) {
				t.Errorf("proxy saw %d requests, want %d to %d", n, tc.minReqs, tc.maxReqs)
			}
		})
	}
}
