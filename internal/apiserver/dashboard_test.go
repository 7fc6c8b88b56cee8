package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/ensemble"
)

// boardDeployments is an in-memory DeploymentService whose Get waits for
// a newer version, as the node's does.
type boardDeployments struct {
	mu      sync.Mutex
	ds      []api.Deployment // guarded by mu
	changed chan struct{}    // closed and replaced at every change; guarded by mu
	submit  []api.DeployRequest
}

func newBoard(ds ...api.Deployment) *boardDeployments {
	return &boardDeployments{ds: ds, changed: make(chan struct{})}
}

func (b *boardDeployments) set(d api.Deployment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.ds {
		if b.ds[i].ID == d.ID {
			b.ds[i] = d
		}
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *boardDeployments) Submit(_ context.Context, req api.DeployRequest) (*api.Deployment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.submit = append(b.submit, req)
	return &api.Deployment{ID: "dnew", State: "queued"}, nil
}

func (b *boardDeployments) List(context.Context) []api.Deployment {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]api.Deployment(nil), b.ds...)
}

func (b *boardDeployments) Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	deadline := time.After(wait)
	for {
		b.mu.Lock()
		var found *api.Deployment
		for i := range b.ds {
			if b.ds[i].ID == id {
				d := b.ds[i]
				found = &d
			}
		}
		ch := b.changed
		b.mu.Unlock()
		if found == nil {
			return nil, &NotFound{Err: fmt.Errorf("deployment %s: not found", id)}
		}
		if wait == 0 || found.Version > after {
			return found, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return found, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *boardDeployments) Shutdown(_ context.Context, id string) (*api.Deployment, error) {
	return &api.Deployment{ID: id, State: "shutting-down"}, nil
}

func (b *boardDeployments) Logs(context.Context, string, string, bool, api.LogFilter, func(api.LogLine)) error {
	return nil
}

type fakeUserKey struct{ pass string }

func (f fakeUserKey) DeployChains(_ context.Context, pass []byte, _ time.Duration) ([]string, error) {
	if string(pass) != f.pass {
		return nil, &BadRequest{Err: errors.New("wrong passphrase for the user key")}
	}
	return []string{"chain-deployment", "chain-allocation"}, nil
}

func sampleDeployments() []api.Deployment {
	return []api.Deployment{
		{ID: "dqueued", State: "queued", Version: 3, Message: "no provider fits",
			Allocations: []api.DeploymentAlloc{{Name: "web", State: "pending"}},
			Candidates:  []api.DeploymentCandidate{{Peer: "12D3KooWA", Node: "web", Kind: "resource", Reasons: []string{"ram: 64 MiB free, 1 GiB asked"}}}},
		{ID: "drunning", State: "running", Version: 7,
			Placement: []api.DeploymentNode{{Node: "a", Provider: "12D3KooWB"}, {Node: "b", Provider: "12D3KooWA"}},
			Allocations: []api.DeploymentAlloc{
				{Name: "web", State: "running", Provider: "12D3KooWB", Restarts: 2},
				{Name: "db", State: "running", Provider: "12D3KooWA", Restarts: 1},
			}},
		{ID: "dstopped", State: "stopped", Version: 9, Candidates: []api.DeploymentCandidate{{Peer: "x", Kind: "price"}}},
	}
}

func newBoardServer(t *testing.T, b *boardDeployments, key UserKeyService) *Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Version: "test", Deployments: b, UserKey: key, Node: fakeNode{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fakeNode struct{}

func (fakeNode) Info(context.Context) api.Node {
	return api.Node{PeerID: "12D3KooWself", DID: "did:key:z6Mkself"}
}

func TestDeploymentIndex(t *testing.T) {
	s := newBoardServer(t, newBoard(sampleDeployments()...), nil)
	tests := []struct {
		name, query string
		wantStatus  int
		wantIDs     []string
	}{
		{"all", "", 200, []string{"dqueued", "drunning", "dstopped"}},
		{"running", "?state=running", 200, []string{"drunning"}},
		{"none", "?state=failed", 200, []string{}},
		{"unknown state", "?state=sleeping", 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s, "GET", "/api/v1/dashboard/deployments"+tc.query, "", "127.0.0.1:1", token)
			if w.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantStatus != 200 {
				return
			}
			var ix api.DeploymentIndex
			if err := json.Unmarshal(w.Body.Bytes(), &ix); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range ix.Deployments {
				ids = append(ids, d.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tc.wantIDs)
			}
			if ix.Total != 3 || ix.States["running"] != 1 || ix.States["queued"] != 1 || ix.States["stopped"] != 1 {
				t.Errorf("total %d states %v, want 3 and one of each", ix.Total, ix.States)
			}
		})
	}
	w := do(s, "GET", "/api/v1/dashboard/deployments", "", "127.0.0.1:1", token)
	var ix api.DeploymentIndex
	json.Unmarshal(w.Body.Bytes(), &ix)
	q, r, st := ix.Deployments[0], ix.Deployments[1], ix.Deployments[2]
	if len(q.Waiting) != 1 || q.Waiting[0].Kind != "resource" || q.Waiting[0].Reasons[0] != "ram: 64 MiB free, 1 GiB asked" {
		t.Errorf("queued waiting = %+v, want the candidate's reasons", q.Waiting)
	}
	if r.Allocations != 2 || r.Running != 2 || r.Restarts != 3 || fmt.Sprint(r.Providers) != "[12D3KooWA 12D3KooWB]" || r.Waiting != nil {
		t.Errorf("running summary = %+v", r)
	}
	if st.Waiting != nil {
		t.Errorf("a stopped deployment shows why-not reasons: %+v", st.Waiting)
	}
}

