package allocation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
)

// service returns the spec of a docker service that runs for an hour.
func service() deployproto.AllocationSpec {
	spec := task("print=serving", "sleep=1h")
	spec.Name = "web"
	spec.Type = ensemble.Service
	spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 3, Backoff: time.Second}
	return spec
}

// createWith makes allocation id of reservation res with a fencing epoch
// and StopAfter.
func (h *harness) createWith(id, res string, spec deployproto.AllocationSpec, epoch uint64, stopAfter time.Duration) actor.Handle {
	h.t.Helper()
	h.ledger.hold(res)
	hd, err := h.m.Create(context.Background(), CreateRequest{
		ID: id, Reservation: res, Deployment: "dep1", Orchestrator: h.orch.act.Handle(), Spec: spec,
		Epoch: epoch, StopAfter: stopAfter,
	})
	if err != nil {
		h.t.Fatalf("Create(%s): %v", id, err)
	}
	return hd
}

// gone reports whether allocation id was removed: no record, not listed.
func (h *harness) gone(id string) bool {
	recs, _ := h.store.List()
	for _, r := range recs {
		if r.ID == id {
			return false
		}
	}
	for _, r := range h.m.List() {
		if r.ID == id {
			return false
		}
	}
	return true
}

func TestAckStopRemoves(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", service())
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		h.orch.setAck(deployproto.ReportAck{Epoch: 5, Stop: true, Reason: "stale copy (epoch 3, the node now runs at epoch 5)"})
		eventually(t, func() bool { return h.gone("a1") })
		if n := h.ledger.releases("r1"); n != 1 {
			t.Errorf("%d releases of r1, want 1", n)
		}
		eventually(t, func() bool {
			ins, _ := h.ex.List(context.Background(), nil)
			return len(ins) == 0
		})
	})
}

func TestAckRaisesEpoch(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.createWith("a1", "r1", service(), 2, 0)
		h.orch.setAck(deployproto.ReportAck{Epoch: 7})
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		// A later report carries the raised epoch.
		if _, ok := h.orch.await(time.Minute, func(r deployproto.Report) bool { return r.ID == "a1" && r.Epoch == 7 }); !ok {
			t.Fatalf("no report at epoch 7: %s", h.orch.summary("a1"))
		}
		eventually(t, func() bool {
			recs, _ := h.store.List()
			return len(recs) == 1 && recs[0].Epoch == 7
		})
	})
}

func TestFencing(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.createWith("a1", "r1", service(), 1, 5*time.Second)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		h.orch.setRefuse(true) // the orchestrator is out of reach
		eventually(t, func() bool { return h.status(hd).State == deployproto.AllocStopped })
		st := h.status(hd)
		if !strings.Contains(st.Message, "fenced: no word from the orchestrator for 5s (stop_after)") {
			t.Errorf("message = %q, want it to say the allocation was fenced", st.Message)
		}
		if n := h.ledger.releases("r1"); n != 1 {
			t.Errorf("%d releases of r1 after fencing, want 1", n)
		}
		ins, _ := h.ex.List(context.Background(), nil)
		for _, in := range ins {
			if in.State == executor.StateRunning {
				t.Errorf("instance %s still runs after fencing", in.ID)
			}
		}
		_, stderr := h.readLogs(hd)
		if !strings.Contains(stderr, "[dms] fenced: no word from the orchestrator") {
			t.Errorf("log lacks the fencing line; stderr = %q", stderr)
		}
		// The record stays until the orchestrator is back and has the
		// final report; its acknowledgement then removes it.
		if h.gone("a1") {
			t.Fatal("fenced allocation removed before its final report was delivered")
		}
		h.orch.setAck(deployproto.ReportAck{Epoch: 2, Stop: true, Reason: "stale copy"})
		h.orch.setRefuse(false)
		h.awaitState("a1", deployproto.AllocStopped)
		eventually(t, func() bool { return h.gone("a1") })
		if n := h.ledger.releases("r1"); n != 1 {
			t.Errorf("%d releases of r1, want 1", n)
		}
	})
}

func TestNoFencingWhileAcknowledged(t *testing.T) {
	for _, empty := range []bool{false, true} {
		name := "ack"
		if empty {
			name = "empty reply"
		}
		t.Run(name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				h.orch.mu.Lock()
				h.orch.empty = empty // an empty reply acknowledges too
				h.orch.mu.Unlock()
				hd := h.createWith("a1", "r1", service(), 1, 5*time.Second)
				h.mustStart(hd)
				h.awaitState("a1", deployproto.AllocRunning)
				time.Sleep(time.Minute) // virtual; heartbeats are acknowledged
				if st := h.status(hd).State; st != deployproto.AllocRunning {
					t.Fatalf("state = %s, want running: %s", st, h.orch.summary("a1"))
				}
			})
		})
	}
}

