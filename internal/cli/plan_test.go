package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/ensemble"
)

// TestPrintPlan: the table form of a plan — placement, the unplaced
// nodes with the ones that block, the reasons — with no trailing blanks.
func TestPrintPlan(t *testing.T) {
	why := []api.DeploymentCandidate{{Peer: "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAbcdefg", Node: "web", Kind: "resource", Reasons: []string{"cpu: need 8, have 1 free"}}}
	tests := []struct {
		name    string
		plan    api.Plan
		want    []string
		notWant []string
	}{
		{"placed", api.Plan{ID: "p1", Asked: 3, Answered: 3, Placement: []api.DeploymentNode{{Node: "web", Provider: "12D3KooWX", Score: 0.5, Cost: "0"}}, Candidates: why},
			[]string{"1 of 1 nodes placed (3 providers asked, 3 answered); nothing deployed, nothing reserved", "web   12D3KooWX  0.50   0", "WHY NOT\n  12D3KooW…bcdefg for web: resource (cpu: need 8, have 1 free)\n"},
			[]string{"UNPLACED"}},
		{"one node blocks the others", api.Plan{ID: "p2", Asked: 3, Answered: 2, Unplaced: []string{"db", "web"}, Stuck: []string{"web"}, Candidates: why},
			[]string{"0 of 2 nodes placed (3 providers asked, 2 answered)", "UNPLACED: db, web (no provider for web; an ensemble is placed all or nothing)"},
			[]string{"NODE"}},
		{"every node stuck", api.Plan{ID: "p3", Unplaced: []string{"web"}, Stuck: []string{"web"}},
			[]string{"UNPLACED: web\n"},
			[]string{"WHY NOT", "all or nothing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := printPlan(&b, &tc.plan); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.TrimRight(line, " \t") != line {
					t.Errorf("trailing blanks: %q", line)
				}
			}
		})
	}
}

// TestProbeEnsemble: the job dms nodes --refresh plans is one a node
// accepts.
func TestProbeEnsemble(t *testing.T) {
	spec, err := ensemble.Parse([]byte(probeEnsemble))
	if err != nil {
		t.Fatal(err)
	}
	if probs := spec.Unsupported(); len(probs) > 0 {
		t.Fatal(probs)
	}
}

// TestPlanCommand: dms plan against a fake node API: it sends the
// ensemble with a delegation of /dms/deployment/plan only, to the node,
// and exits 3 when a node is unplaced (also with -o json); dms nodes
// prints the providers.
func TestPlanCommand(t *testing.T) {
	home := newHome(t)
	nodeDID := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	var got api.PlanRequest
	unplaced := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/node":
			json.NewEncoder(w).Encode(api.Node{PeerID: "12D3KooWnode", DID: nodeDID})
		case "/api/v1/plan":
			json.NewDecoder(r.Body).Decode(&got)
			p := api.Plan{ID: "p1", Asked: 1, Answered: 1, Placement: []api.DeploymentNode{{Node: "job", Provider: "12D3KooWX"}}}
			if unplaced {
				p = api.Plan{ID: "p1", Unplaced: []string{"job"}, Stuck: []string{"job"}}
			}
			json.NewEncoder(w).Encode(p)
		case "/api/v1/providers":
			json.NewEncoder(w).Encode([]api.Provider{{Peer: "12D3KooWprov", Executors: []string{"wasm"}, Free: api.Resources{CPU: 1.5, RAM: 1 << 30}, Price: "0", LastSeen: time.Now().Add(-time.Minute)}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	file := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(file, []byte(probeEnsemble), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		unplaced bool
		args     []string
		wantCode int
		wantOut  string
	}{
		{"placed", false, []string{"plan", "-f", file}, 0, "1 of 1 nodes placed"},
		{"unplaced", true, []string{"plan", "-f", file}, exitUnplaced, "UNPLACED: job"},
		{"unplaced, json", true, []string{"-o", "json", "plan", "-f", file}, exitUnplaced, `"unplaced": [`},
		{"no file", false, []string{"plan"}, exitUsage, ""},
		{"nodes", false, []string{"nodes"}, 0, "12D3KooWprov  -         wasm       cpu 1.5, ram 1GiB, disk 0B  0        1m0s ago"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			unplaced = tc.unplaced
			code, stdout, stderr := run(t, append([]string{"--home", home, "--api", addr}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(stdout, tc.wantOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tc.wantCode, tc.wantOut)
			}
		})
	}
	if len(got.Chains) != 1 {
		t.Fatalf("the plan carries %d chains, want 1", len(got.Chains))
	}
	c, err := cap.DecodeChain([]byte(got.Chains[0]))
	if err != nil {
		t.Fatal(err)
	}
	if leaf := c.Leaf(); leaf.Command() != api.CmdPlan || string(c.Holder()) != nodeDID || time.Until(leaf.Expiry()) > planGrantTTL+time.Second {
		t.Fatalf("delegation of %s to %s until %s; want %s to the node for at most %s", leaf.Command(), c.Holder(), leaf.Expiry(), api.CmdPlan, planGrantTTL)
	}
}
