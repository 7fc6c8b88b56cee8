package allocation

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
)

// Tracing of an allocation's lifecycle (docs/observability.md, "Traces").
//
// The start message carries the deployment's trace (the orchestrator's
// "start" span); its span context is kept in Record.Trace, so spans made
// after a restart of this node continue the same trace. Each run segment
// of the supervisor (from a start or a resume until the allocation ends,
// stops or this node closes) is one "allocation" span, with every restart
// as a span event; each start of an executor instance (artifacts, volumes,
// the executor's Start) is an "allocation start" span within it, with the
// executor's own start latency as an attribute. An allocation whose start
// carried no trace (tracing off, or not sampled) makes no spans.

// Span names of an allocation.
const (
	SpanAllocation = "allocation"
	SpanStart      = "allocation start"
)

// The attribute keys of the deployment's and the allocation's IDs: the
// values of telemetry.AttrDeployment and telemetry.AttrAllocation (that
// package keeps the store; a test keeps them equal).
const (
	attrDeployment = "deployment.id"
	attrAllocation = "allocation.id"
)

// remoteSpan returns the span context a message carries: the one its
// behavior's ctx holds (the runtime's), else its traceparent parsed.
func remoteSpan(ctx context.Context, msg *actor.Message) trace.SpanContext {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc
	}
	if msg == nil || msg.Trace == "" {
		return trace.SpanContext{}
	}
	sc, _ := actor.ParseTraceparent(msg.Trace)
	return sc
}

// parentOf returns the span context kept in a record.
func parentOf(rec *Record) trace.SpanContext {
	sc, _ := actor.ParseTraceparent(rec.Trace)
	return sc
}

// attrs are the attributes of the allocation's spans.
func (a *alloc) attrs() []attribute.KeyValue {
	rec := &a.rec // ID, Deployment, Name, Spec never change
	return []attribute.KeyValue{
		attribute.String(attrAllocation, rec.ID),
		attribute.String(attrDeployment, rec.Deployment),
		attribute.String("allocation.name", rec.Name),
		attribute.String("executor", string(rec.Spec.Executor)),
	}
}

// startSegment starts the "allocation" span of a supervisor run, a child
// of the trace in the record; ctx carries it (and its traceparent, for the
// messages the run sends). Without a trace the span is a no-op.
func (a *alloc) startSegment(ctx context.Context, resumed bool) (context.Context, trace.Span) {
	rec := a.record()
	parent := parentOf(&rec)
	if !parent.IsValid() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	attrs := append(a.attrs(), attribute.Bool("resumed", resumed), attribute.Int("restarts", rec.Restarts))
	ctx, span := a.m.cfg.Tracer.Start(trace.ContextWithSpanContext(ctx, parent), SpanAllocation, trace.WithAttributes(attrs...))
	return actor.WithTrace(ctx, actor.FormatTraceparent(span.SpanContext())), span
}

// endSegment ends a run segment's span with the allocation's state.
func (a *alloc) endSegment(span trace.Span) {
	if !span.IsRecording() {
		span.End()
		return
	}
	rec := a.record()
	span.SetAttributes(attribute.String("allocation.state", string(rec.State)), attribute.Int("restarts", rec.Restarts))
	if rec.State == deployproto.AllocFailed {
		span.SetStatus(codes.Error, rec.Message)
	}
	span.End()
}

// restartEvent records a restart on the run segment's span in ctx.
func restartEvent(ctx context.Context, why string, n int) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("restart", trace.WithAttributes(attribute.String("message", why), attribute.Int("restart", n)))
}

// startSpan starts the "allocation start" span within the segment in ctx
// (a no-op when the segment has none).
func (a *alloc) startSpan(ctx context.Context) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx, span := a.m.cfg.Tracer.Start(ctx, SpanStart, trace.WithAttributes(a.attrs()...))
	return actor.WithTrace(ctx, actor.FormatTraceparent(span.SpanContext())), span
}

// endStart ends the "allocation start" span: took is the executor's own
// start latency (0: it was not reached).
func endStart(span trace.Span, took time.Duration, err error) {
	if took > 0 {
		span.SetAttributes(attribute.Float64("executor.start_ms", float64(took.Microseconds())/1000))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// maxHeld bounds how many deployments a Manager remembers once their
// allocations here were removed.
const maxHeld = 1024

// Held is what a node knows of a deployment it holds (or held) allocations
// of: who may read its spans of it.
type Held struct {
	// Orchestrators are the DIDs of the orchestrator actors of its
	// allocations.
	Orchestrators []identity.DID
	// Traces are the trace IDs (32 hex digits) its allocations' starts
	// came with.
	Traces []string
}

func (h *Held) add(rec *Record) {
	if !slices.Contains(h.Orchestrators, rec.Orchestrator.DID) {
		h.Orchestrators = append(h.Orchestrators, rec.Orchestrator.DID)
	}
	if sc := parentOf(rec); sc.IsValid() && !slices.Contains(h.Traces, sc.TraceID().String()) {
		h.Traces = append(h.Traces, sc.TraceID().String())
	}
}

// rememberLocked keeps what a removed allocation says of its deployment.
// m.mu is held.
func (m *Manager) rememberLocked(rec *Record) {
	if m.held == nil {
		m.held = map[string]*Held{}
	}
	h := m.held[rec.Deployment]
	if h == nil {
		h = &Held{}
		m.held[rec.Deployment] = h
		m.heldOrder = append(m.heldOrder, rec.Deployment)
		if len(m.heldOrder) > maxHeld {
			delete(m.held, m.heldOrder[0])
			m.heldOrder = slices.Delete(m.heldOrder, 0, 1)
		}
	}
	h.add(rec)
}

// Held returns what this node knows of a deployment from its allocations
// here, in any state, and those removed since it started (of the last
// maxHeld deployments): the orchestrators that may read its spans of the
// deployment, and the traces they may read. Empty when it holds none.
func (m *Manager) Held(deployment string) Held {
	m.mu.Lock()
	var out Held
	if h := m.held[deployment]; h != nil {
		out = Held{Orchestrators: slices.Clone(h.Orchestrators), Traces: slices.Clone(h.Traces)}
	}
	var live []*alloc
	for _, a := range m.allocs {
		if a.rec.Deployment == deployment { // Deployment never changes
			live = append(live, a)
		}
	}
	m.mu.Unlock()
	for _, a := range live {
		rec := a.record()
		out.add(&rec)
	}
	return out
}
