package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// FuzzProviderMessages sends arbitrary payloads to a provider's deployment
// behaviors (bid request, commit, revert) from another node. Whatever
// arrives, the provider answers (a reply or a typed error, never a
// handler panic), and once the reservation the message named is reverted,
// its free resources are what they were: nothing a message can say
// leaks a reservation or an allocation.
func FuzzProviderMessages(f *testing.F) {
	w := newWorld(f, 2, worldOpts{})
	from, to := w.nodes[0], w.nodes[1]
	start := to.ledger.Free()

	req := orchestrator.BidRequest{Deployment: "d1", Orchestrator: from.root.Handle(), Round: 1, Nodes: []orchestrator.NodeRequest{{
		Name:    "job",
		Request: match.Request{Resources: match.Resources{CPU: 500, RAM: 64 << 20}, Executors: []string{"wasm"}},
	}}}
	commit := orchestrator.CommitRequest{Deployment: "d1", Node: "job", Reservation: "d1.1", Orchestrator: from.root.Handle(),
		Allocations: []orchestrator.AllocationSpec{{Name: "main", Type: "task", Executor: "wasm", Resources: match.Resources{CPU: 500, RAM: 64 << 20}}}}
	revert := orchestrator.RevertRequest{Deployment: "d1", Reservation: "d1.1"}
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

	behaviors := []string{orchestrator.BehaviorRequest, orchestrator.BehaviorCommit, orchestrator.BehaviorRevert}
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

		// Revert what the message named, as an orchestrator would.
		var named struct {
			Deployment  string `json:"deployment"`
			Round       int    `json:"round"`
			Reservation string `json:"reservation"`
		}
		_ = json.Unmarshal(payload, &named)
		res := named.Reservation
		if behavior == orchestrator.BehaviorRequest {
			res = fmt.Sprintf("%s.%d", named.Deployment, named.Round)
		}
		if _, err := from.root.InvokeRaw(ctx, to.root.Handle(), orchestrator.BehaviorRevert,
			orchestrator.RevertRequest{Deployment: named.Deployment, Reservation: res}); err != nil {
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
