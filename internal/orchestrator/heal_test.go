package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// waitFor waits until cond holds for the deployment (it fails the test if
// the deployment ends first, unless cond accepts that).
func waitFor(t testing.TB, svc *orchestrator.Service, id, what string, cond func(d *orchestrator.Deployment) bool) *orchestrator.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var after uint64
	for {
		d, err := svc.Wait(ctx, id, after)
		if err != nil {
			t.Fatal(err)
		}
		if cond(d) {
			return d
		}
		if ctx.Err() != nil || d.State.Terminal() {
			t.Fatalf("deployment %s: state %s (%s): still not %s; events:\n%s", id, d.State, d.Message, what, eventLines(d))
		}
		after = d.Version
	}
}

func eventLines(d *orchestrator.Deployment) string {
	var b strings.Builder
	for _, e := range d.Events {
		b.WriteString("  " + string(e.Kind) + ": " + e.Message + "\n")
	}
	return b.String()
}

// kinds returns the kinds of the deployment's events, in order.
func kinds(d *orchestrator.Deployment) []orchestrator.EventKind {
	var out []orchestrator.EventKind
	for _, e := range d.Events {
		out = append(out, e.Kind)
	}
	return out
}

// hasInOrder reports whether want is a subsequence of got.
func hasInOrder(got, want []orchestrator.EventKind) bool {
	i := 0
	for _, k := range got {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

func service(cpu string, extra string, steps ...string) string {
	return `version: v1
allocations:
  job:
    type: service
    executor: docker
    resources: {cpu: ` + cpu + `, ram: 64MiB}
    execution:
      image: workload
      cmd: [workload, ` + strings.Join(steps, ", ") + `]
` + extra
}

// byHost returns the test node of a peer ID.
func (w *world) byHost(host string) *tnode {
	for _, n := range w.nodes {
		if n.host.Self() == host {
			return n
		}
	}
	w.t.Fatalf("no node %s", host)
	return nil
}

func TestLostNodeIsRedeployed(t *testing.T) {
	w := newWorld(t, 3, worldOpts{lost: time.Second})
	w.nodes[0].ledger.Offboard() // the orchestrator's node hosts nothing
	d := w.submit(service("0.5", "reschedule: {delay: 100ms}\n", "print=serving", "sleep=60s"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	first := d.Allocations["job"]
	dead := w.byHost(first.Handle.Host)
	dead.host.SetDown(true)
	d = waitFor(t, w.nodes[0].svc, d.ID, "redeployed and running", func(d *orchestrator.Deployment) bool {
		a := d.Allocations["job"]
		return a.Attempt == 2 && a.State == deployproto.AllocRunning
	})
	a := d.Allocations["job"]
	switch {
	case d.State != orchestrator.Running:
		t.Fatalf("deployment %s, want running", d.State)
	case a.Handle.Host == first.Handle.Host:
		t.Fatal("redeployed on the lost provider")
	case a.Epoch <= first.Epoch || d.Placement["job"].Epoch != a.Epoch:
		t.Fatalf("epochs: first %d, now %d, placement %d: want a higher one", first.Epoch, a.Epoch, d.Placement["job"].Epoch)
	case len(a.Replaced) != 1 || a.Replaced[0].Handle != first.Handle:
		t.Fatalf("replaced %v, want the first copy", a.Replaced)
	}
	if want := []orchestrator.EventKind{orchestrator.EventPlaced, orchestrator.EventLost, orchestrator.EventRedeploying, orchestrator.EventRedeployed}; !hasInOrder(kinds(d), want) {
		t.Fatalf("events %v, want %v in order:\n%s", kinds(d), want, eventLines(d))
	}
	// The lost provider comes back with its copy still running: its next
	// report is answered with a stop, which the timeline records.
	dead.host.SetDown(false)
	waitFor(t, w.nodes[0].svc, d.ID, "told the stale copy to stop", func(d *orchestrator.Deployment) bool {
		for _, e := range d.Events {
			if e.Kind == orchestrator.EventStaleStopped && e.Epoch == first.Epoch {
				return true
			}
		}
		return false
	})
}

func TestRescheduleBudget(t *testing.T) {
	cases := []struct {
		name       string
		reschedule string
		runs       int // placements before the deployment fails
	}{
		{"off", "reschedule: {attempts: 0}\n", 1},
		{"one attempt", "reschedule: {attempts: 1, delay: 100ms}\n", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3, worldOpts{})
			w.nodes[0].ledger.Offboard()
			start := w.free()
			d := w.submit(task("0.5", "print=once", "exit=3") + tc.reschedule)
			d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Failed)
			a := d.Allocations["job"]
			switch {
			case d.Reason != orchestrator.ReasonBudgetSpent:
				t.Fatalf("reason %q (%s), want %s", d.Reason, d.Message, orchestrator.ReasonBudgetSpent)
			case a.Attempt != tc.runs && !(tc.runs == 1 && a.Attempt <= 1):
				t.Fatalf("attempt %d, want %d", a.Attempt, tc.runs)
			case d.ExitCode == nil || *d.ExitCode != 3:
				t.Fatalf("exit code %v, want the task's 3", d.ExitCode)
			case !strings.Contains(d.Message, "reschedule.attempts"):
				t.Fatalf("message %q does not name the budget", d.Message)
			}
			if k := kinds(d); k[len(k)-1] != orchestrator.EventBudgetSpent {
				t.Fatalf("last event %s, want %s:\n%s", k[len(k)-1], orchestrator.EventBudgetSpent, eventLines(d))
			}
			w.waitFree(start)
		})
	}
}

func TestPinnedNodeWaitsForItsProvider(t *testing.T) {
	w := newWorld(t, 3, worldOpts{lost: time.Second})
	w.nodes[0].ledger.Offboard()
	pinned := w.nodes[1]
	d := w.submit(service("0.5", "nodes:\n  job: {allocations: [job], peer: "+pinned.host.Self()+"}\n", "print=serving", "sleep=60s"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	pinned.host.SetDown(true)
	d = waitFor(t, w.nodes[0].svc, d.ID, "waiting for the pinned provider", func(d *orchestrator.Deployment) bool {
		return hasInOrder(kinds(d), []orchestrator.EventKind{orchestrator.EventLost, orchestrator.EventWaiting})
	})
	if d.State != orchestrator.Running || !strings.Contains(d.Message, "pinned") {
		t.Fatalf("deployment %s (%s), want running and waiting for the pinned provider", d.State, d.Message)
	}
	pinned.host.SetDown(false)
	d = waitFor(t, w.nodes[0].svc, d.ID, "back", func(d *orchestrator.Deployment) bool {
		return d.Allocations["job"].State == deployproto.AllocRunning
	})
	if a := d.Allocations["job"]; a.Attempt != 1 || a.Handle.Host != pinned.host.Self() {
		t.Fatalf("attempt %d on %s: the pinned node moved", a.Attempt, a.Handle.Host)
	}
}

func TestCompletedTaskIsNotRerun(t *testing.T) {
	w := newWorld(t, 3, worldOpts{lost: time.Second})
	w.nodes[0].ledger.Offboard()
	d := w.submit(`version: v1
allocations:
  setup:
    executor: docker
    resources: {cpu: 0.25, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=setup]}
  web:
    type: service
    executor: docker
    depends_on: [setup]
    resources: {cpu: 0.25, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=serving, sleep=60s]}
nodes:
  box: {allocations: [setup, web]}
reschedule: {delay: 50ms}
`)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	d = waitFor(t, w.nodes[0].svc, d.ID, "web running", func(d *orchestrator.Deployment) bool {
		return d.Allocations["web"].State == deployproto.AllocRunning && d.Allocations["setup"].State == deployproto.AllocCompleted
	})
	w.byHost(d.Placement["box"].Provider.Host).host.SetDown(true)
	d = waitFor(t, w.nodes[0].svc, d.ID, "web redeployed", func(d *orchestrator.Deployment) bool {
		return d.Allocations["web"].Attempt == 2 && d.Allocations["web"].State == deployproto.AllocRunning
	})
	if s := d.Allocations["setup"]; s.Attempt != 1 || s.State != deployproto.AllocCompleted {
		t.Fatalf("setup: attempt %d, %s: a completed task ran again", s.Attempt, s.State)
	}
}

func TestStrategies(t *testing.T) {
	const spec = `version: v1
allocations:
  db:
    type: service
    executor: docker
    resources: {cpu: 0.2, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=db, sleep=400ms, exit=1]}
    restart: {policy: always, max_restarts: 3, backoff: 100ms}
  web:
    type: service
    executor: docker
    depends_on: [db]
    resources: {cpu: 0.2, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=web, sleep=60s]}
  other:
    type: service
    executor: docker
    resources: {cpu: 0.2, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=other, sleep=60s]}
nodes:
  box: {allocations: [db, web, other]}
`
	cases := []struct {
		strategy         string
		webRestarts      bool // web is restarted when db restarts
		otherRestarts    bool
		otherNotified    bool
		notifiedContains string
	}{
		{"one_for_one", false, false, false, "told it"},
		{"rest_for_one", true, false, false, "restarting it (rest_for_one)"},
		{"one_for_all", true, true, true, "restarting it (one_for_all)"},
	}
	for _, tc := range cases {
		t.Run(tc.strategy, func(t *testing.T) {
			w := newWorld(t, 2, worldOpts{})
			w.nodes[0].ledger.Offboard()
			d := w.submit(spec + "supervision: {strategy: " + tc.strategy + "}\n")
			notified := func(d *orchestrator.Deployment, name string) *orchestrator.Event {
				for i, e := range d.Events {
					if e.Kind == orchestrator.EventNotified && e.Allocation == name && strings.HasPrefix(e.Message, "db restarted") {
						return &d.Events[i]
					}
				}
				return nil
			}
			d = waitFor(t, w.nodes[0].svc, d.ID, "web told of db's restart", func(d *orchestrator.Deployment) bool {
				ok := notified(d, "web") != nil
				if tc.webRestarts {
					ok = ok && d.Allocations["web"].Restarts > 0
				}
				if tc.otherRestarts {
					ok = ok && d.Allocations["other"].Restarts > 0
				}
				return ok
			})
			if e := notified(d, "web"); !strings.Contains(e.Message, tc.notifiedContains) {
				t.Fatalf("web's notice %q, want %q", e.Message, tc.notifiedContains)
			}
			if !tc.webRestarts && d.Allocations["web"].Restarts != 0 {
				t.Fatalf("web restarted %d times under %s", d.Allocations["web"].Restarts, tc.strategy)
			}
			if !tc.otherRestarts && d.Allocations["other"].Restarts != 0 {
				t.Fatalf("other restarted %d times under %s", d.Allocations["other"].Restarts, tc.strategy)
			}
			if got := notified(d, "other") != nil; got != tc.otherNotified {
				t.Fatalf("other notified: %v, want %v:\n%s", got, tc.otherNotified, eventLines(d))
			}
		})
	}
}

// A service whose health check keeps failing is restarted under its
// policy, then redeployed like a crash, until its budget is spent.
func TestUnhealthyServiceIsRedeployed(t *testing.T) {
	w := newWorld(t, 3, worldOpts{})
	w.nodes[0].ledger.Offboard()
	d := w.submit(service("0.5", `    healthcheck: {exec: [check, eprint=down, exit=1], interval: 100ms, retries: 2}
    restart: {policy: on-failure, max_restarts: 1, backoff: 100ms}
reschedule: {attempts: 1, delay: 100ms}
`, "print=serving", "sleep=60s"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Failed)
	if want := []orchestrator.EventKind{orchestrator.EventRestarted, orchestrator.EventFailed, orchestrator.EventRedeployed, orchestrator.EventFailed, orchestrator.EventBudgetSpent}; !hasInOrder(kinds(d), want) {
		t.Fatalf("events %v, want %v in order:\n%s", kinds(d), want, eventLines(d))
	}
	if a := d.Allocations["job"]; d.Reason != orchestrator.ReasonBudgetSpent || a.Attempt != 2 || a.Result == nil || a.Result.Reason != "unhealthy" {
		t.Fatalf("reason %q, attempt %d, result %+v: want the budget spent on the second copy, unhealthy", d.Reason, a.Attempt, a.Result)
	}
}
