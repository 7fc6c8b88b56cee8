package orchestrator

import (
	"context"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
)

// Tracing: one trace per deployment (docs/observability.md, "Traces").
//
// Submit starts the root span "deployment" and keeps its span context
// (W3C traceparent) in Deployment.Trace, so the record carries it to a
// restarted node and to standbys. The root span ends once every allocation
// runs (or the deployment ends, or this node stops orchestrating it). Every
// later span of the deployment is a child of that span context, on
// whichever node orchestrates: "bid round", "commit" (one per provider),
// "start" (one per allocation), "shutdown", and one short "supervision"
// span per timeline event, which carries the event (restarted, lost,
// redeployed, stale-stopped, takeover, …) as a span event. The run loop's
// context carries the trace, so every message the orchestrator sends for
// the deployment carries its traceparent.

// Span names of the orchestrator.
const (
	SpanDeployment  = "deployment"
	SpanBidRound    = "bid round"
	SpanCommit      = "commit"
	SpanStart       = "start"
	SpanShutdown    = "shutdown"
	SpanSupervision = "supervision"
)

// The attribute keys of the deployment's and the allocation's IDs: the
// values of telemetry.AttrDeployment and telemetry.AttrAllocation (that
// package keeps the store; a test keeps them equal).
const (
	attrDeployment = "deployment.id"
	attrAllocation = "allocation.id"
)

// withSpanContext returns ctx with sc as the parent of the spans started
// from it and as the traceparent of the messages sent with it.
func withSpanContext(ctx context.Context, sc trace.SpanContext) context.Context {
	if !sc.IsValid() {
		return ctx
	}
	return actor.WithTrace(trace.ContextWithSpanContext(ctx, sc), actor.FormatTraceparent(sc))
}

// traced returns ctx within the deployment's trace: its live root span
// while there is one, else the span context kept in the record.
func (r *run) traced(ctx context.Context) context.Context {
	r.mu.Lock()
	root := r.root
	r.mu.Unlock()
	if root != nil {
		return actor.WithTrace(trace.ContextWithSpan(ctx, root), actor.FormatTraceparent(root.SpanContext()))
	}
	return withSpanContext(ctx, r.sc)
}

// startSpan starts a child span of the deployment (or of the span ctx
// carries) with the deployment's ID; the returned ctx carries it to the
// messages sent with it.
func (r *run) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	r.mu.Lock()
	untraced := !r.sc.IsValid() && r.root == nil
	r.mu.Unlock()
	if untraced { // tracing was off at submit, or a plan's round
		return ctx, trace.SpanFromContext(context.Background())
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = r.traced(ctx)
	}
	attrs = append(attrs, attribute.String(attrDeployment, r.d.ID)) // ID never changes
	ctx, span := r.s.cfg.Tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	if sc := span.SpanContext(); sc.IsValid() {
		ctx = actor.WithTrace(ctx, actor.FormatTraceparent(sc))
	}
	return ctx, span
}

// endSpan ends span, with an error status when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startRoot starts the root span of a new deployment, dated began (when
// the submission came), and keeps its traceparent in d.Trace.
func (s *Service) startRoot(d *Deployment, metadata map[string]string, allocs []string, began time.Time) trace.Span {
	attrs := []attribute.KeyValue{
		attribute.String(attrDeployment, d.ID),
		attribute.String("deployment.owner", string(d.Owner)),
		attribute.String("ensemble.allocations", strings.Join(allocs, ",")),
	}
	if name := metadata["name"]; name != "" {
		attrs = append(attrs, attribute.String("ensemble.name", name))
	}
	_, span := s.cfg.Tracer.Start(context.Background(), SpanDeployment, trace.WithNewRoot(), trace.WithTimestamp(began), trace.WithAttributes(attrs...))
	d.Trace = actor.FormatTraceparent(span.SpanContext())
	return span
}

// endRootLocked ends the live root span, if any, once the deployment runs
// or has ended (stopping: this node stops orchestrating it). r.mu is held.
func (r *run) endRootLocked(stopping bool) {
	if r.root == nil {
		return
	}
	d := r.d
	if !stopping && d.State != Running && !d.State.Terminal() {
		return
	}
	r.root.SetAttributes(attribute.String("deployment.state", string(d.State)), attribute.Int("deployment.rounds", d.Round))
	if d.State == Failed {
		r.root.SetStatus(codes.Error, d.Message)
	}
	r.root.End()
	r.root = nil
}

// traceEvents records the timeline events numbered after seq as span
// events, one short "supervision" span each.
func (r *run) traceEvents(events []Event) {
	for _, e := range events {
		_, span := r.startSpan(context.Background(), SpanSupervision, attribute.String("event", string(e.Kind)))
		attrs := []attribute.KeyValue{attribute.String("message", e.Message)}
		for _, kv := range [][2]string{{"allocation", e.Allocation}, {"node", e.Node}, {"from", e.From}, {"to", e.To}} {
			if kv[1] != "" {
				attrs = append(attrs, attribute.String(kv[0], kv[1]))
			}
		}
		if e.Epoch > 0 {
			attrs = append(attrs, attribute.String("epoch", strconv.FormatUint(e.Epoch, 10)))
		}
		span.AddEvent(string(e.Kind), trace.WithTimestamp(e.Time), trace.WithAttributes(attrs...))
		if e.Kind == EventFailed || e.Kind == EventBudgetSpent || e.Kind == EventLost {
			span.SetStatus(codes.Error, e.Message)
		}
		span.End()
	}
}

// newEvents returns the events of d numbered after seq.
func newEvents(d *Deployment, seq uint64) []Event {
	if d.EventSeq <= seq {
		return nil
	}
	var out []Event
	for _, e := range d.Events {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// AskAs invokes behavior on the root actor of node host as the
// orchestrator actor of deployment id, and decodes the answer into reply:
// for what this node asks on the deployment's behalf, such as gathering
// its spans (BehaviorSpans). ErrNotFound when the deployment is not here.
func (s *Service) AskAs(ctx context.Context, id, host, behavior string, req, reply any) error {
	r, err := s.get(id)
	if err != nil {
		return err
	}
	h, err := actor.NodeHandle(host)
	if err != nil {
		return err
	}
	return r.actor.Invoke(ctx, h, behavior, req, reply)
}

// parseTraceparent reads a stored W3C traceparent: an invalid span context
// when s is empty or malformed.
func parseTraceparent(s string) trace.SpanContext {
	sc, _ := actor.ParseTraceparent(s)
	return sc
}
