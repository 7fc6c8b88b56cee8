package allocation

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
)

// TestRelease: a bid round's broadcast release frees the round's
// reservation only at a provider that holds it, uncommitted, for the
// sender and is not kept; everything else is left alone and is no error
// (nothing goes back to the orchestrator).
func TestRelease(t *testing.T) {
	tests := []struct {
		name     string
		req      func(w *provWorld) deployproto.ReleaseRequest
		other    bool // sent by another orchestrator
		commit   bool // the reservation is committed first
		released bool
	}{
		{name: "released", req: func(*provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.1", Keep: []string{"12D3KooWsomeoneelse"}}
		}, released: true},
		{name: "kept", req: func(w *provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.1", Keep: []string{w.root.Host}}
		}},
		{name: "another orchestrator", other: true, req: func(*provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.1"}
		}},
		{name: "another deployment's reservation", req: func(*provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d", Reservation: "d0.1"}
		}},
		{name: "another round", req: func(*provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.2"}
		}},
		{name: "committed", commit: true, req: func(*provWorld) deployproto.ReleaseRequest {
			return deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.1"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newProvWorld(t)
			o := w.orchestrator()
			if r := w.bid(o, "d0", cores(2)); r.Bid == nil {
				t.Fatalf("no bid: %v", r.NoBids)
			}
			if tc.commit {
				spec := task("print=x")
				spec.Resources = cores(2)
				if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
					Deployment: "d0", Node: "job", Reservation: "d0.1", Orchestrator: o.Handle(),
					Allocations: []deployproto.AllocationSpec{spec}}, &deployproto.CommitReply{}); err != nil {
					t.Fatal(err)
				}
			}
			from := o.Handle()
			if tc.other {
				from = w.orchestrator().Handle()
			}
			payload, err := json.Marshal(tc.req(w))
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.prov.release(context.Background(), &actor.Message{From: from, Behavior: deployproto.BehaviorRelease, Payload: payload})
			if res != nil || err != nil {
				t.Fatalf("release answered %v, %v; want nothing", res, err)
			}
			free := w.ledger.Free().CPU
			if want := cores(8).CPU; tc.released != (free == want) {
				t.Errorf("free cpu %s after the release, released %v", free, tc.released)
			}
			w.prov.mu.Lock()
			_, held := w.prov.live["d0.1"]
			w.prov.mu.Unlock()
			if held == tc.released && !tc.commit {
				t.Errorf("provider notes the reservation: %v, released %v", held, tc.released)
			}
		})
	}
}

// TestReleaseBroadcast: the release reaches a provider by broadcast on the
// deployments topic and frees the reservation its sender holds.
func TestReleaseBroadcast(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	if r := w.bid(o, "d0", cores(2)); r.Bid == nil {
		t.Fatalf("no bid: %v", r.NoBids)
	}
	if err := o.Publish(context.Background(), deployproto.TopicDeployments, deployproto.BehaviorRelease,
		deployproto.ReleaseRequest{Deployment: "d0", Reservation: "d0.1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.ledger.Free().CPU != cores(8).CPU {
		if time.Now().After(deadline) {
			t.Fatalf("reservation still held after the release: free %s", w.ledger.Free().CPU)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
