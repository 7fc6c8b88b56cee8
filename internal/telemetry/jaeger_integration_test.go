//go:build integration

package telemetry

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/e2etest/jaegerfix"
)

// Two nodes' Tracing export one trace into a real Jaeger: the query API
// returns it with spans from both processes, the child under the parent.
func TestJaegerTwoProcesses(t *testing.T) {
	j := jaegerfix.Start(t)
	a := newTracing(t, Config{Endpoint: j.OTLP, Sampling: 1, InstanceID: "12D3KooWnodeA", Version: "test", ExportInterval: 50 * time.Millisecond})
	b := newTracing(t, Config{Endpoint: j.OTLP, Sampling: 1, InstanceID: "12D3KooWnodeB", Version: "test", ExportInterval: 50 * time.Millisecond})

	ctx, root := a.Tracer().Start(context.Background(), "deployment", trace.WithAttributes(attribute.String(AttrDeployment, "d-42")))
	// What an envelope carries across: the span context, remote on B.
	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	_, child := b.Tracer().Start(remote, "/dms/deployment/bid", trace.WithSpanKind(trace.SpanKindServer))
	child.End()
	root.End()
	fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tr := range []*Tracing{a, b} {
		if err := tr.ForceFlush(fctx); err != nil {
			t.Fatal(err)
		}
	}
	traceID := root.SpanContext().TraceID().String()
	got := j.WaitTrace(t, traceID, func(tr jaegerfix.Trace) bool { return len(tr.Spans) == 2 })
	if ids := got.InstanceIDs(); !slices.Equal(ids, []string{"12D3KooWnodeA", "12D3KooWnodeB"}) {
		t.Fatalf("instance IDs in the trace = %v, want both nodes", ids)
	}
	for _, s := range got.Spans {
		p := got.Processes[s.ProcessID]
		if p.ServiceName != "dms" || jaegerfix.Tag(p.Tags, "service.version") != "test" {
			t.Errorf("span %s: process %+v, want service dms version test", s.OperationName, p)
		}
		switch s.OperationName {
		case "deployment":
			if s.Parent() != "" || jaegerfix.Tag(s.Tags, AttrDeployment) != "d-42" {
				t.Errorf("root span %+v", s)
			}
		case "/dms/deployment/bid":
			if s.Parent() != root.SpanContext().SpanID().String() {
				t.Errorf("child span's parent = %q, want %s", s.Parent(), root.SpanContext().SpanID())
			}
		default:
			t.Errorf("unexpected span %q", s.OperationName)
		}
	}
	traces, err := j.Traces(fctx, "dms")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(traces, func(tr jaegerfix.Trace) bool { return tr.TraceID == traceID }) {
		t.Fatalf("the service's traces (%d) miss %s", len(traces), traceID)
	}
	if st := a.Stats(); st["exported"] != 1 || st["export_errors"] != 0 {
		t.Fatalf("A's stats %v, want 1 exported", st)
	}
}
