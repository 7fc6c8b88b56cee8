package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// resourcesHeld is what dms resources says a node holds.
type resourcesHeld struct {
	Allocated, Reserved, Free struct {
		CPU float64 `json:"cpu"`
	}
	Reservations []json.RawMessage `json:"reservations"`
	Allocations  []json.RawMessage `json:"allocations"`
}

type planOutput struct {
	ID         string `json:"id"`
	Placement  []struct{ Node, Provider string }
	Unplaced   []string `json:"unplaced"`
	Candidates []struct {
		Peer, Node, Kind string
		Reasons          []string
	}
	Asked, Answered int
}

// TestPlanOnDevnet: dms plan on a 3-node devnet of real processes shows
// where each node of an ensemble would land and why every other provider
// does not host it, exits 3 when a node cannot be placed, and leaves
// nothing behind: the providers' reservations and free resources read the
// same right after the plan as before it (no waiting for an expiry), and
// no deployment exists. dms nodes then lists the three providers.
func TestPlanOnDevnet(t *testing.T) {
	c := newCluster(t, "", "0.5", "1.5")
	held := func() []resourcesHeld {
		out := make([]resourcesHeld, len(c.homes))
		for i, h := range c.homes {
			h.JSON(t, &out[i], "resources")
		}
		return out
	}
	before := held()
	gang := "version: v1\nallocations:\n" + wasmTask("big", "1") + wasmTask("small", "0.25") +
		"nodes:\n  big: {allocations: [big]}\n  small: {allocations: [small]}\n"
	tests := []struct {
		name     string
		yaml     string
		wantCode int
		placed   map[string]int // node → index of the provider
		unplaced string
		reasons  []string // "node index/node/kind" that must appear
	}{
		{
			name: "gang placed", yaml: gang, wantCode: 0,
			placed:  map[string]int{"big": 2, "small": 1},
			reasons: []string{"0/big/onboarding", "0/small/onboarding", "1/big/resource", "2/small/distinct"},
		},
		{
			name: "too large", yaml: "version: v1\nallocations:\n" + wasmTask("job", "4"), wantCode: 3,
			unplaced: "job",
			reasons:  []string{"0/job/onboarding", "1/job/resource", "2/job/resource"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.homes[0].Run(t, "-o", "json", "plan", "-f", ensembleFile(t, tc.yaml))
			if r.Code != tc.wantCode {
				t.Fatalf("dms plan: %s; want exit %d", r, tc.wantCode)
			}
			var p planOutput
			if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
				t.Fatalf("dms plan -o json: %v\n%s", err, r.Stdout)
			}
			if p.Asked != 3 || p.Answered != 3 {
				t.Errorf("asked %d, answered %d; want 3, 3", p.Asked, p.Answered)
			}
			got := map[string]string{}
			for _, pn := range p.Placement {
				got[pn.Node] = pn.Provider
			}
			for node, i := range tc.placed {
				if got[node] != c.ids[i] {
					t.Errorf("%s placed on %s, want node %d (%s)", node, got[node], i, c.ids[i])
				}
			}
			if len(got) != len(tc.placed) || strings.Join(p.Unplaced, ",") != tc.unplaced {
				t.Errorf("placement %v, unplaced %v; want %v, %q", got, p.Unplaced, tc.placed, tc.unplaced)
			}
			have := map[string]bool{}
			for _, cnd := range p.Candidates {
				for i, id := range c.ids {
					if cnd.Peer == id {
						have[strings.Join([]string{string(rune('0' + i)), cnd.Node, cnd.Kind}, "/")] = true
					}
				}
			}
			for _, want := range tc.reasons {
				if !have[want] {
					t.Errorf("no reason %s among %+v", want, p.Candidates)
				}
			}
			// The table form says the same, for a person.
			table := c.homes[0].Run(t, "plan", "-f", ensembleFile(t, tc.yaml))
			if table.Code != tc.wantCode || !strings.Contains(table.Stdout, "nothing reserved") || !strings.Contains(table.Stdout, "WHY NOT") {
				t.Errorf("dms plan (table): %s", table)
			}
			after := held()
			for i := range after {
				if len(after[i].Reservations) != 0 || after[i].Reserved.CPU != 0 || after[i].Free.CPU != before[i].Free.CPU || len(after[i].Allocations) != 0 {
					t.Fatalf("node %d after the plan: %d reservations, reserved cpu %g, free cpu %g (was %g), %d allocations",
						i, len(after[i].Reservations), after[i].Reserved.CPU, after[i].Free.CPU, before[i].Free.CPU, len(after[i].Allocations))
				}
			}
		})
	}
	// A user the other providers do not trust: they do not answer the
	// plan (as they do not answer its deployments' bid requests), and
	// still nothing is reserved.
	t.Run("untrusted user", func(t *testing.T) {
		r := c.homes[1].Run(t, "-o", "json", "plan", "-f", ensembleFile(t, gang))
		var p planOutput
		if r.Code != 3 || json.Unmarshal([]byte(r.Stdout), &p) != nil {
			t.Fatalf("dms plan by an untrusted user: %s; want exit 3 and a plan", r)
		}
		refused := 0
		for _, cnd := range p.Candidates {
			// A gossiped request they do not authorize goes unanswered (as a
			// deployment's); one sent directly is refused with the reason.
			if (cnd.Peer == c.ids[0] || cnd.Peer == c.ids[2]) && (cnd.Kind == "no-answer" || cnd.Kind == "refused") {
				refused++
			}
		}
		if refused != 2 {
			t.Fatalf("reasons %+v: want nodes 0 and 2 not to answer, or to refuse", p.Candidates)
		}
		for i, h := range held() {
			if len(h.Reservations) != 0 || h.Reserved.CPU != 0 {
				t.Fatalf("node %d holds %d reservations after an untrusted plan", i, len(h.Reservations))
			}
		}
	})

	var deps []deployment
	c.homes[0].JSON(t, &deps, "deployments")
	if len(deps) != 0 {
		t.Fatalf("plans left %d deployments", len(deps))
	}
	var nodes []struct {
		Peer      string
		Executors []string
		Free      struct{ CPU float64 }
	}
	c.homes[0].JSON(t, &nodes, "nodes")
	free := map[string]float64{}
	for _, n := range nodes {
		free[n.Peer] = n.Free.CPU
	}
	for i, want := range []float64{0, 0.5, 1.5} {
		if f, ok := free[c.ids[i]]; !ok || f != want {
			t.Errorf("dms nodes: node %d free cpu %g (listed %v), want %g; %+v", i, f, ok, want, nodes)
		}
	}
	if out := c.homes[0].MustRun(t, "nodes", "--refresh"); !strings.Contains(out, c.ids[2]) || !strings.Contains(out, "LAST SEEN") {
		t.Errorf("dms nodes --refresh:\n%s", out)
	}
}
