package devnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/poll"
)

const testToken = "0123456789abcdef0123456789abcdef"

// world is a network of fake nodes, each behind a real API server: what
// one node dials, both see connected (as libp2p does).
type world struct {
	mu    sync.Mutex
	conn  map[[2]string]bool // guarded by mu: {a, b} sorted
	fails map[[2]string]int  // guarded by mu: dials of {from, to} still to fail
	nodes []*fakeNode
	// discover: each time a node lists its peers, its discovery
	// connects it to one more (guarded by mu).
	discover bool
	// Connect calls in flight, and the most at once (guarded by mu).
	inflight, maxInflight int
	dials                 int
}

type fakeNode struct {
	w       *world
	name    string
	peerID  string
	home    string
	mu      sync.Mutex
	anchors []api.AnchorRequest  // guarded by mu
	onboard []api.OnboardRequest // guarded by mu
	benched int                  // guarded by mu
	refuse  bool                 // Onboard refuses
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (n *fakeNode) Info(context.Context) api.Node {
	return api.Node{PeerID: n.peerID, DID: "did:key:" + n.name, Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + n.peerID}}
}

func (n *fakeNode) Peers(context.Context) []api.Peer {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	if n.w.discover {
		for _, o := range n.w.nodes {
			if k := pair(n.peerID, o.peerID); o != n && !n.w.conn[k] {
				n.w.conn[k] = true
				break
			}
		}
	}
	var ps []api.Peer
	for _, o := range n.w.nodes {
		if o != n {
			ps = append(ps, api.Peer{ID: o.peerID, Connected: n.w.conn[pair(n.peerID, o.peerID)]})
		}
	}
	return ps
}

func (n *fakeNode) Connect(_ context.Context, addr string) (string, error) {
	to := addr[strings.LastIndex(addr, "/")+1:]
	n.w.mu.Lock()
	n.w.inflight++
	n.w.dials++
	n.w.maxInflight = max(n.w.maxInflight, n.w.inflight)
	n.w.mu.Unlock()
	runtime.Gosched() // let other dials overlap this one
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	n.w.inflight--
	if k := [2]string{n.peerID, to}; n.w.fails[k] > 0 {
		n.w.fails[k]--
		return "", &apiserver.BadRequest{Err: errors.New("dial backoff")}
	}
	n.w.conn[pair(n.peerID, to)] = true
	return to, nil
}

func (n *fakeNode) Ping(context.Context, string) (string, time.Duration, error) {
	return "", 0, errors.New("no ping")
}

func (n *fakeNode) Snapshot(context.Context) (api.ResourceSnapshot, error) {
	return api.ResourceSnapshot{}, nil
}

func (n *fakeNode) Onboard(_ context.Context, req api.OnboardRequest) (api.OnboardResult, error) {
	if n.refuse {
		return api.OnboardResult{}, &apiserver.Refused{Err: errors.New("ram exceeds available")}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onboard = append(n.onboard, req)
	return api.OnboardResult{}, nil
}

func (n *fakeNode) Offboard(context.Context) (api.OffboardResult, error) {
	return api.OffboardResult{}, nil
}

func (n *fakeNode) Benchmark(context.Context, api.BenchmarkRequest) (api.BenchmarkResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.benched++
	return api.BenchmarkResult{}, nil
}

// newWorld starts n fake nodes (node1…), each with an API server and a
// home holding its api.addr and api.token, and returns them as peers.
// down names nodes whose peer area is not wired (503).
func newWorld(t *testing.T, n int, down ...string) (*world, []Peer) {
	t.Helper()
	w := &world{conn: map[[2]string]bool{}, fails: map[[2]string]int{}}
	var peers []Peer
	for i := range n {
		fn := &fakeNode{w: w, name: fmt.Sprintf("node%d", i+1), peerID: fmt.Sprintf("12D3KooWpeer%d", i+1), home: t.TempDir()}
		w.nodes = append(w.nodes, fn)
		cfg := apiserver.Config{Addr: "127.0.0.1:0", Token: testToken, Node: fn, Peers: fn, Resources: fn, Caps: fakeCaps{fn}}
		for _, d := range down {
			if d == fn.name {
				cfg.Peers = nil
			}
		}
		s, err := apiserver.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := s.Listen()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		writeAPIFiles(t, fn.home, addr.String())
		c, err := Client(fn.home, nil)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, Peer{Name: fn.name, PeerID: fn.peerID, Addr: "/ip4/127.0.0.1/tcp/1/p2p/" + fn.peerID, API: c})
	}
	return w, peers
}

