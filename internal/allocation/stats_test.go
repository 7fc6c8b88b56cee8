package allocation

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

// TestProviderStats: a bid, a no-bid by reason and a commit are counted;
// a dry run (dms plan) is not. The allocation committed shows in Meters.
func TestProviderStats(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	if r := w.bid(o, "d0", cores(1)); r.Bid == nil {
		t.Fatalf("bid: %v", r.NoBids)
	}
	if r := w.bid(o, "d1", cores(64)); r.Bid != nil || len(r.NoBids) != 1 {
		t.Fatalf("bid for 64 cores = %+v, want one no-bid", r)
	}
	plan := deployproto.BidRequest{Deployment: "d2", Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
		Name: "job", Request: match.Request{Resources: cores(1), Executors: []string{"docker"}},
	}}}
	if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorPlan, plan, &deployproto.BidReply{}); err != nil {
		t.Fatal(err)
	}
	spec := task("sleep=30s")
	spec.Resources = cores(1)
	var reply deployproto.CommitReply
	if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
		Deployment: "d0", Node: "job", Reservation: "d0.1", Orchestrator: o.Handle(),
		Allocations: []deployproto.AllocationSpec{spec}, StopAfter: 40 * time.Second}, &reply); err != nil {
		t.Fatal(err)
	}
	want := ProviderStats{Bids: 1, Won: 1, NoBids: map[string]uint64{deployproto.KindResource: 1}}
	if got := w.prov.Stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	ms := w.prov.cfg.Allocations.Meters()
	if len(ms) != 1 || ms[0].Deployment != "d0" || ms[0].ID != "d0.1.job" {
		t.Errorf("Meters() = %+v, want the allocation d0.1.job of d0", ms)
	}
}

// TestOnStart: Config.OnStart hears how long each executor Start took,
// by executor.
func TestOnStart(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		var mu sync.Mutex
		var got []string
		h.m.cfg.OnStart = func(ex string, d time.Duration) {
			mu.Lock()
			got = append(got, ex)
			mu.Unlock()
		}
		hd := h.create(h.m, "a1", "r1", task("exit=0"))
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocCompleted)
		mu.Lock()
		defer mu.Unlock()
		if !reflect.DeepEqual(got, []string{"docker"}) {
			t.Fatalf("OnStart calls = %v, want one for docker", got)
		}
	})
}
