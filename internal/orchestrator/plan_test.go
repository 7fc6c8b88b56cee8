package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// planOf is what dms plan sends node tn: the ensemble and the user's
// delegation of cmd to the node.
func (w *world) planOf(tn *tnode, yaml, cmd string) orchestrator.PlanRequest {
	w.t.Helper()
	spec, err := ensemble.Parse([]byte(yaml))
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := cap.Delegate(w.user, cap.DelegationParams{Audience: tn.key.DID(), Command: cmd, Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		w.t.Fatal(err)
	}
	return orchestrator.PlanRequest{Spec: spec, Chains: []cap.Chain{{d}}}
}

// TestPlan: a plan places the ensemble as a deployment would and says why
// every other provider does not host each node, and leaves nothing behind:
// no reservation on any provider (checked at once, not after a wait), no
// deployment.
func TestPlan(t *testing.T) {
	gang := func(n int) string {
		s := "version: v1\nallocations:\n"
		nodes := "nodes:\n"
		for i := range n {
			name := string(rune('a' + i))
			s += "  " + name + ": {executor: docker, resources: {cpu: 0.5, ram: 16MiB}, execution: {image: workload}}\n"
			nodes += "  n" + name + ": {allocations: [" + name + "]}\n"
		}
		return s + nodes
	}
	tests := []struct {
		name         string
		yaml         string
		cmd          string
		wantPlaced   int
		wantUnplaced []string
		wantStuck    int      // nodes no provider was found for
		wantKinds    []string // kinds that must appear among the reasons
		wantErr      string
	}{
		{name: "one task", yaml: task("0.5", "exit=0"), cmd: deployproto.CmdDeployment, wantPlaced: 1, wantKinds: []string{deployproto.KindOutscored}},
		{name: "narrow delegation", yaml: task("0.5", "exit=0"), cmd: deployproto.BehaviorPlan, wantPlaced: 1},
		{name: "gang of three on three", yaml: gang(3), cmd: deployproto.CmdDeployment, wantPlaced: 3, wantKinds: []string{deployproto.KindDistinct}},
		{name: "gang of four on three", yaml: gang(4), cmd: deployproto.CmdDeployment, wantUnplaced: []string{"na", "nb", "nc", "nd"}, wantStuck: 1, wantKinds: []string{deployproto.KindDistinct}},
		{name: "too large", yaml: task("100", "exit=0"), cmd: deployproto.CmdDeployment, wantUnplaced: []string{"job"}, wantStuck: 1, wantKinds: []string{deployproto.KindResource}},
		{name: "delegation of another command", yaml: task("0.5"), cmd: deployproto.CmdAllocation, wantErr: "no delegation of /dms/deployment/plan"},
		{name: "delegation of deploying only", yaml: task("0.5"), cmd: deployproto.BehaviorRequest, wantErr: "no delegation of /dms/deployment/plan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3, worldOpts{})
			start := w.free()
			svc := w.nodes[0].svc
			p, err := svc.Plan(context.Background(), w.planOf(w.nodes[0], tc.yaml, tc.cmd))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Plan = %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Placement) != tc.wantPlaced || strings.Join(p.Unplaced, ",") != strings.Join(tc.wantUnplaced, ",") {
				t.Fatalf("placed %+v, unplaced %v; want %d placed, unplaced %v", p.Placement, p.Unplaced, tc.wantPlaced, tc.wantUnplaced)
			}
			if len(p.Stuck) != tc.wantStuck {
				t.Errorf("stuck %v, want %d nodes", p.Stuck, tc.wantStuck)
			}
			if p.Asked != 3 || p.Answered != 3 {
				t.Errorf("asked %d, answered %d; want 3 and 3", p.Asked, p.Answered)
			}
			used := map[string]bool{}
			for _, pn := range p.Placement {
				if used[pn.Provider] {
					t.Errorf("two nodes on %s", pn.Provider)
				}
				used[pn.Provider] = true
			}
			kinds := map[string]bool{}
			for _, r := range p.Reasons {
				kinds[r.Kind] = true
				if r.Peer == "" && r.Node != "*" {
					t.Errorf("reason without a provider: %+v", r)
				}
			}
			for _, k := range tc.wantKinds {
				if !kinds[k] {
					t.Errorf("reasons %v: none of kind %s", p.Reasons, k)
				}
			}
			now := w.free()
			for i := range now {
				if !now[i].Equal(start[i]) {
					t.Fatalf("provider %d: free %v after the plan, %v before: something is reserved", i, now[i], start[i])
				}
			}
			if ds := svc.List(); len(ds) != 0 {
				t.Fatalf("a plan left %d deployments", len(ds))
			}
			if ps := svc.Providers(); len(ps) != 3 {
				t.Fatalf("known providers after a plan: %d, want 3", len(ps))
			}
		})
	}
}

// TestDeploymentFeedsKnownProviders: the bid rounds of deployments fill
// the table behind dms nodes too, with what each provider offered.
func TestDeploymentFeedsKnownProviders(t *testing.T) {
	w := newWorld(t, 3, worldOpts{})
	svc := w.nodes[0].svc
	if ps := svc.Providers(); len(ps) != 0 {
		t.Fatalf("%d providers known before any round", len(ps))
	}
	d := w.submit(task("0.5", "exit=0"))
	waitState(t, svc, d.ID, orchestrator.Completed)
	ps := svc.Providers()
	if len(ps) != 3 {
		t.Fatalf("known providers after a deployment: %d, want 3", len(ps))
	}
	for _, p := range ps {
		if p.LastSeen.IsZero() || p.Offer.Free.CPU == 0 || len(p.Offer.Executors) == 0 {
			t.Errorf("provider %s: %+v; want its offer and when it was seen", p.Peer, p)
		}
	}
}