func TestStaleEpochRefused(t *testing.T) {
	tests := []struct {
		name     string
		behavior string
		req      func(h *harness, hd actor.Handle) any
	}{
		{"start", deployproto.BehaviorStart, func(h *harness, hd actor.Handle) any {
			return deployproto.StartRequest{Chain: h.chain(hd.DID), Epoch: 3}
		}},
		{"stop", deployproto.BehaviorStop, func(*harness, actor.Handle) any {
			return deployproto.StopRequest{Grace: time.Second, Epoch: 3}
		}},
		{"dependency", deployproto.BehaviorDependency, func(*harness, actor.Handle) any {
			return deployproto.DependencyNotice{Epoch: 3, Dependency: "db", Event: deployproto.DependencyRestarted, Restart: true}
		}},
		{"adopt", deployproto.BehaviorAdopt, func(h *harness, hd actor.Handle) any {
			return deployproto.AdoptRequest{Deployment: "dep1", Epoch: 3, Orchestrator: h.orch.act.Handle(), Chain: h.chain(hd.DID)}
		}},
		{"adopt at the same epoch", deployproto.BehaviorAdopt, func(h *harness, hd actor.Handle) any {
			return deployproto.AdoptRequest{Deployment: "dep1", Epoch: 5, Orchestrator: h.orch.act.Handle(), Chain: h.chain(hd.DID)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				hd := h.createWith("a1", "r1", service(), 5, 0)
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStart,
					deployproto.StartRequest{Chain: h.chain(hd.DID), Epoch: 5}, nil); err != nil {
					t.Fatal(err)
				}
				h.awaitState("a1", deployproto.AllocRunning)
				err := h.orch.act.Invoke(context.Background(), hd, tc.behavior, tc.req(h, hd), nil)
				var ae *actor.Error
				if !errors.As(err, &ae) || ae.Code != deployproto.CodeStaleEpoch {
					t.Fatalf("%s at an old epoch = %v, want an *actor.Error of code %s", tc.behavior, err, deployproto.CodeStaleEpoch)
				}
				if st := h.status(hd); st.State != deployproto.AllocRunning || st.Restarts != 0 {
					t.Errorf("after a refused %s: state %s, %d restarts; want running, 0", tc.behavior, st.State, st.Restarts)
				}
				// Epoch 0 gives none and passes.
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
					t.Errorf("stop without an epoch: %v", err)
				}
			})
		})
	}
}