func writeAPIFiles(t *testing.T, home, addr string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, api.TokenFile), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, api.AddrFile), []byte(addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMesh(t *testing.T) {
	tests := []struct {
		name    string
		nodes   int
		fails   map[[2]string]int // dials that fail, by {from, to}
		down    []string
		timeout time.Duration
		want    string // "": connected; else in the error
	}{
		{"one node", 1, nil, nil, time.Second, ""},
		{"three nodes", 3, nil, nil, 5 * time.Second, ""},
		{"a dial fails twice, then succeeds", 3, map[[2]string]int{{"12D3KooWpeer3", "12D3KooWpeer1"}: 2}, nil, 5 * time.Second, ""},
		{"a pair never connects", 3, map[[2]string]int{{"12D3KooWpeer3", "12D3KooWpeer2"}: 1 << 20}, nil, 300 * time.Millisecond,
			"node2 is not connected to node3 within 300ms (last dial: node3 to node2: bad-request: dial backoff)"},
		{"a node does not answer", 2, nil, []string{"node2"}, 5 * time.Second, "node2: list peers: unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, peers := newWorld(t, tt.nodes, tt.down...)
			for k, v := range tt.fails {
				w.fails[k] = v
			}
			start := time.Now()
			err := Mesh(context.Background(), peers, tt.timeout)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Mesh = %v, want an error containing %q", err, tt.want)
				}
				if len(tt.down) > 0 && time.Since(start) > time.Second {
					t.Fatalf("Mesh took %s to give up on a node that does not answer, want at once", time.Since(start))
				}
				return
			}
			if err != nil {
				t.Fatalf("Mesh = %v", err)
			}
			for _, n := range w.nodes {
				for _, p := range n.Peers(context.Background()) {
					if !p.Connected {
						t.Fatalf("%s does not list %s as connected", n.name, p.ID)
					}
				}
			}
		})
	}
}

// MeshWith leaves the pairs to discovery during the grace, and then dials
// those still apart, a bounded number at once.
func TestMeshWith(t *testing.T) {
	tests := []struct {
		name     string
		nodes    int
		discover bool
		opts     MeshOptions
		want     MeshResult // Took ignored
	}{
		{"discovery connects them within the grace", 5, true, MeshOptions{Timeout: 10 * time.Second, Grace: 10 * time.Second},
			MeshResult{Discovered: true}},
		{"no grace: every pair dialed", 6, false, MeshOptions{Timeout: 10 * time.Second, Dials: 2},
			MeshResult{Apart: 15, Dialed: 15}},
		{"after the grace, the pairs apart dialed", 6, false, MeshOptions{Timeout: 10 * time.Second, Grace: 50 * time.Millisecond, Dials: 3},
			MeshResult{Apart: 15, Dialed: 15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, peers := newWorld(t, tt.nodes)
			w.discover = tt.discover
			got, err := MeshWith(context.Background(), peers, tt.opts)
			if err != nil {
				t.Fatalf("MeshWith = %v", err)
			}
			got.Took = 0
			if got != tt.want {
				t.Errorf("MeshWith = %+v, want %+v", got, tt.want)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if limit := max(tt.opts.Dials, 1); tt.opts.Dials > 0 && w.maxInflight > limit {
				t.Errorf("%d dials at once, want at most %d", w.maxInflight, limit)
			}
			if w.dials != tt.want.Dialed {
				t.Errorf("the nodes saw %d dials, want %d", w.dials, tt.want.Dialed)
			}
			if n := len(w.conn); n != tt.nodes*(tt.nodes-1)/2 {
				t.Errorf("%d pairs connected, want %d", n, tt.nodes*(tt.nodes-1)/2)
			}
		})
	}
}

func TestTrustOperatorAndOnboard(t *testing.T) {
	w, peers := newWorld(t, 3)
	ctx := context.Background()
	if err := TrustOperator(ctx, peers[1:], "did:key:zOperator"); err != nil {
		t.Fatal(err)
	}
	req := api.OnboardRequest{NoBenchmark: true}
	if err := Onboard(ctx, peers, req, time.Second); err != nil {
		t.Fatal(err)
	}
	for i, n := range w.nodes {
		wantAnchors := 1
		if i == 0 {
			wantAnchors = 0
		}
		if len(n.anchors) != wantAnchors || (wantAnchors == 1 && (n.anchors[0].Root != "did:key:zOperator" || n.anchors[0].Cmd != api.CmdRoot)) {
			t.Errorf("%s anchors = %+v, want %d for the operator on %s", n.name, n.anchors, wantAnchors, api.CmdRoot)
		}
		if len(n.onboard) != 1 || n.benched != 1 {
			t.Errorf("%s onboarded %d times, benchmarked %d, want 1 and 1", n.name, len(n.onboard), n.benched)
		}
	}

	w.nodes[1].refuse = true
	err := Onboard(ctx, peers, req, 0)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeRefused || !strings.HasPrefix(err.Error(), "node2: onboard: refused: ") {
		t.Fatalf("Onboard with node2 refusing = %v, want node2's refusal", err)
	}
}

// fakeCaps records anchors on its node.
type fakeCaps struct{ n *fakeNode }

func (f fakeCaps) Anchor(_ context.Context, a cap.Anchor, remove bool) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.anchors = append(f.n.anchors, api.AnchorRequest{Root: string(a.Root), Cmd: a.Cmd, Remove: remove})
	return nil
}

