package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
)

// kill stops a node as kill -9 would: off the network, its services
// closed. Its stores stay, for restart.
func (w *world) kill(tn *tnode) {
	w.t.Helper()
	tn.host.SetDown(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn.svc.Close(ctx)
	tn.allocs.Close(ctx)
	tn.sys.Close(ctx)
}

// restart brings a killed node back: a new runtime on the same host, key
// and stores, its allocations and deployments resumed.
func (w *world) restart(tn *tnode) {
	w.t.Helper()
	tn.host.SetDown(false)
	w.startRuntime(tn)
}

// peerOf returns the peer ID of a test node.
func peerOf(tn *tnode) string { return tn.host.Self() }

// standbyWorld has n nodes: 0 orchestrates, 1 stands by, the others host
// the allocations (one node of the ensemble each).
func standbyWorld(t *testing.T, n int) *world {
	w := newWorld(t, n, worldOpts{lost: time.Second, lease: time.Second})
	w.nodes[0].ledger.Offboard()
	w.nodes[1].ledger.Offboard()
	return w
}

// twoServices is an ensemble of two long-running services on two
// providers, with node 1 of w as its standby orchestrator.
func twoServices(w *world) string {
	svc := func(name string) string {
		return "  " + name + ":\n    type: service\n    executor: docker\n    resources: {cpu: 0.5, ram: 32MiB}\n" +
			"    execution: {image: workload, cmd: [workload, print=serving, sleep=1h]}\n"
	}
	return "version: v1\nallocations:\n" + svc("web") + svc("db") +
		"nodes:\n  a: {allocations: [web]}\n  b: {allocations: [db]}\n" +
		"supervision:\n  orchestrators: 2\n  standbys: [" + peerOf(w.nodes[1]) + "]\n"
}

// waitGet polls a node's service until it holds the deployment in a state
// cond accepts.
func waitGet(t *testing.T, svc *orchestrator.Service, id, what string, cond func(d *orchestrator.Deployment) bool) *orchestrator.Deployment {
	t.Helper()
	var d *orchestrator.Deployment
	err := poll.Until(context.Background(), 30*time.Second, what, func(ctx context.Context) (bool, error) {
		got, err := svc.Get(id)
		if errors.Is(err, orchestrator.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		d = got
		return cond(d), nil
	})
	if err != nil {
		if d != nil {
			t.Fatalf("%v; role %q, state %s (%s), events:\n%s", err, d.Role, d.State, d.Message, eventLines(d))
		}
		t.Fatal(err)
	}
	return d
}

func hasEvent(d *orchestrator.Deployment, kind orchestrator.EventKind, text string) bool {
	for _, e := range d.Events {
		if e.Kind == kind && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// takeOver submits twoServices from node 0, waits until node 1 holds its
// replica, kills node 0 and waits for node 1 to take over.
func takeOver(t *testing.T, w *world) (before, after *orchestrator.Deployment) {
	t.Helper()
	primary, standby := w.nodes[0], w.nodes[1]
	d := w.submit(twoServices(w))
	if len(d.Standbys) != 1 || d.Standbys[0] != peerOf(standby) {
		t.Fatalf("standbys %v, want [%s]", d.Standbys, peerOf(standby))
	}
	before = waitState(t, primary.svc, d.ID, orchestrator.Running)
	waitGet(t, standby.svc, d.ID, "the standby holds the running deployment", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.State == orchestrator.Running && d.Orchestrator.Host == peerOf(primary)
	})
	w.kill(primary)
	after = waitGet(t, standby.svc, d.ID, "the standby took over", func(d *orchestrator.Deployment) bool {
		return !d.IsStandby() && hasEvent(d, orchestrator.EventTakeover, "took over from")
	})
	switch {
	case after.Orchestrator.Host != peerOf(standby):
		t.Fatalf("orchestrator %s, want the standby %s", after.Orchestrator, peerOf(standby))
	case after.Epoch <= before.Epoch:
		t.Fatalf("epoch %d after the takeover, %d before: want higher", after.Epoch, before.Epoch)
	case len(after.Standbys) != 1 || after.Standbys[0] != peerOf(primary):
		t.Fatalf("standbys after the takeover %v, want the old primary", after.Standbys)
	}
	return before, after
}

// skipWithoutAdopt skips when the providers cannot be adopted (the
// allocation side of BehaviorAdopt is missing).
func skipWithoutAdopt(t *testing.T, svc *orchestrator.Service, id string) *orchestrator.Deployment {
	t.Helper()
	d := waitGet(t, svc, id, "adoption tried", func(d *orchestrator.Deployment) bool {
		return hasEvent(d, orchestrator.EventTakeover, "adopted")
	})
	if hasEvent(d, orchestrator.EventTakeover, string(actor.CodeUnknownBehavior)) {
		t.Skip("the allocations do not implement " + deployproto.BehaviorAdopt)
	}
	return d
}

func TestStandbyTakesOver(t *testing.T) {
	w := standbyWorld(t, 4)
	start := w.free()
	before, after := takeOver(t, w)
	standby := w.nodes[1]
	d := skipWithoutAdopt(t, standby.svc, before.ID)
	if !hasEvent(d, orchestrator.EventTakeover, "adopted 2 allocations") {
		t.Fatalf("events:\n%s\nwant both allocations adopted", eventLines(d))
	}
	// The allocations keep running, untouched, and report to the new
	// orchestrator.
	since := after.Updated
	d = waitGet(t, standby.svc, d.ID, "reports at the new orchestrator", func(d *orchestrator.Deployment) bool {
		for _, a := range d.Allocations {
			if !a.LastSeen.After(since) {
				return false
			}
		}
		return true
	})
	for name, a := range d.Allocations {
		if a.Handle != before.Allocations[name].Handle || a.State != deployproto.AllocRunning {
			t.Fatalf("allocation %s: %s on %s, want still running on %s", name, a.State, a.Handle, before.Allocations[name].Handle)
		}
	}
	// Shutting down through the standby stops both.
	if _, err := standby.svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	d = waitState(t, standby.svc, d.ID, orchestrator.Stopped)
	w.waitFree(start)
}

func TestOldPrimaryStepsDown(t *testing.T) {
	w := standbyWorld(t, 4)
	before, _ := takeOver(t, w)
	old, standby := w.nodes[0], w.nodes[1]
	old.store.mu.Lock()
	stored := old.store.deps[before.ID].Version
	old.store.mu.Unlock()
	w.restart(old)
	d := waitGet(t, old.svc, before.ID, "the old primary stepped down", func(d *orchestrator.Deployment) bool {
		// Its own step-down event, or the new primary's record of it.
		return d.IsStandby() && d.Orchestrator.Host == peerOf(standby) && hasEvent(d, orchestrator.EventStepDown, "")
	})
	switch {
	case d.Epoch <= before.Epoch:
		t.Fatalf("epoch %d on the old primary, %d before: want the new one", d.Epoch, before.Epoch)
	case d.Version <= stored:
		t.Fatalf("version %d after the step-down, %d before: versions only grow", d.Version, stored)
	}
	// The new primary records it, once the old one acknowledged it.
	waitGet(t, standby.svc, before.ID, "the step-down on the timeline", func(d *orchestrator.Deployment) bool {
		return hasEvent(d, orchestrator.EventStepDown, "is back and stands by")
	})
	// Status works on both; a shutdown through the old primary (now a
	// standby) is forwarded to the new one.
	if _, err := old.svc.Shutdown(context.Background(), before.ID); err != nil {
		t.Fatalf("shutdown through the old primary: %v", err)
	}
	waitState(t, standby.svc, before.ID, orchestrator.Stopped)
	waitGet(t, old.svc, before.ID, "the replica ends too", func(d *orchestrator.Deployment) bool {
		return d.State == orchestrator.Stopped
	})
}

// TestPrimaryBackBeforeTakeover: a primary that restarts within the lease
// asks its standby first, is still the primary, and goes on supervising.
func TestPrimaryBackBeforeTakeover(t *testing.T) {
	// A long lease: the restart is over long before a takeover.
	w := newWorld(t, 4, worldOpts{lost: time.Second, lease: 20 * time.Second})
	w.nodes[0].ledger.Offboard()
	w.nodes[1].ledger.Offboard()
	primary, standby := w.nodes[0], w.nodes[1]
	d := w.submit(twoServices(w))
	d = waitState(t, primary.svc, d.ID, orchestrator.Running)
	waitGet(t, standby.svc, d.ID, "the standby holds the deployment", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.State == orchestrator.Running
	})
	w.kill(primary)
	w.restart(primary)
	restarted := time.Now()
	got := waitGet(t, primary.svc, d.ID, "reports after the restart", func(d *orchestrator.Deployment) bool {
		for _, a := range d.Allocations {
			if !a.LastSeen.After(restarted) {
				return false
			}
		}
		return true
	})
	if got.IsStandby() || got.Epoch != d.Epoch || hasEvent(got, orchestrator.EventStepDown, "") {
		t.Fatalf("after the restart: role %q, epoch %d (was %d); events:\n%s", got.Role, got.Epoch, d.Epoch, eventLines(got))
	}
	err := poll.Until(context.Background(), 30*time.Second, "the lease after the restart", func(ctx context.Context) (bool, error) {
		return primary.svc.LeaseHeld(d.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := standby.svc.Get(d.ID); !r.IsStandby() {
		t.Fatalf("the standby is %q after the primary's restart", r.Role)
	}
}

// TestNoLeaseNoRedeploy: a primary cut off from its only standby makes no
// supervision decisions (an allocation silent past lost_after is neither
// marked lost nor redeployed); once the standby is back, it does.
func TestNoLeaseNoRedeploy(t *testing.T) {
	w := standbyWorld(t, 5) // a spare provider for the redeploy
	primary, standby := w.nodes[0], w.nodes[1]
	d := w.submit(twoServices(w))
	d = waitState(t, primary.svc, d.ID, orchestrator.Running)
	waitGet(t, standby.svc, d.ID, "the standby holds the deployment", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.State == orchestrator.Running
	})
	w.kill(standby)
	err := poll.Until(context.Background(), 30*time.Second, "the primary's lease lapsed", func(ctx context.Context) (bool, error) {
		held, err := primary.svc.LeaseHeld(d.ID)
		return !held, err
	})
	if err != nil {
		t.Fatal(err)
	}
	victim := d.Allocations["web"]
	w.byHost(victim.Handle.Host).host.SetDown(true)
	// Wait until web has been silent for three lost_after periods, as the
	// primary sees it: with a lease it would have been marked lost.
	lost := w.opts.lost
	var seen time.Time
	err = poll.Until(context.Background(), 30*time.Second, "web silent for 3 × lost_after", func(ctx context.Context) (bool, error) {
		got, err := primary.svc.Get(d.ID)
		if err != nil {
			return false, err
		}
		seen = got.Allocations["web"].LastSeen
		return time.Since(seen) > 3*lost, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := primary.svc.Get(d.ID)
	if a := got.Allocations["web"]; a.State == deployproto.AllocLost || a.Attempt > 1 || hasEvent(got, orchestrator.EventLost, "") {
		t.Fatalf("web %s (attempt %d) without a lease; events:\n%s", a.State, a.Attempt, eventLines(got))
	}
	// The standby is back: the lease too, and web is redeployed.
	w.restart(standby)
	waitGet(t, primary.svc, d.ID, "web redeployed", func(d *orchestrator.Deployment) bool {
		a := d.Allocations["web"]
		return a.Attempt >= 2 && a.Handle.Host != victim.Handle.Host && hasEvent(d, orchestrator.EventLost, "")
	})
}

// TestStandbyServesStatusLogsAndShutdown: a standby answers status from its
// replica, reads logs from the allocations, and forwards a shutdown to the
// primary, which stops both allocations.
func TestStandbyServesStatusLogsAndShutdown(t *testing.T) {
	w := standbyWorld(t, 4)
	start := w.free()
	primary, standby := w.nodes[0], w.nodes[1]
	d := w.submit(twoServices(w))
	d = waitState(t, primary.svc, d.ID, orchestrator.Running)
	r := waitGet(t, standby.svc, d.ID, "the standby holds the running deployment", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.State == orchestrator.Running && len(d.Allocations) == 2
	})
	if r.Orchestrator != d.Orchestrator || r.Epoch != d.Epoch || len(r.SealedKey) != 0 {
		t.Fatalf("replica: orchestrator %s epoch %d (sealed key %d bytes), want %s epoch %d and no key", r.Orchestrator, r.Epoch, len(r.SealedKey), d.Orchestrator, d.Epoch)
	}
	if held, err := standby.svc.LeaseHeld(d.ID); held || err != nil {
		t.Fatalf("LeaseHeld on the standby = %v, %v; want false", held, err)
	}
	var logs strings.Builder
	err := poll.Until(context.Background(), 30*time.Second, "logs through the standby", func(ctx context.Context) (bool, error) {
		logs.Reset()
		err := standby.svc.Logs(ctx, d.ID, "web", false, deployproto.LogFilter{}, func(_ string, e deployproto.LogEntry) { logs.Write(e.Data) })
		return strings.Contains(logs.String(), "serving"), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := standby.svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, primary.svc, d.ID, orchestrator.Stopped)
	waitGet(t, standby.svc, d.ID, "the replica stopped", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Stopped })
	w.waitFree(start)
}

// TestTwoStandbysOneTakesOver: with two standbys, the first takes over and
// the second, which waits half a lease more, hears it and stands by for it.
func TestTwoStandbysOneTakesOver(t *testing.T) {
	w := newWorld(t, 5, worldOpts{lost: time.Second, lease: time.Second})
	for _, n := range w.nodes[:3] {
		n.ledger.Offboard()
	}
	primary, first, second := w.nodes[0], w.nodes[1], w.nodes[2]
	yaml := strings.Replace(twoServices(w), "orchestrators: 2\n  standbys: ["+peerOf(first)+"]",
		"orchestrators: 3\n  standbys: ["+peerOf(first)+", "+peerOf(second)+"]", 1)
	d := w.submit(yaml)
	if len(d.Standbys) != 2 {
		t.Fatalf("standbys %v, want two", d.Standbys)
	}
	d = waitState(t, primary.svc, d.ID, orchestrator.Running)
	for _, n := range []*tnode{first, second} {
		waitGet(t, n.svc, d.ID, "a standby holds the running deployment", func(d *orchestrator.Deployment) bool {
			return d.IsStandby() && d.State == orchestrator.Running
		})
	}
	w.kill(primary)
	after := waitGet(t, first.svc, d.ID, "the first standby took over", func(d *orchestrator.Deployment) bool {
		return !d.IsStandby() && hasEvent(d, orchestrator.EventTakeover, "took over from")
	})
	if want := []string{peerOf(second), peerOf(primary)}; strings.Join(after.Standbys, ",") != strings.Join(want, ",") {
		t.Fatalf("standbys after the takeover %v, want %v", after.Standbys, want)
	}
	r := waitGet(t, second.svc, d.ID, "the second standby follows the first", func(d *orchestrator.Deployment) bool {
		return d.IsStandby() && d.Orchestrator == after.Orchestrator
	})
	if r.Epoch < after.Epoch {
		t.Fatalf("the second standby is at epoch %d, the new primary at %d", r.Epoch, after.Epoch)
	}
	// The new primary holds its lease through the second standby.
	err := poll.Until(context.Background(), 30*time.Second, "the new primary's lease", func(ctx context.Context) (bool, error) {
		return first.svc.LeaseHeld(d.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSubmitStandbyRefused(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	stranger, _ := mustKey(t).DID().PeerID()
	strangerDID := string(mustKey(t).DID())
	base := task("0.5", "print=x")
	for _, tc := range []struct{ name, supervision, want string }{
		{"unknown peer", "supervision: {standbys: [" + stranger + "]}\n", "standby orchestrator " + stranger},
		{"unknown did:key", "supervision: {standbys: [" + strangerDID + "]}\n", "supervision.standbys[0]: standby orchestrator"},
		{"this node", "supervision: {standbys: [" + peerOf(w.nodes[0]) + "]}\n", "is this node"},
		{"too few peers", "supervision: {orchestrators: 3}\n", "wants 2 standby orchestrators, found 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.nodes[0].svc.Submit(context.Background(), w.submission(w.nodes[0], base+tc.supervision))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Submit = %v, want a refusal with %q", err, tc.want)
			}
			if got := w.nodes[0].svc.List(); len(got) != 0 {
				t.Fatalf("%d deployments after a refusal", len(got))
			}
		})
	}
}

// TestReplicateBadInput: a node refuses replicate requests that are
// malformed or that do not come from the primary they name, with a clear
// error, and keeps nothing.
func TestReplicateBadInput(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	target, sender := w.nodes[0], w.nodes[1]
	to, err := actor.NodeHandle(peerOf(target))
	if err != nil {
		t.Fatal(err)
	}
	self := sender.root.Handle()
	record := func(id string, epoch uint64) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"id": id, "owner": string(w.user.DID()), "state": "running", "epoch": epoch, "spec": []byte(task("0.5", "print=x"))})
		return b
	}
	for _, tc := range []struct {
		name string
		req  deployproto.ReplicateRequest
		code actor.Code
		want string
	}{
		{"bad ID", deployproto.ReplicateRequest{ID: "../etc", Probe: true}, actor.CodeBadEnvelope, "deployment ID"},
		{"no lease", deployproto.ReplicateRequest{ID: "dx", Deployment: record("dx", 1), Epoch: 1, Primary: self}, actor.CodeBadEnvelope, "lease 0s"},
		{"another's name", deployproto.ReplicateRequest{ID: "dx", Deployment: record("dx", 1), Epoch: 1, Lease: time.Second,
			Primary: actor.Handle{DID: w.user.DID(), Host: peerOf(target), Inbox: "orch/dx"}}, actor.CodeDenied, "comes from its primary"},
		{"record of another deployment", deployproto.ReplicateRequest{ID: "dx", Deployment: record("dy", 1), Epoch: 1, Lease: time.Second, Primary: self}, actor.CodeBadEnvelope, `not "dx"`},
		{"epochs differ", deployproto.ReplicateRequest{ID: "dx", Deployment: record("dx", 2), Epoch: 1, Lease: time.Second, Primary: self}, actor.CodeBadEnvelope, "epoch 2"},
		{"garbage record", deployproto.ReplicateRequest{ID: "dx", Deployment: json.RawMessage(`[1,2]`), Epoch: 1, Lease: time.Second, Primary: self}, actor.CodeBadEnvelope, "deployment record"},
		{"bad chain", deployproto.ReplicateRequest{ID: "dx", Deployment: record("dx", 1), Epoch: 1, Lease: time.Second, Primary: self, Chains: []string{"not a token"}}, actor.CodeBadEnvelope, "chain 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := sender.root.Invoke(ctx, to, deployproto.BehaviorReplicate, tc.req, nil)
			var ae *actor.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Msg, tc.want) {
				t.Fatalf("replicate = %v, want a %s error with %q", err, tc.code, tc.want)
			}
			if got := target.svc.List(); len(got) != 0 {
				t.Fatalf("%d deployments kept after a refusal", len(got))
			}
		})
	}
}
