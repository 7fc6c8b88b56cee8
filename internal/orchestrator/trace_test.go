package orchestrator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/telemetry"
)

// spansOf waits until the recorder holds ended spans with every name in
// want (at least once) and returns them.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, want ...string) []trace.ReadOnlySpan {
	t.Helper()
	var got []trace.ReadOnlySpan
	var missing []string
	err := poll.Until(t.Context(), 20*time.Second, "spans "+strings.Join(want, ", "), func(context.Context) (bool, error) {
		got = rec.Ended()
		have := map[string]bool{}
		for _, s := range got {
			have[s.Name()] = true
		}
		missing = slices.DeleteFunc(slices.Clone(want), func(n string) bool { return have[n] })
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("no span %s among %s", strings.Join(missing, ", "), spanNames(got))
	}
	return got
}

func spanNames(spans []trace.ReadOnlySpan) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return strings.Join(out, ", ")
}

func attr(s trace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func named(spans []trace.ReadOnlySpan, name string) []trace.ReadOnlySpan {
	var out []trace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// TestOneTracePerDeployment: a deployment yields one trace, from submit to
// shutdown, across the orchestrator's node and its provider: the root span
// "deployment", its children "bid round", "commit", "start" and
// "shutdown", and on the provider "allocation" (a child of the start)
// with "allocation start" in it, each with the deployment's ID.
func TestOneTracePerDeployment(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	w := newWorld(t, 2, worldOpts{spans: rec})
	w.nodes[0].ledger.Offboard() // the provider is the other node
	d := w.submit(service("0.5", "", "print=serving", "sleep=60s"))
	if d.Trace == "" {
		t.Fatal("the deployment record keeps no trace")
	}
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	if _, err := w.nodes[0].svc.Shutdown(t.Context(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped)
	spans := spansOf(t, rec, orchestrator.SpanDeployment, orchestrator.SpanBidRound, orchestrator.SpanCommit, orchestrator.SpanStart,
		orchestrator.SpanShutdown, allocation.SpanAllocation, allocation.SpanStart)

	roots := named(spans, orchestrator.SpanDeployment)
	if len(roots) != 1 {
		t.Fatalf("%d deployment spans, want 1", len(roots))
	}
	root := roots[0]
	traceID := root.SpanContext().TraceID()
	byID := map[string]trace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %s is in trace %s, want the deployment's %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		if got := attr(s, telemetry.AttrDeployment); got != d.ID {
			t.Errorf("span %s: %s = %q, want %q", s.Name(), telemetry.AttrDeployment, got, d.ID)
		}
		byID[s.SpanContext().SpanID().String()] = s
	}
	if root.Parent().IsValid() {
		t.Errorf("the deployment span has a parent %s", root.Parent().SpanID())
	}
	if !strings.Contains(d.Trace, traceID.String()) || !strings.Contains(d.Trace, root.SpanContext().SpanID().String()) {
		t.Errorf("record's trace %s is not the root span's %s", d.Trace, root.SpanContext().SpanID())
	}
	parentName := func(s trace.ReadOnlySpan) string {
		if p, ok := byID[s.Parent().SpanID().String()]; ok {
			return p.Name()
		}
		return "(none)"
	}
	for _, tc := range []struct{ name, parent string }{
		{orchestrator.SpanBidRound, orchestrator.SpanDeployment},
		{orchestrator.SpanCommit, orchestrator.SpanDeployment},
		{orchestrator.SpanStart, orchestrator.SpanDeployment},
		{orchestrator.SpanShutdown, orchestrator.SpanDeployment},
		{allocation.SpanAllocation, orchestrator.SpanStart},
		{allocation.SpanStart, allocation.SpanAllocation},
	} {
		for _, s := range named(spans, tc.name) {
			if got := parentName(s); got != tc.parent {
				t.Errorf("parent of %s = %s, want %s", tc.name, got, tc.parent)
			}
		}
	}
	// The provider's spans are recorded there, the orchestrator's here.
	provider := d.Allocations["job"].Handle.Host
	for _, s := range spans {
		node := attrOfResource(s, "service.instance.id")
		want := w.nodes[0].host.Self()
		if strings.HasPrefix(s.Name(), "allocation") {
			want = provider
		}
		if node != want {
			t.Errorf("span %s recorded by %s, want %s", s.Name(), node, want)
		}
	}
	st := named(spans, allocation.SpanStart)[0]
	if attr(st, "executor") != "docker" || attr(st, "executor.start_ms") == "" {
		t.Errorf("allocation start: executor %q, start latency %q", attr(st, "executor"), attr(st, "executor.start_ms"))
	}
	if got := attr(root, "deployment.state"); got != string(orchestrator.Running) {
		t.Errorf("deployment span ended in state %q, want running", got)
	}
}

func attrOfResource(s trace.ReadOnlySpan, key string) string {
	for _, kv := range s.Resource().Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestRedeployIsInTheTrace: a redeploy after a lost provider is a span
// event of the same trace ("supervision" spans), and the new placement's
// commit and start are spans of it too.
func TestRedeployIsInTheTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	w := newWorld(t, 3, worldOpts{lost: time.Second, spans: rec})
	w.nodes[0].ledger.Offboard()
	d := w.submit(service("0.5", "reschedule: {delay: 100ms}\n", "print=serving", "sleep=60s"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	w.byHost(d.Allocations["job"].Handle.Host).host.SetDown(true)
	waitFor(t, w.nodes[0].svc, d.ID, "redeployed and running", func(d *orchestrator.Deployment) bool {
		a := d.Allocations["job"]
		return a.Attempt == 2 && a.State == deployproto.AllocRunning
	})
	spans := spansOf(t, rec, orchestrator.SpanDeployment, orchestrator.SpanSupervision)
	traceID := named(spans, orchestrator.SpanDeployment)[0].SpanContext().TraceID()
	var events []string
	err := poll.Until(t.Context(), 10*time.Second, "a redeployed event", func(context.Context) (bool, error) {
		events = events[:0]
		for _, s := range named(rec.Ended(), orchestrator.SpanSupervision) {
			if s.SpanContext().TraceID() != traceID {
				t.Fatalf("supervision span in trace %s, want %s", s.SpanContext().TraceID(), traceID)
			}
			for _, e := range s.Events() {
				events = append(events, e.Name)
			}
		}
		return slices.Contains(events, string(orchestrator.EventRedeployed)), nil
	})
	if err != nil {
		t.Fatalf("supervision events %v: %v", events, err)
	}
	for _, want := range []orchestrator.EventKind{orchestrator.EventPlaced, orchestrator.EventLost, orchestrator.EventRedeploying} {
		if !slices.Contains(events, string(want)) {
			t.Errorf("supervision events %v lack %s", events, want)
		}
	}
	if n := len(named(rec.Ended(), orchestrator.SpanCommit)); n < 2 {
		t.Errorf("%d commit spans, want the first placement's and the redeploy's", n)
	}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
	}
}

// TestTraceSurvivesRestartAndTakeover: the deployment's trace goes on
// after its orchestrator's node restarts (the shutdown after the restart
// is a child of the same root) and on the standby that takes over from
// it (its takeover is a span event of the same trace).
func TestTraceSurvivesRestartAndTakeover(t *testing.T) {
	t.Run("restart", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		w := newWorld(t, 2, worldOpts{spans: rec})
		w.nodes[0].ledger.Offboard()
		d := w.submit(service("0.5", "", "print=serving", "sleep=60s"))
		waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
		w.kill(w.nodes[0])
		w.restart(w.nodes[0])
		if _, err := w.nodes[0].svc.Shutdown(t.Context(), d.ID); err != nil {
			t.Fatal(err)
		}
		waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped)
		spans := spansOf(t, rec, orchestrator.SpanDeployment, orchestrator.SpanShutdown)
		roots := named(spans, orchestrator.SpanDeployment)
		if len(roots) != 1 {
			t.Fatalf("%d deployment spans, want 1", len(roots))
		}
		root := roots[0].SpanContext()
		for _, s := range named(spans, orchestrator.SpanShutdown) {
			if s.SpanContext().TraceID() != root.TraceID() || s.Parent().SpanID() != root.SpanID() {
				t.Errorf("shutdown after the restart: trace %s parent %s, want %s %s", s.SpanContext().TraceID(), s.Parent().SpanID(), root.TraceID(), root.SpanID())
			}
		}
	})
	t.Run("takeover", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		w := newWorld(t, 4, worldOpts{lost: time.Second, lease: time.Second, spans: rec})
		w.nodes[0].ledger.Offboard()
		w.nodes[1].ledger.Offboard()
		before, _ := takeOver(t, w)
		root := named(spansOf(t, rec, orchestrator.SpanDeployment), orchestrator.SpanDeployment)[0].SpanContext()
		standby := peerOf(w.nodes[1])
		err := poll.Until(t.Context(), 10*time.Second, "a takeover event on the standby", func(context.Context) (bool, error) {
			for _, s := range named(rec.Ended(), orchestrator.SpanSupervision) {
				if attrOfResource(s, "service.instance.id") != standby || attr(s, "event") != string(orchestrator.EventTakeover) {
					continue
				}
				if s.SpanContext().TraceID() != root.TraceID() || s.Parent().SpanID() != root.SpanID() {
					return false, fmt.Errorf("takeover span in trace %s under %s, want %s under %s", s.SpanContext().TraceID(), s.Parent().SpanID(), root.TraceID(), root.SpanID())
				}
				return true, nil
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("deployment %s: %v", before.ID, err)
		}
		// The standby kept replicas of the timeline: it traced none of
		// the primary's decisions again.
		for _, s := range named(rec.Ended(), orchestrator.SpanSupervision) {
			if attr(s, "event") == string(orchestrator.EventPlaced) && attrOfResource(s, "service.instance.id") != peerOf(w.nodes[0]) {
				t.Errorf("a placed event traced by %s, not by the primary", attrOfResource(s, "service.instance.id"))
			}
		}
	})
}