func (fakeCaps) Revoke(context.Context, cap.Revocation, cap.Chain) error { return errors.New("no") }
func (fakeCaps) Import(context.Context, cap.Chain, string) (capstore.Token, error) {
	return capstore.Token{}, errors.New("no")
}
func (fakeCaps) List(context.Context) (api.CapListing, error) { return api.CapListing{}, nil }
func (fakeCaps) Verify(context.Context, cap.Chain, string, map[string]any) error {
	return errors.New("no")
}

// member is a Member made of functions.
type member struct {
	api    func() (*api.Client, error)
	exited func() error
}

func (m member) API() (*api.Client, error)    { return m.api() }
func (m member) Exited(context.Context) error { return m.exited() }

func TestWaitReady(t *testing.T) {
	_, peers := newWorld(t, 1)
	answering := peers[0].API
	late := func() func() (*api.Client, error) {
		calls := 0
		return func() (*api.Client, error) {
			if calls++; calls < 3 {
				return nil, errors.New("no api.addr yet")
			}
			return answering, nil
		}
	}
	never := func() (*api.Client, error) { return nil, errors.New("no api.addr yet") }
	running := func() error { return nil }
	tests := []struct {
		name    string
		m       member
		cancel  bool
		wantErr string // "": ready
		is      error
	}{
		{"answers at once", member{func() (*api.Client, error) { return answering, nil }, running}, false, "", nil},
		{"answers once it wrote its address", member{late(), running}, false, "", nil},
		{"exits", member{never, func() error { return errors.New("listen: address in use") }}, false, "exited before its API answered: listen: address in use", ErrExited},
		{"never answers", member{never, running}, false, "its API answers: not within 200ms (last error: no api.addr yet)", nil},
		{"interrupted", member{never, running}, true, "context canceled", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			c, self, err := WaitReady(ctx, tt.m, 200*time.Millisecond)
			if tt.wantErr == "" {
				if err != nil || c == nil || self.PeerID != "12D3KooWpeer1" {
					t.Fatalf("WaitReady = %v, %+v, %v; want a client and node1's identity", c, self, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("WaitReady = %v, want %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("WaitReady = %v, want it to match %v", err, tt.is)
			}
			var te *poll.TimeoutError
			if tt.name == "never answers" && !errors.As(err, &te) {
				t.Fatalf("WaitReady = %#v, want a *poll.TimeoutError", err)
			}
		})
	}
}

func TestInitAndConfigure(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		runErr  error
		want    Identity
		wantErr string
	}{
		{"ok", `{"home": "/h", "node_did": "did:key:zN", "user_did": "did:key:zU"}`, nil, Identity{NodeDID: "did:key:zN", UserDID: "did:key:zU"}, ""},
		{"fails", "", errors.New("home exists"), Identity{}, "dms init: home exists"},
		{"not json", "created", nil, Identity{}, "dms init: decode output"},
		{"no DIDs", `{}`, nil, Identity{}, "no node_did or user_did"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			run := func(_ context.Context, args ...string) ([]byte, error) {
				got = args
				return []byte(tt.out), tt.runErr
			}
			id, err := Init(context.Background(), run)
			if strings.Join(got, " ") != "-o json init" {
				t.Fatalf("Init ran dms %v, want -o json init", got)
			}
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) || (err == nil && id != tt.want) {
				t.Fatalf("Init = %+v, %v; want %+v, %q", id, err, tt.want, tt.wantErr)
			}
		})
	}

	home := t.TempDir()
	settings := append(NodeSettings("/ip4/127.0.0.1/tcp/0", "127.0.0.1:0", []string{"wasm", "vm"}), Setting{"location.region", "eu"})
	settings = append(settings, LeanSettings(MaxNodes)...) // accepted by the configuration
	if err := Configure(home, settings...); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ReadFile(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(settings, Setting{"executor.docker.enabled", "false"}) {
		if v, err := config.Get(cfg, s.Key); err != nil || v != s.Value {
			t.Errorf("%s = %q (%v), want %q", s.Key, v, err, s.Value)
		}
	}
	if err := Configure(home, Setting{"p2p.no_such_key", "1"}); err == nil || !strings.Contains(err.Error(), "config p2p.no_such_key") {
		t.Fatalf("Configure with an unknown key = %v", err)
	}
	if err := Configure(home, Setting{"api.listen", "0.0.0.0:1"}); err == nil || !strings.Contains(err.Error(), "configuration: ") {
		t.Fatalf("Configure with a reachable API = %v, want a validation error", err)
	}
}
