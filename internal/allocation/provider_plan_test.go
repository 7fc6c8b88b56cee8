package allocation

import (
	"context"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

// plan sends o's dry-run bid request (deployproto.BehaviorPlan) for one
// node of deployment dep wanting want.
func (w *provWorld) plan(o *actor.Actor, dep string, want match.Resources, executors ...string) deployproto.BidReply {
	w.t.Helper()
	req := deployproto.BidRequest{Deployment: dep, Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
		Name: "job", Request: match.Request{Resources: want, Executors: executors},
	}}}
	var reply deployproto.BidReply
	if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorPlan, req, &reply); err != nil {
		w.t.Fatalf("plan request %s: %v", dep, err)
	}
	return reply
}

// TestPlanReservesNothing: a dry-run bid request gets the answer a bid
// request would, but the provider reserves nothing, signs nothing, and the
// bid cannot be committed; however many plans a peer sends, it never runs
// into the per-peer reservation bounds.
func TestPlanReservesNothing(t *testing.T) {
	tests := []struct {
		name      string
		want      match.Resources
		executors []string
		plans     int
		wantKind  string // "" : a bid
	}{
		{name: "fits", want: cores(2), executors: []string{"docker"}, plans: 1},
		{name: "many plans never hit the peer limit", want: cores(3), executors: []string{"docker"}, plans: 20},
		{name: "too large", want: cores(9), executors: []string{"docker"}, plans: 1, wantKind: deployproto.KindResource},
		{name: "executor not offered", want: cores(1), executors: []string{"vm"}, plans: 1, wantKind: deployproto.KindExecutor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newProvWorld(t)
			o := w.orchestrator()
			before := w.ledger.Snapshot()
			for i := range tc.plans {
				r := w.plan(o, "p1", tc.want, tc.executors...)
				if r.Offer == nil {
					t.Fatalf("plan %d: no offer in the reply", i)
				}
				if tc.wantKind != "" {
					if r.Bid != nil || len(r.NoBids) != 1 || r.NoBids[0].Kind != tc.wantKind {
						t.Fatalf("plan %d: bid %v, no-bids %+v; want a %s no-bid", i, r.Bid != nil, r.NoBids, tc.wantKind)
					}
					continue
				}
				if r.Bid == nil {
					t.Fatalf("plan %d: no bid: %+v", i, r.NoBids)
				}
				if len(r.Bid.Signature) != 0 || r.Bid.Verify("p1", w.root.Host) {
					t.Fatalf("plan %d: the dry-run bid is signed", i)
				}
				b, err := r.Bid.Open()
				if err != nil || !b.DryRun || b.Reservation != "" || len(b.Nodes) != 1 {
					t.Fatalf("plan %d: bid %+v, %v; want a dry run for job with no reservation", i, b, err)
				}
			}
			after := w.ledger.Snapshot()
			if len(after.Reservations) != 0 || after.Free.CPU != before.Free.CPU || after.Reserved.CPU != 0 {
				t.Fatalf("after %d plans: %d reservations, free cpu %s (was %s), reserved %s", tc.plans, len(after.Reservations), after.Free.CPU, before.Free.CPU, after.Reserved.CPU)
			}
			w.prov.mu.Lock()
			live := len(w.prov.live)
			w.prov.mu.Unlock()
			if live != 0 {
				t.Fatalf("provider notes %d live reservations after plans", live)
			}
			// A real bid still gets through after the plans.
			if r := w.bid(o, "d1", cores(1)); r.Bid == nil {
				t.Fatalf("bid after plans: %+v", r.NoBids)
			}
		})
	}
}

// TestPlanBidCannotBeCommitted: the orchestrator-side refusals of a
// dry-run bid hold at the provider too: a commit of the (absent)
// reservation of a plan fails, and nothing is allocated.
func TestPlanBidCannotBeCommitted(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	if r := w.plan(o, "p1", cores(1), "docker"); r.Bid == nil {
		t.Fatalf("plan: %+v", r.NoBids)
	}
	spec := task("print=x")
	spec.Resources = cores(1)
	for _, res := range []string{"", "p1.1", deployproto.ReservationID("p1", 1)} {
		err := o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
			Deployment: "p1", Node: "job", Reservation: res, Orchestrator: o.Handle(),
			Allocations: []deployproto.AllocationSpec{spec}}, &deployproto.CommitReply{})
		if err == nil {
			t.Fatalf("commit of reservation %q after a plan succeeded", res)
		}
	}
	if s := w.ledger.Snapshot(); len(s.Allocations) != 0 || len(s.Reservations) != 0 {
		t.Fatalf("after refused commits: %d allocations, %d reservations", len(s.Allocations), len(s.Reservations))
	}
}
