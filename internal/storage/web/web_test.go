package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/storage"
)

// body is the test file: 3 MiB of a pattern that no shift repeats.
var body = func() []byte {
	b := make([]byte, 3<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}()

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// server serves body at any path; behave may take over a request by
// returning true. It records the Range header of each request.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
	sent   int64
}

func newServer(t *testing.T, behave func(n int, w http.ResponseWriter, r *http.Request) bool) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		n := len(s.ranges)
		s.mu.Unlock()
		if behave != nil && behave(n, w, r) {
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(body))
		s.mu.Lock()
		s.sent += cw.n
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// cut sends the headers of the whole body and half of it, then drops the
// connection.
func cut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func checkFile(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", name, len(got), sum(got), len(want), sum(want))
	}
}

func TestFetch(t *testing.T) {
	type setup struct {
		behave func(n int, w http.ResponseWriter, r *http.Request) bool
		part   []byte // left by an earlier Fetch
	}
	cases := []struct {
		name     string
		setup    setup
		sha      string
		maxSize  int64
		err      error  // errors.Is
		errText  string // in the message
		requests int
		check    func(t *testing.T, s *server)
	}{
		{name: "ok", sha: sum(body), requests: 1},
		{name: "wrong hash", sha: sum([]byte("other")), err: ErrChecksum, errText: "sha256 mismatch", requests: 1},
		{
			name: "404", sha: sum(body), errText: "404 Not Found", requests: 1,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool { http.NotFound(w, r); return true }},
		},
		{
			name: "500 then ok", sha: sum(body), requests: 3,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n <= 2 {
					http.Error(w, "busy", http.StatusInternalServerError)
					return true
				}
				return false
			}},
		},
		{
			name: "cut mid-body then Range resume", sha: sum(body), requests: 2,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					cut(w, r)
					return true
				}
				return false
			}},
			check: func(t *testing.T, s *server) {
				rs := s.requests()
				if rs[0] != "" || !strings.HasPrefix(rs[1], "bytes=") {
					t.Fatalf("Range headers = %q, want none then bytes=N-", rs)
				}
				from, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rs[1], "bytes="), "-"), 10, 64)
				if err != nil || from <= 0 || from > int64(len(body))/2 {
					t.Fatalf("resumed from %q, want within the first half", rs[1])
				}
				if s.sent != int64(len(body))-from {
					t.Errorf("second request sent %d bytes, want %d", s.sent, int64(len(body))-from)
				}
			},
		},
		{
			name: "cut, server ignores Range", sha: sum(body), requests: 2,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					cut(w, r)
					return true
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.Write(body)
				return true
			}},
		},
		{
			name: "stale part restarted", sha: sum(body), requests: 2,
			setup: setup{part: bytes.Repeat([]byte("x"), 1000)},
			check: func(t *testing.T, s *server) {
				if rs := s.requests(); rs[0] != "bytes=1000-" || rs[1] != "" {
					t.Errorf("Range headers = %q, want bytes=1000- then none", rs)
				}
			},
		},
		{
			name: "whole part, 416", sha: sum(body), requests: 1,
			setup: setup{part: body},
		},
		{name: "too large", sha: sum(body), maxSize: 1 << 20, err: ErrTooLarge, requests: 1},
		{
			name: "too large, no length", sha: sum(body), maxSize: 1 << 20, err: ErrTooLarge, requests: 1,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool {
				for i := 0; i < len(body); i += 64 << 10 {
					w.Write(body[i : i+64<<10])
					w.(http.Flusher).Flush()
				}
				return true
			}},
		},
		{
			name: "wrong length", sha: sum(body), errText: "5 attempts", requests: attempts,
			setup: setup{behave: func(n int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)+10))
				w.Write(body)
				return true
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tc.setup.behave)
			dir := t.TempDir()
			if tc.setup.part != nil {
				if err := os.WriteFile(filepath.Join(dir, ".set.bin.part"), tc.setup.part, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			u, _ := url.Parse(s.URL + "/data/set.bin?token=s3cr3t")
			u.User = url.UserPassword("alice", "pa55word")
			var last storage.Progress
			err := Fetch(context.Background(), s.Client(), u.String(), tc.sha, dir, "", tc.maxSize, func(p storage.Progress) { last = p })
			if got := len(s.requests()); got != tc.requests {
				t.Errorf("requests = %d, want %d", got, tc.requests)
			}
			if tc.err == nil && tc.errText == "" {
				if err != nil {
					t.Fatalf("Fetch = %v", err)
				}
				checkFile(t, filepath.Join(dir, "set.bin"), body)
				if last.Bytes != int64(len(body)) || last.Objects != 1 {
					t.Errorf("last progress = %+v, want %d bytes, 1 object", last, len(body))
				}
				if _, err := os.Stat(filepath.Join(dir, ".set.bin.part")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("part file left: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("Fetch = nil, want an error")
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Errorf("Fetch = %v, want %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("Fetch = %v, want %q in it", err, tc.errText)
				}
				msg := err.Error()
				if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "pa55word") || strings.Contains(msg, "alice") {
					t.Errorf("error shows a secret: %s", msg)
				}
				if !strings.Contains(msg, "/data/set.bin?REDACTED") {
					t.Errorf("error %q does not name the redacted URL", msg)
				}
				if _, err := os.Stat(filepath.Join(dir, "set.bin")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("failed fetch left the file in place: %v", err)
				}
				if errors.Is(err, ErrChecksum) || errors.Is(err, ErrTooLarge) {
					if _, err := os.Stat(filepath.Join(dir, ".set.bin.part")); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("useless part file left: %v", err)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestFetchKeepsCompleteFile(t *testing.T) {
	s := newServer(t, nil)
	dir := t.TempDir()
	for range 2 {
		if err := Fetch(context.Background(), s.Client(), s.URL+"/x/set.bin", sum(body), dir, "mine", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("requests = %d, want 1 (the second Fetch found the file)", n)
	}
	checkFile(t, filepath.Join(dir, "mine"), body)
}

func TestFetchCancelledThenResumed(t *testing.T) {
	s := newServer(t, func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		// Send slowly, a piece per flush, so the cancel lands mid-body.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		for i := 0; i < len(body); i += 32 << 10 {
			if _, err := w.Write(body[i : i+32<<10]); err != nil {
				return true
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return true
			case <-time.After(time.Millisecond):
			}
		}
		return true
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	err := Fetch(ctx, s.Client(), s.URL+"/set.bin", sum(body), dir, "", 0, func(p storage.Progress) {
		if p.Bytes >= 1<<20 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Fetch = %v, want context.Canceled", err)
	}
	fi, err := os.Stat(filepath.Join(dir, ".set.bin.part"))
	if err != nil || fi.Size() < 1<<20 {
		t.Fatalf("part after cancel: %v, %v; want ≥ 1 MiB kept", fi, err)
	}
	if err := Fetch(context.Background(), s.Client(), s.URL+"/set.bin", sum(body), dir, "", 0, nil); err != nil {
		t.Fatalf("resumed Fetch = %v", err)
	}
	checkFile(t, filepath.Join(dir, "set.bin"), body)
	if rs := s.requests(); len(rs) != 2 || rs[1] != fmt.Sprintf("bytes=%d-", fi.Size()) {
		t.Errorf("Range headers = %q, want the second from %d", rs, fi.Size())
	}
}

func TestFetchRefusesBadInput(t *testing.T) {
	s := newServer(t, nil)
	good := sum(body)
	cases := []struct {
		name, url, sha, file string
		err                  string
	}{
		{"ftp", "ftp://example.org/set.bin", good, "", `scheme "ftp"`},
		{"file", "file:///etc/passwd", good, "", `scheme "file"`},
		{"no host", "http:///set.bin", good, "", "no host"},
		{"empty", "", good, "", "scheme"},
		{"space in host", "http://exa mple.org/x", good, "", "space"},
		{"space in path", s.URL + "/a b", good, "", "space"},
		{"newline", s.URL + "/a\nb", good, "", "control"},
		{"bad escape", s.URL + "/%zz", good, "", "bad URL"},
		{"short sha", s.URL + "/set.bin", "abc", "", "64 hex digits"},
		{"not hex sha", s.URL + "/set.bin", strings.Repeat("g", 64), "", "64 hex digits"},
		{"no sha", s.URL + "/set.bin", "", "", "64 hex digits"},
		{"no file name", s.URL + "/", good, "", "no usable file name"},
		{"dot dot in URL", s.URL + "/a/..", good, "", "no usable file name"},
		{"file dot dot", s.URL + "/set.bin", good, "..", "no usable file name"},
		{"file dot", s.URL + "/set.bin", good, ".", "no usable file name"},
		{"file escapes", s.URL + "/set.bin", good, "../escape", "slash"},
		{"file with slash", s.URL + "/set.bin", good, "a/b", "slash"},
		{"file with backslash", s.URL + "/set.bin", good, `a\b`, "slash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "in")
			err := Fetch(context.Background(), s.Client(), tc.url, tc.sha, dir, tc.file, 0, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Fetch(%q, %q, file %q) = %v, want an error with %q", tc.url, tc.sha, tc.file, err, tc.err)
			}
			if ents, _ := os.ReadDir(root); len(ents) > 1 {
				t.Errorf("a refused fetch wrote %v", ents)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("a refused fetch wrote %v in dir", ents)
			}
		})
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("refused fetches made %d requests", n)
	}
}

func TestFetchRetriesAreBounded(t *testing.T) {
	// A port nothing listens on: every attempt is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = Fetch(context.Background(), nil, "http://bob:hunter2@"+addr+"/set.bin?sig=s3cr3t", sum(body), t.TempDir(), "", 0, nil)
	if err == nil || !strings.Contains(err.Error(), "5 attempts") {
		t.Fatalf("Fetch from a closed port = %v, want it to give up after 5 attempts", err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "hunter2") || strings.Contains(msg, "bob") {
		t.Errorf("error shows a secret: %s", msg)
	}
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 0-99/100", 0, 100, true},
		{"bytes 42-99/100", 42, 100, true},
		{"bytes 42-99/*", 42, -1, true},
		{"bytes */100", -1, 100, true},
		{"bytes */*", 0, 0, false},
		{"bytes 50-40/100", 0, 0, false},
		{"bytes 0-100/100", 0, 0, false},
		{"bytes -1-5/100", 0, 0, false},
		{"bytes 0-5", 0, 0, false},
		{"items 0-5/6", 0, 0, false},
		{"", 0, 0, false},
		{"bytes 0-5/-6", 0, 0, false},
	}
	for _, tc := range cases {
		start, size, ok := ParseContentRange(tc.in)
		if start != tc.start || size != tc.size || ok != tc.ok {
			t.Errorf("ParseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tc.in, start, size, ok, tc.start, tc.size, tc.ok)
		}
	}
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes */100", "bytes 42-99/*", "bytes 9223372036854775807-9223372036854775807/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, size, ok := ParseContentRange(s)
		if !ok {
			return
		}
		if start < -1 || size < -1 || (start >= 0 && size >= 0 && start >= size) || (start == -1 && size < 0) {
			t.Errorf("ParseContentRange(%q) = %d, %d accepted", s, start, size)
		}
	})
}