// delegate returns from's delegation of /dms/deployment to to, with
// subject (empty for a root delegation).
func delegate(t *testing.T, from *identity.Key, to, subject identity.DID) *cap.Delegation {
	t.Helper()
	d, err := cap.Delegate(from, cap.DelegationParams{Audience: to, Subject: subject, Command: deployproto.CmdDeployment})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func encode(t *testing.T, c cap.Chain) string {
	t.Helper()
	text, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestAdopt(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.createWith("a1", "r1", service(), 1, 0)
		h.mustStart(hd) // the chain roots in h.orch's key: "the user"
		h.awaitState("a1", deployproto.AllocRunning)

		standby := newFakeOrch(t, newSystem(t, h.net, mustKey(t)))
		t.Cleanup(func() { standby.sys.Close(context.Background()) })
		// Open the link first (see newHarness).
		if err := standby.act.Invoke(context.Background(), hd, deployproto.BehaviorStatus, nil, nil); err != nil {
			t.Fatal(err)
		}
		user := h.orch.key
		good := encode(t, cap.Chain{
			delegate(t, user, standby.key.DID(), ""),
			delegate(t, standby.key, hd.DID, user.DID()),
		})
		other := mustKey(t)
		foreign := encode(t, cap.Chain{
			delegate(t, other, standby.key.DID(), ""),
			delegate(t, standby.key, hd.DID, other.DID()),
		})
		notHeld := encode(t, cap.Chain{
			delegate(t, user, standby.key.DID(), ""),
			delegate(t, standby.key, mustKey(t).DID(), user.DID()),
		})
		adopt := func(req deployproto.AdoptRequest) error {
			return standby.act.Invoke(context.Background(), hd, deployproto.BehaviorAdopt, req, nil)
		}
		refusals := []struct {
			name string
			req  deployproto.AdoptRequest
			want string
		}{
			{"another user's chain", deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: foreign}, "roots in"},
			{"a chain held by another", deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: notHeld}, "held by"},
			{"another deployment", deployproto.AdoptRequest{Deployment: "dep2", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: good}, "belongs to deployment"},
			{"not the sender", deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: h.orch.act.Handle(), Chain: good}, "its sender"},
			{"no chain", deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: "garbage"}, "chain"},
		}
		for _, r := range refusals {
			if err := adopt(r.req); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("adopt with %s = %v, want an error with %q", r.name, err, r.want)
			}
		}
		if err := adopt(deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: good}); err != nil {
			t.Fatalf("adopt: %v", err)
		}
		// Reports go to the new orchestrator, at the new epoch.
		if _, ok := standby.await(time.Minute, func(r deployproto.Report) bool { return r.ID == "a1" && r.Epoch == 2 }); !ok {
			t.Fatal("no report to the new orchestrator after the adoption")
		}
		eventually(t, func() bool {
			recs, _ := h.store.List()
			return len(recs) == 1 && recs[0].Orchestrator == standby.act.Handle() && recs[0].Epoch == 2 && recs[0].Chain == good
		})
		if d, ok := h.m.Orchestrator("r1"); !ok || d != standby.key.DID() {
			t.Errorf("Orchestrator(r1) = %s, %v; want the new one", d, ok)
		}
		holders := h.wallet.holders()
		if len(holders) == 0 || holders[len(holders)-1] != hd.DID {
			t.Errorf("wallet holders %v: want the new chain added", holders)
		}
		// The old orchestrator is now stale.
		err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{Epoch: 1}, nil)
		var ae *actor.Error
		if !errors.As(err, &ae) || ae.Code != deployproto.CodeStaleEpoch {
			t.Errorf("stop from the old epoch = %v, want %s", err, deployproto.CodeStaleEpoch)
		}
		if err := adopt(deployproto.AdoptRequest{Deployment: "dep1", Epoch: 2, Orchestrator: standby.act.Handle(), Chain: good}); !errors.As(err, &ae) || ae.Code != deployproto.CodeStaleEpoch {
			t.Errorf("adopt again at the same epoch = %v, want %s", err, deployproto.CodeStaleEpoch)
		}
	})
}

func TestDependencyNotice(t *testing.T) {
	tests := []struct {
		name        string
		spec        deployproto.AllocationSpec
		ended       deployproto.AllocationState // wait for this state before the notice ("" running)
		restart     bool
		wantRestart bool
		wantLine    string
	}{
		{name: "restart a running service", spec: service(), restart: true, wantRestart: true,
			wantLine: "[dms] dependency db restarted (restart 2): exited with code 1; restarting this allocation (rest_for_one)\n"},
		{name: "notice only", spec: service(),
			wantLine: "[dms] dependency db restarted (restart 2): exited with code 1\n"},
		{name: "a completed task is not run again", spec: task("print=done"), ended: deployproto.AllocCompleted, restart: true,
			wantLine: "this allocation is completed, not restarted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				hd := h.create(h.m, "a1", "r1", tc.spec)
				h.mustStart(hd)
				if tc.ended != "" {
					h.awaitState("a1", tc.ended)
				} else {
					h.awaitState("a1", deployproto.AllocRunning)
				}
				n := deployproto.DependencyNotice{Dependency: "db", Event: deployproto.DependencyRestarted,
					Message: "db restarted (restart 2): exited with code 1", Restart: tc.restart, Strategy: "rest_for_one"}
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorDependency, n, nil); err != nil {
					t.Fatalf("dependency notice: %v", err)
				}
				if tc.wantRestart {
					r := h.awaitState("a1", deployproto.AllocRestarting)
					if r.Restarts != 1 || !strings.Contains(r.Message, "dependency db restarted") {
						t.Errorf("restarting report: %d restarts, message %q", r.Restarts, r.Message)
					}
					eventually(t, func() bool { return len(h.startedSpecs()) == 2 })
					h.awaitState("a1", deployproto.AllocRunning)
					// Not charged to max_restarts.
					eventually(t, func() bool {
						recs, _ := h.store.List()
						return len(recs) == 1 && recs[0].Restarts == 1 && recs[0].DependencyRestarts == 1
					})
				} else {
					synctest.Wait()
					if n := len(h.startedSpecs()); n != 1 {
						t.Errorf("%d runs, want 1", n)
					}
				}
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
					t.Fatal(err)
				}
				_, stderr := h.readLogs(hd)
				if !strings.Contains(stderr, tc.wantLine) {
					t.Errorf("stderr = %q, want it to hold %q", stderr, tc.wantLine)
				}
			})
		})
	}
}