const badEnsemble = `version: v1
allocations:
  web:
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution:
      imag: busybox
    colour: blue
`

func TestValidate(t *testing.T) {
	s := newBoardServer(t, newBoard(), nil)
	body, _ := json.Marshal(api.ValidateRequest{Ensemble: badEnsemble})
	w := do(s, "POST", "/api/v1/validate", string(body), "127.0.0.1:1", token)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var v api.Validation
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	// The same problems as dms validate (ensemble.Parse), with their lines.
	_, err := ensemble.Parse([]byte(badEnsemble))
	var probs ensemble.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Parse = %v, want problems", err)
	}
	if v.Valid || len(v.Problems) != len(probs) {
		t.Fatalf("validation = %+v, want %d problems", v, len(probs))
	}
	lines := map[int]bool{}
	for i, p := range probs {
		got := v.Problems[i]
		if got.Path != p.Path || got.Line != p.Line || got.Message != p.Msg {
			t.Errorf("problem %d = %+v, want %+v", i, got, p)
		}
		lines[got.Line] = true
	}
	if !lines[7] || !lines[8] {
		t.Errorf("problem lines = %v, want 7 (imag) and 8 (colour)", lines)
	}
	good, _ := json.Marshal(api.ValidateRequest{Ensemble: "version: v1\nallocations:\n  web:\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: busybox}\n"})
	w = do(s, "POST", "/api/v1/validate", string(good), "127.0.0.1:1", token)
	json.Unmarshal(w.Body.Bytes(), &v)
	if !v.Valid || v.Allocations != 1 || len(v.Problems) != 0 {
		t.Errorf("valid ensemble = %+v", v)
	}
}

