package allocation

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/poll"
)

// gatedRemove is the fake executor whose Remove of one instance blocks
// until released: it holds a resume open in the window between the
// allocation's actor being reachable and its supervisor being launched
// (the resume removes instances an earlier run left behind there).
type gatedRemove struct {
	*executortest.Executor
	id      string        // the instance whose Remove is held
	entered chan struct{} // closed when that Remove is entered
	release chan struct{} // closing it lets that Remove go on
	held    atomic.Bool
}

func (g *gatedRemove) Remove(ctx context.Context, id string) error {
	if id == g.id && g.held.CompareAndSwap(false, true) {
		close(g.entered)
		<-g.release
	}
	return g.Executor.Remove(ctx, id)
}

// TestStopDuringReattachStopsInstance: a stop that arrives while a
// restarted node re-attaches to a running instance stops that instance.
// (Defect 4 of issue 12: the stop took the "never started" branch, the
// reservation was released and the instance ran on.)
func TestStopDuringReattachStopsInstance(t *testing.T) {
	tests := []struct {
		name   string
		remove bool
		plan   string // the recorded state's plan at the restart
	}{
		{name: "stop", plan: "reattach"},
		{name: "stop and remove", remove: true, plan: "reattach"},
		{name: "stop while starting again", plan: "start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				spec := task("sleep=1h")
				hd := h.create(h.m, "a1", "r1", spec)
				h.mustStart(hd)
				h.awaitState("a1", deployproto.AllocRunning)
				if err := h.m.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if tc.plan == "start" {
					// Down while (re)starting: the resume starts a new instance.
					recs, _ := h.store.List()
					rec := recs[0]
					rec.State = deployproto.AllocRestarting
					if err := h.store.Put(rec); err != nil {
						t.Fatal(err)
					}
				}
				// An instance an earlier run left behind: the resume removes
				// it, and that Remove is held.
				labels := map[string]string{executor.LabelAllocation: "a1", LabelNode: h.provSys.Self()}
				stale := executortest.Spec("sleep=1h")
				stale.Labels = labels
				staleID, err := h.ex.Start(context.Background(), stale)
				if err != nil {
					t.Fatal(err)
				}
				gate := &gatedRemove{Executor: h.ex, id: staleID, entered: make(chan struct{}), release: make(chan struct{})}
				h.m = h.newManager(docker(gate))
				resumed := make(chan error, 1)
				go func() { resumed <- h.m.Resume(context.Background()) }()
				<-gate.entered

				// The orchestrator shuts the deployment down now.
				stopped := make(chan error, 1)
				go func() {
					stopped <- h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop,
						deployproto.StopRequest{Grace: time.Second, Remove: tc.remove}, nil)
				}()
				synctest.Wait() // the stop has done what it does before the resume goes on
				close(gate.release)
				if err := <-resumed; err != nil {
					t.Fatalf("Resume: %v", err)
				}
				if err := <-stopped; err != nil {
					t.Fatalf("Stop: %v", err)
				}
				poll.Eventually(t, time.Minute, "no instance of a1 left after the stop (virtual time)", func() bool {
					synctest.Wait()
					ins, _ := h.ex.List(context.Background(), labels)
					return len(ins) == 0
				})
				if !tc.remove {
					if st := h.status(hd); st.State != deployproto.AllocStopped {
						t.Errorf("state after the stop = %s (%s), want stopped", st.State, st.Message)
					}
				}
				if got := h.ledger.releases("r1"); got != 1 {
					t.Errorf("reservation released %d times, want 1", got)
				}
			})
		})
	}
}

// TestResumeRemovesOnlyLeftovers: the resume removes the instances an
// earlier run left behind and keeps the one it re-attaches to (it used to
// remove every instance of the allocation along with a leftover, and the
// re-attached run then found its instance gone).
func TestResumeRemovesOnlyLeftovers(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("sleep=1h"))
		h.mustStart(hd)
		running := h.awaitState("a1", deployproto.AllocRunning)
		if err := h.m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{executor.LabelAllocation: "a1", LabelNode: h.provSys.Self()}
		stale := executortest.Spec("sleep=1h")
		stale.Labels = labels
		staleID, err := h.ex.Start(context.Background(), stale)
		if err != nil {
			t.Fatal(err)
		}
		h.m = h.newManager(docker(h.ex))
		if err := h.m.Resume(context.Background()); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		synctest.Wait()
		recs, _ := h.store.List()
		ins, _ := h.ex.List(context.Background(), labels)
		var ids []string
		for _, in := range ins {
			ids = append(ids, in.ID)
		}
		if len(recs) != 1 || len(ids) != 1 || ids[0] != recs[0].InstanceID || ids[0] == staleID {
			t.Fatalf("after the resume: instances %v, record's instance %q, leftover %s; want only the record's", ids, recs[0].InstanceID, staleID)
		}
		if st := h.status(hd); st.State != deployproto.AllocRunning || st.Restarts != running.Restarts {
			t.Errorf("status after the resume = %s (%s), restarts %d; want running, not restarted", st.State, st.Message, st.Restarts)
		}
		h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil)
	})
}
