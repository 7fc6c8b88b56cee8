package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// maxGzipped is the budget of every asset together, gzipped (issue 19).
const maxGzipped = 200 << 10

func TestAssetsSize(t *testing.T) {
	var raw, zipped int
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(data)
		zw.Close()
		raw += len(data)
		zipped += b.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("assets: %d bytes, %d gzipped (budget %d)", raw, zipped, maxGzipped)
	if zipped > maxGzipped {
		t.Errorf("assets are %d bytes gzipped, over the %d budget", zipped, maxGzipped)
	}
}

func index(n int) func(context.Context, string) (*api.DeploymentIndex, error) {
	ix := &api.DeploymentIndex{States: map[string]int{}}
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	for i := range n {
		s := api.DeploymentSummary{ID: fmt.Sprintf("d%031x", i), State: []string{"running", "queued", "stopped"}[i%3], Version: uint64(i),
			Created: now, Updated: now, Allocations: 2, Running: 2, Providers: []string{"12D3KooWProviderAAAAAAAA", "12D3KooWProviderBBBBBBBB"}}
		if s.State == "queued" {
			s.Running, s.Providers = 0, []string{}
			s.Waiting = []api.DeploymentCandidate{{Peer: "12D3KooWProviderAAAAAAAA", Node: "web", Kind: "resource", Reasons: []string{"ram: 64 MiB free, 1 GiB asked <b>"}}}
		}
		ix.States[s.State]++
		ix.Deployments = append(ix.Deployments, s)
	}
	ix.Total = n
	return func(_ context.Context, state string) (*api.DeploymentIndex, error) {
		if state == "bogus" {
			return nil, fmt.Errorf("state: %q is not a state", state)
		}
		return ix, nil
	}
}

func get(u *UI, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	u.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

func TestPages(t *testing.T) {
	u := New(Config{Version: "v9", Index: index(3)})
	tests := []struct {
		path       string
		wantStatus int
		want       []string
	}{
		{"/ui", 200, []string{`data-page="overview"`, `aria-current="page">Overview`, "dms v9"}},
		{"/ui/", 200, []string{`id="peers"`}},
		{"/ui/deployments", 200, []string{`data-state="queued"`, "ram: 64 MiB free, 1 GiB asked &lt;b&gt;", `<option value="running">running (1)</option>`, `href="/ui/deployments/d00000000000`}},
		{"/ui/deployments?state=bogus", 200, []string{`class="error"`, "is not a state"}},
		{"/ui/deployments/dabc", 200, []string{`data-page="deployment"`, `data-id="dabc"`, `id="logs"`, `id="trace"`}},
		{"/ui/deployments/a/b", 404, []string{"Not found"}},
		{"/ui/deploy", 200, []string{`id="ensemble"`, `id="passphrase"`}},
		{"/ui/caps", 200, []string{`id="anchors"`}},
		{"/ui/static/app.js", 200, []string{"X-DMS-CSRF"}},
		{"/ui/static/app.css", 200, []string{"prefers-color-scheme:dark", "max-width:600px"}},
		{"/ui/static/nothing.js", 404, nil},
		{"/ui/elsewhere", 404, []string{"Not found"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := get(u, tc.path)
			if w.Code != tc.wantStatus {
				t.Fatalf("GET %s = %d, want %d", tc.path, w.Code, tc.wantStatus)
			}
			for _, s := range tc.want {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("GET %s lacks %q:\n%.2000s", tc.path, s, w.Body)
				}
			}
		})
	}
	w := httptest.NewRecorder()
	u.ServeHTTP(w, httptest.NewRequest("POST", "/ui/deploy", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/deploy = %d, want 405", w.Code)
	}
	w = httptest.NewRecorder()
	u.Login(w, http.StatusUnauthorized, "Wrong token <x>")
	if w.Code != 401 || !strings.Contains(w.Body.String(), "Wrong token &lt;x&gt;") || strings.Contains(w.Body.String(), "<nav") {
		t.Errorf("login page = %d:\n%s", w.Code, w.Body)
	}
}

// BenchmarkIndexPage renders the deployments index of 1,000 deployments
// (the aggregate and the template); its target is 300 ms (issue 19).
func BenchmarkIndexPage(b *testing.B) {
	u := New(Config{Index: index(1000)})
	b.ReportAllocs()
	for b.Loop() {
		w := get(u, "/ui/deployments")
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
