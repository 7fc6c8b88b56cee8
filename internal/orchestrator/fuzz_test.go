package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// FuzzProviderMessages sends arbitrary payloads to a provider's deployment
// behaviors (bid request, commit, revert, plan) from another node. Whatever
// arrives, the provider answers (a reply or a typed error, never a
// handler panic), and once the reservation the message named is reverted,
// its free resources are what they were: nothing a message can say
// leaks a reservation or an allocation. A plan leaves them as they were
// before any revert.
func FuzzProviderMessages(f *testing.F) {
	w := newWorld(f, 2, worldOpts{})
	from, to := w.nodes[0], w.nodes[1]
	start := to.ledger.Free()

	req := deployproto.BidRequest{Deployment: "d1", Orchestrator: from.root.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
		Name:    "job",
		Request: match.Request{Resources: match.Resources{CPU: 500, RAM: 64 << 20}, Executors: []string{"wasm"}},
	}}}
	commit := deployproto.CommitRequest{Deployment: "d1", Node: "job", Reservation: "d1.1", Orchestrator: from.root.Handle(),
		Allocations: []deployproto.AllocationSpec{{Name: "main", Type: "task", Executor: "wasm", Resources: match.Resources{CPU: 500, RAM: 64 << 20}}}}
	revert := deployproto.RevertRequest{Deployment: "d1", Reservation: "d1.1"}
	for i, v := range []any{req, commit, revert} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte(`{"deployment":"d2","round":-1,"nodes":[{"name":"x","request":{"resources":{"cpu":-1,"ram":-5}}}]}`))
	f.Add(uint8(0), []byte(`{"deployment":"d3","nodes":[{"name":"a","request":{"resources":{"cpu":1,"gpus":[{"vram":1}]}}},{"name":"b","request":{"resources":{"ram":1e30}}}]}`))
	f.Add(uint8(1), []byte(`{"deployment":"d1","reservation":"d1.1","allocations":[{"name":"a"},{"name":"a"}]}`))
	f.Add(uint8(1), []byte(`null`))
	f.Add(uint8(2), []byte(`{"deployment":"","reservation":"."}`))

	// A plan (dry-run bid request) must reserve nothing, revert or not.
	if b, err := json.Marshal(req); err == nil {
		f.Add(uint8(3), b)
	}
	f.Add(uint8(3), []byte(`{"deployment":"d4","nodes":[{"name":"a","request":{"resources":{"cpu":1e9}}}]}`))

	behaviors := []string{deployproto.BehaviorRequest, deployproto.BehaviorCommit, deployproto.BehaviorRevert, deployproto.BehaviorPlan}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		if !json.Valid(payload) {
			return // the sender's codec refuses it before it leaves (TestDecodeFrame covers frames)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		behavior := behaviors[int(which)%len(behaviors)]
		_, err := from.root.InvokeRaw(ctx, to.root.Handle(), behavior, json.RawMessage(payload))
		if err != nil {
			var ae *actor.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%s: untyped error %v", behavior, err)
			}
			if ae.Code == actor.CodePanic || ae.Code == actor.CodeTimeout {
				t.Fatalf("%s: %v", behavior, err)
			}
		}

		if behavior == deployproto.BehaviorPlan {
			if free := to.ledger.Free(); !free.Equal(start) {
				t.Fatalf("after a plan: free %v, want %v (a plan reserved)", free, start)
			}
		}

		// Revert what the message named, as an orchestrator would.
		var named struct {
			Deployment  string `json:"deployment"`
			Round       int    `json:"round"`
			Reservation string `json:"reservation"`
		}
		_ = json.Unmarshal(payload, &named)
		res := named.Reservation
		if behavior == deployproto.BehaviorRequest {
			res = fmt.Sprintf("%s.%d", named.Deployment, named.Round)
		}
		if _, err := from.root.InvokeRaw(ctx, to.root.Handle(), deployproto.BehaviorRevert,
			deployproto.RevertRequest{Deployment: named.Deployment, Reservation: res}); err != nil {
			var ae *actor.Error
			if !errors.As(err, &ae) || ae.Code == actor.CodePanic || ae.Code == actor.CodeTimeout {
				t.Fatalf("revert %s: %v", res, err)
			}
		}
		if free := to.ledger.Free(); !free.Equal(start) {
			t.Fatalf("after %s and its revert: free %v, want %v", behavior, free, start)
		}
	})
}

// FuzzAllocationMessages sends arbitrary payloads to a running allocation
// actor's behaviors (start, stop, logs, status) from its orchestrator's
// node: each gets a reply or a typed error, never a handler panic, and the
// provider keeps answering.
func FuzzAllocationMessages(f *testing.F) {
	w := newWorld(f, 2, worldOpts{})
	w.nodes[0].ledger.Offboard() // the allocation runs on node 1
	from := w.nodes[0]
	job := task("0.5", "print=fuzz", "sleep=600s")
	sub := w.submission(from, job) // signed here: w's helpers belong to f
	// running returns a running allocation: the last one, or a new one when
	// an input stopped or removed it.
	var to actor.Handle
	var id string
	running := func(t testing.TB) actor.Handle {
		if id != "" {
			if d, err := w.nodes[0].svc.Get(id); err == nil && d.State == orchestrator.Running && d.Allocations["job"].State == deployproto.AllocRunning {
				return to
			}
			w.nodes[0].svc.Shutdown(context.Background(), id)
		}
		spec, err := ensemble.Parse([]byte(job))
		if err != nil {
			t.Fatal(err)
		}
		sub.Spec = spec
		d, err := from.svc.Submit(context.Background(), sub)
		if err != nil {
			t.Fatal(err)
		}
		d = waitState(t, from.svc, d.ID, orchestrator.Running)
		to, id = d.Allocations["job"].Handle, d.ID
		return to
	}

	f.Add(uint8(0), []byte(`{"chain":""}`))
	f.Add(uint8(0), []byte(`{"chain":"not a chain"}`))
	f.Add(uint8(1), []byte(`{"grace":-1}`))
	f.Add(uint8(1), []byte(`{"grace":1000000000,"remove":true}`))
	f.Add(uint8(2), []byte(`{"offset":0,"wait":100000000,"max":10}`))
	f.Add(uint8(2), []byte(`{"offset":-5,"max":1e30}`))
	f.Add(uint8(3), []byte(`{}`))

	behaviors := []string{deployproto.BehaviorStart, deployproto.BehaviorStop, deployproto.BehaviorLogs, deployproto.BehaviorStatus}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		if !json.Valid(payload) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		behavior := behaviors[int(which)%len(behaviors)]
		_, err := from.root.InvokeRaw(ctx, running(t), behavior, json.RawMessage(payload))
		var ae *actor.Error
		if err != nil && (!errors.As(err, &ae) || ae.Code == actor.CodePanic || ae.Code == actor.CodeTimeout) {
			t.Fatalf("%s %s: %v", behavior, payload, err)
		}
		if _, err := from.root.InvokeRaw(ctx, w.nodes[1].root.Handle(), "/public/nothing", struct{}{}); !errors.As(err, &ae) || ae.Code != actor.CodeUnknownBehavior {
			t.Fatalf("the provider no longer answers after %s: %v", behavior, err)
		}
	})
}
