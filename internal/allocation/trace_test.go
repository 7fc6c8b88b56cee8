package allocation

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/telemetry"
)

// tracedManager is a Manager of h with a tracer that records every span.
func (h *harness) tracedManager(rec *tracetest.SpanRecorder) *Manager {
	h.t.Helper()
	m, err := New(Config{
		System: h.provSys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex},
		Store: h.store, Ledger: h.ledger, Wallet: h.wallet, Sealer: h.sealer, DataDir: h.dataDir,
		Heartbeat: time.Second, Logger: testLogger(),
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("dms"),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.managers = append(h.managers, m)
	return m
}

// TestAllocationSpans: a start that carries a trace gives one
// "allocation" span, a child of the start's span, with each restart as an
// event and the failure as its status, and one "allocation start" span
// per run within it; a start without a trace gives none.
func TestAllocationSpans(t *testing.T) {
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 7}, TraceFlags: trace.FlagsSampled,
	})
	tp := "00-" + parent.TraceID().String() + "-" + parent.SpanID().String() + "-01"
	for _, tc := range []struct {
		name      string
		trace     string
		wantSpans int
	}{
		{"traced", tp, 4}, // the allocation and its three runs
		{"untraced", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				rec := tracetest.NewSpanRecorder()
				m := h.tracedManager(rec)
				spec := task("print=try", "exit=1")
				spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 2, Backoff: time.Second}
				hd := h.create(m, "a1", "r1", spec)
				ctx := context.Background()
				if tc.trace != "" {
					ctx = actor.WithTrace(ctx, tc.trace)
				}
				if err := h.orch.act.Invoke(ctx, hd, deployproto.BehaviorStart, deployproto.StartRequest{Chain: h.chain(hd.DID)}, nil); err != nil {
					t.Fatal(err)
				}
				h.awaitState("a1", deployproto.AllocFailed)
				synctest.Wait() // the supervisor has returned: its span ended
				spans := rec.Ended()
				if len(spans) != tc.wantSpans {
					t.Fatalf("%d spans, want %d", len(spans), tc.wantSpans)
				}
				if tc.wantSpans == 0 {
					return
				}
				var alloc trace.SpanContext
				for _, s := range spans {
					if s.Name() == SpanAllocation {
						alloc = s.SpanContext()
						if s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() {
							t.Errorf("allocation span: trace %s parent %s, want %s %s", s.SpanContext().TraceID(), s.Parent().SpanID(), parent.TraceID(), parent.SpanID())
						}
						if n := len(s.Events()); n != 2 || s.Events()[0].Name != "restart" {
							t.Errorf("allocation span events %v, want 2 restarts", s.Events())
						}
						if s.Status().Description == "" {
							t.Error("the failed allocation's span has no error status")
						}
						if got := attrOf(s, telemetry.AttrDeployment); got != "dep1" {
							t.Errorf("deployment.id = %q", got)
						}
					}
				}
				for _, s := range spans {
					if s.Name() == SpanStart && s.Parent().SpanID() != alloc.SpanID() {
						t.Errorf("allocation start under %s, want the allocation span %s", s.Parent().SpanID(), alloc.SpanID())
					}
				}
				if rec, _ := h.store.List(); len(rec) != 1 || rec[0].Trace != tp {
					t.Errorf("record's trace %q, want %q", rec[0].Trace, tp)
				}
			})
		})
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
