package apiserver

import (
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/telemetry/metrics"
)

// TestMetricsRoute: /metrics follows the API's rules (loopback, bearer
// token) and serves the Prometheus text format; without metrics it is 404.
func TestMetricsRoute(t *testing.T) {
	m := metrics.New()
	m.StoreCommit(time.Millisecond)
	on, err := New(Config{Addr: "127.0.0.1:0", Token: token, Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	off, _ := newServer(t)
	for _, tc := range []struct {
		name          string
		s             *Server
		remote, token string
		wantStatus    int
		wantCode      string
	}{
		{"no token", on, "127.0.0.1:5000", "", 401, api.CodeUnauthorized},
		{"wrong token", on, "127.0.0.1:5000", "0123456789abcdef0123456789abcdeX", 401, api.CodeUnauthorized},
		{"non-loopback", on, "10.0.0.2:5000", token, 403, api.CodeForbidden},
		{"token", on, "127.0.0.1:5000", token, 200, ""},
		{"metrics off", off, "127.0.0.1:5000", token, 404, api.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(tc.s, "GET", "/metrics", "", tc.remote, tc.token)
			if w.Code != tc.wantStatus {
				t.Fatalf("GET /metrics = %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantCode != "" {
				if !strings.Contains(w.Body.String(), `"code":"`+tc.wantCode+`"`) {
					t.Fatalf("body = %s, want code %s", w.Body, tc.wantCode)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			for _, want := range []string{"# HELP dms_store_commit_seconds ", "# TYPE dms_store_commit_seconds histogram", "dms_store_commit_seconds_count 1"} {
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("body lacks %q", want)
				}
			}
		})
	}
}