func TestDependencyRestartsNotCharged(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := service()
		spec.Restart.MaxRestarts = 1
		hd := h.create(h.m, "a1", "r1", spec)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		for i := range 3 {
			n := deployproto.DependencyNotice{Dependency: "db", Event: deployproto.DependencyMoved, Restart: true}
			if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorDependency, n, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, func() bool {
				st := h.status(hd)
				return st.Restarts == i+1 && st.State == deployproto.AllocRunning
			})
		}
	})
}

func TestUnhealthyRestartsThenFails(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := service()
		spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 2, Backoff: time.Second}
		spec.Healthcheck = &ensemble.Healthcheck{Exec: []string{"check", "eprint=down", "exit=1"}, Interval: 5 * time.Second, Retries: 2}
		hd := h.create(h.m, "a1", "r1", spec)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocUnhealthy)
		r := h.awaitState("a1", deployproto.AllocRestarting)
		if r.Result == nil || r.Result.Reason != executor.ReasonUnhealthy || !strings.Contains(r.Message, "health check failed 2 times") {
			t.Errorf("restarting report: result %+v, message %q; want an unhealthy end", r.Result, r.Message)
		}
		f := h.awaitState("a1", deployproto.AllocFailed)
		if f.Restarts != 2 || f.Result == nil || f.Result.Reason != executor.ReasonUnhealthy {
			t.Errorf("failed report: %d restarts, result %+v; want 2 restarts and an unhealthy end", f.Restarts, f.Result)
		}
		if n := len(h.startedSpecs()); n != 3 {
			t.Errorf("%d runs, want 3", n)
		}
		eventually(t, func() bool { return h.ledger.releases("r1") == 1 })
		_ = hd
	})
}

func TestNoticeLine(t *testing.T) {
	tests := []struct {
		n    deployproto.DependencyNotice
		want string
	}{
		{deployproto.DependencyNotice{Dependency: "db", Event: "moved"}, "dependency db moved"},
		{deployproto.DependencyNotice{Dependency: "db", Event: "moved", Message: "db moved to 12D3…b"}, "dependency db moved to 12D3…b"},
		{deployproto.DependencyNotice{Dependency: "db", Event: "restarted", Message: "exit 1"}, "dependency db restarted: exit 1"},
		{deployproto.DependencyNotice{Dependency: "db", Event: "restarted", Message: "dbx restarted"}, "dependency db restarted: dbx restarted"},
	}
	for _, tc := range tests {
		if got := noticeLine(tc.n); got != tc.want {
			t.Errorf("noticeLine(%+v) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestCreateStopAfter(t *testing.T) {
	tests := []struct {
		name  string
		given time.Duration
		want  time.Duration
	}{
		{"the commit's", 45 * time.Second, 45 * time.Second},
		{"the manager's default", 0, defaultStopAfter},
		{"raised to two heartbeats", time.Millisecond, 2 * time.Second}, // the harness's heartbeat is 1s
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				h.createWith("a1", "r1", service(), 4, tc.given)
				recs, err := h.store.List()
				if err != nil || len(recs) != 1 {
					t.Fatalf("records %v, %v", recs, err)
				}
				if recs[0].StopAfter != tc.want || recs[0].Epoch != 4 {
					t.Errorf("StopAfter %s, epoch %d; want %s, 4", recs[0].StopAfter, recs[0].Epoch, tc.want)
				}
			})
		})
	}
}

// TestFencingBeforeAnyReport: an allocation that finds its last
// acknowledgement too old (as after a SIGSTOP) stops before it sends
// another report: the first report after the freeze says stopped.
func TestFencingBeforeAnyReport(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.createWith("a1", "r1", service(), 1, 5*time.Second)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		synctest.Wait() // no report in flight
		h.m.mu.Lock()
		a := h.m.allocs["a1"]
		h.m.mu.Unlock()
		a.mu.Lock()
		a.lastAck = time.Now().Add(-time.Hour) // frozen for an hour
		a.mu.Unlock()
		before, _ := h.orch.reportsOf("a1")
		last := before[len(before)-1].Seq
		h.awaitState("a1", deployproto.AllocStopped)
		after, _ := h.orch.reportsOf("a1")
		for _, r := range after {
			if r.Seq > last && r.State != deployproto.AllocStopped {
				t.Errorf("report %d in state %s sent before the fencing", r.Seq, r.State)
			}
		}
		if st := h.status(hd); !strings.Contains(st.Message, "fenced") {
			t.Errorf("message %q, want fenced", st.Message)
		}
	})
}