func TestDashboardDeploy(t *testing.T) {
	good := "version: v1\nallocations:\n  web:\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: busybox}\n"
	wasm := "version: v1\nallocations:\n  hi:\n    executor: wasm\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {module: ./hello.wasm}\n"
	tests := []struct {
		name       string
		key        UserKeyService
		req        api.DashboardDeployRequest
		wantStatus int
		wantInBody string
	}{
		{"invalid", fakeUserKey{"pw"}, api.DashboardDeployRequest{Ensemble: badEnsemble, Passphrase: "pw"}, 422, `"line":7`},
		{"local file", fakeUserKey{"pw"}, api.DashboardDeployRequest{Ensemble: wasm, Passphrase: "pw"}, 422, "cannot be sent from the dashboard"},
		{"no passphrase", fakeUserKey{"pw"}, api.DashboardDeployRequest{Ensemble: good}, 400, "passphrase"},
		{"wrong passphrase", fakeUserKey{"pw"}, api.DashboardDeployRequest{Ensemble: good, Passphrase: "nope"}, 400, "wrong passphrase"},
		{"no user key", nil, api.DashboardDeployRequest{Ensemble: good, Passphrase: "pw"}, 503, "not available"},
		{"deployed", fakeUserKey{"pw"}, api.DashboardDeployRequest{Ensemble: good, Passphrase: "pw"}, 200, `"id": "dnew"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoard()
			s := newBoardServer(t, b, tc.key)
			body, _ := json.Marshal(tc.req)
			w := do(s, "POST", "/api/v1/dashboard/deploy", string(body), "127.0.0.1:1", token)
			if w.Code != tc.wantStatus || !strings.Contains(w.Body.String(), tc.wantInBody) {
				t.Fatalf("deploy = %d %s, want %d with %q", w.Code, w.Body, tc.wantStatus, tc.wantInBody)
			}
			if strings.Contains(w.Body.String(), tc.req.Passphrase) && tc.req.Passphrase != "" {
				t.Errorf("the answer holds the passphrase: %s", w.Body)
			}
			if tc.wantStatus == 200 && (len(b.submit) != 1 || len(b.submit[0].Chains) != 2 || b.submit[0].Ensemble != good) {
				t.Errorf("submitted %+v, want the ensemble with the two chains", b.submit)
			}
			if tc.wantStatus != 200 && len(b.submit) != 0 {
				t.Errorf("submitted %+v after a refusal", b.submit)
			}
		})
	}
}

// sseReader reads the events of a Server-Sent Events stream.
type sseReader struct{ sc *bufio.Scanner }

func (r sseReader) next(t *testing.T) (event, data string) {
	t.Helper()
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && event != "":
			return event, data
		}
	}
	t.Fatalf("stream ended: %v", r.sc.Err())
	return "", ""
}

func openStream(t *testing.T, ts *httptest.Server, path string) sseReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %s = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return sseReader{sc}
}

func TestStreamDeployment(t *testing.T) {
	b := newBoard(sampleDeployments()...)
	ts := httptest.NewServer(newBoardServer(t, b, nil))
	t.Cleanup(ts.Close) // after the stream's cleanup closed it
	st := openStream(t, ts, "/api/v1/deployments/drunning/stream")
	ev, data := st.next(t)
	var d api.Deployment
	if json.Unmarshal([]byte(data), &d); ev != "deployment" || d.ID != "drunning" || d.Version != 7 {
		t.Fatalf("first event = %s %s", ev, data)
	}
	next := sampleDeployments()[1]
	next.State, next.Version = "stopped", 8
	b.set(next)
	ev, data = st.next(t)
	if json.Unmarshal([]byte(data), &d); ev != "deployment" || d.State != "stopped" || d.Version != 8 {
		t.Fatalf("second event = %s %s", ev, data)
	}
	if ev, _ := st.next(t); ev != "end" {
		t.Fatalf("after the end: %s, want end", ev)
	}
	w := do(newBoardServer(t, b, nil), "GET", "/api/v1/deployments/dnothing/stream", "", "127.0.0.1:1", token)
	if w.Code != 404 {
		t.Errorf("unknown deployment stream = %d, want 404", w.Code)
	}
}

func TestStreamIndex(t *testing.T) {
	b := newBoard(sampleDeployments()...)
	ts := httptest.NewServer(newBoardServer(t, b, nil))
	t.Cleanup(ts.Close) // after the stream's cleanup closed it
	st := openStream(t, ts, "/api/v1/dashboard/deployments/stream?state=running")
	ev, data := st.next(t)
	var ix api.DeploymentIndex
	if json.Unmarshal([]byte(data), &ix); ev != "index" || len(ix.Deployments) != 1 {
		t.Fatalf("first event = %s %s", ev, data)
	}
	next := sampleDeployments()[1]
	next.State, next.Version = "shutting-down", 8
	b.set(next)
	ev, data = st.next(t)
	if json.Unmarshal([]byte(data), &ix); ev != "index" || len(ix.Deployments) != 0 || ix.States["shutting-down"] != 1 {
		t.Fatalf("after a change = %s %s", ev, data)
	}
}

// manyDeployments are n deployments as List returns them: two
// allocations on two providers each, a third of them queued with the
// reasons of two providers.
func manyDeployments(n int) []api.Deployment {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	ds := make([]api.Deployment, n)
	for i := range ds {
		d := api.Deployment{ID: fmt.Sprintf("d%031x", i), State: []string{"running", "queued", "stopped"}[i%3], Version: uint64(i + 1),
			Owner: "did:key:z6MkownerOwnerOwnerOwnerOwnerOwnerOwnerOwner", Created: now, Updated: now, Round: 1, Epoch: 1,
			Placement: []api.DeploymentNode{{Node: "a", Provider: "12D3KooWProviderAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Score: 0.9}, {Node: "b", Provider: "12D3KooWProviderBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", Score: 0.8}},
			Allocations: []api.DeploymentAlloc{
				{Name: "web", Node: "a", Provider: "12D3KooWProviderAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", State: "running", Restarts: i % 2, Attempt: 1, LastSeen: now},
				{Name: "db", Node: "b", Provider: "12D3KooWProviderBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", State: "running", Attempt: 1, LastSeen: now},
			}}
		if d.State == "queued" {
			d.Placement, d.Allocations[0].Provider, d.Allocations[1].Provider = nil, "", ""
			d.Candidates = []api.DeploymentCandidate{
				{Peer: "12D3KooWProviderAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Node: "a", Kind: "resource", Reasons: []string{"ram: 512 MiB free, 1 GiB asked"}},
				{Peer: "12D3KooWProviderBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", Node: "a", Kind: "executor", Reasons: []string{"no docker"}},
			}
		}
		ds[i] = d
	}
	return ds
}

// BenchmarkDashboardIndex measures the deployments index of 1,000
// deployments, each from one request through the whole server: the
// aggregate endpoint (JSON) and the /ui/deployments page that renders it;
// the target is 300 ms (issue 19). The anchor, in the same run, is GET
// /api/v1/deployments, the list the index replaces (which still leaves a
// client to sum up each row).
func BenchmarkDashboardIndex(b *testing.B) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: newBoard(manyDeployments(1000)...)})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, path string }{
		{"anchor-list", "/api/v1/deployments"},
		{"index-json", "/api/v1/dashboard/deployments"},
		{"index-page", "/ui/deployments"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				w := do(s, "GET", bc.path, "", "127.0.0.1:1", token)
				if w.Code != 200 {
					b.Fatalf("GET %s = %d", bc.path, w.Code)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
			b.ReportMetric(300, "target-ms")
		})
	}
}
