package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/telemetry"
)

// Gathering a deployment's trace (dms deployment trace; docs/observability.md,
// "Traces"). Every node keeps the spans it finished (n.spans). The
// orchestrator's node reads its own and asks every other node of the
// deployment for theirs with deployproto.BehaviorSpans, sent as the
// deployment's orchestrator actor, all at once and within gatherTimeout; a
// node that does not answer in time is reported as such, and the trace is
// the rest. A node answers only the orchestrator of a deployment it holds,
// or held, allocations of (or keeps as a standby), and only for that
// deployment's trace.

// spansRequest asks a node for its spans of a deployment's trace.
type spansRequest struct {
	Deployment string `json:"deployment"`
	TraceID    string `json:"trace_id"` // 32 lowercase hex digits
}

// spansReply is a node's spans of the trace, oldest first.
type spansReply struct {
	Spans []telemetry.SpanRecord `json:"spans"`
	// Omitted counts the spans left out to keep the reply within
	// maxSpansReply spans and maxSpansBytes.
	Omitted int `json:"omitted,omitempty"`
	// Off says that the node keeps no spans (tracing is off there).
	Off bool `json:"off,omitempty"`
}

// Bounds of gathering.
const (
	maxSpansReply = 4096    // spans in one node's reply
	maxSpansBytes = 1 << 20 // JSON bytes of one node's reply (an envelope holds 4 MiB)
	gatherTimeout = 5 * time.Second
)

// addSpansBehavior registers deployproto.BehaviorSpans on the root actor.
func (n *Node) addSpansBehavior() {
	n.root.AddBehavior(deployproto.BehaviorSpans, n.answerSpans)
}

// answerSpans answers deployproto.BehaviorSpans: this node's spans of the
// trace of a deployment, for its orchestrator only.
func (n *Node) answerSpans(ctx context.Context, m *actor.Message) (any, error) {
	req, err := decodeSpansRequest(m)
	if err != nil {
		return nil, err
	}
	orchs, traces := n.spanReaders(req.Deployment)
	if len(orchs) == 0 {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("spans of deployment %s: this node holds nothing of it", req.Deployment)}
	}
	if !slices.Contains(orchs, m.From.DID) {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("spans of deployment %s: only its orchestrator may read them", req.Deployment)}
	}
	if !slices.Contains(traces, req.TraceID) {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("spans of deployment %s: trace %s is not the deployment's", req.Deployment, req.TraceID)}
	}
	if n.spans == nil {
		return spansReply{Off: true}, nil
	}
	recs, err := n.spans.Spans(req.TraceID)
	if err != nil {
		return nil, fmt.Errorf("spans of deployment %s: %w", req.Deployment, err)
	}
	out, omitted := boundSpans(recs)
	return spansReply{Spans: out, Omitted: omitted}, nil
}

// decodeSpansRequest reads and checks a spansRequest: a deployment name
// and a trace ID, else a bad-envelope error.
func decodeSpansRequest(m *actor.Message) (spansRequest, error) {
	var req spansRequest
	if err := m.Decode(&req); err != nil {
		return req, err
	}
	if err := deployproto.CheckName("deployment", req.Deployment); err != nil {
		return req, err
	}
	if !validTraceID(req.TraceID) {
		return req, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("spans: trace ID %q is not 32 lowercase hex digits", cut(req.TraceID, 40))}
	}
	return req, nil
}

// spanReaders returns the orchestrators that may read this node's spans
// of a deployment, and its traces: from the allocations it holds or held,
// and from the record it keeps as the deployment's standby (or former
// orchestrator).
func (n *Node) spanReaders(deployment string) (orchs []identity.DID, traces []string) {
	if n.allocs != nil {
		h := n.allocs.Held(deployment)
		orchs, traces = h.Orchestrators, h.Traces
	}
	if n.deploys != nil {
		if d, err := n.deploys.Get(deployment); err == nil && d.IsStandby() {
			orchs = append(orchs, d.Orchestrator.DID)
			if sc := parseTraceparent(d.Trace); sc.IsValid() {
				traces = append(traces, sc.TraceID().String())
			}
		}
	}
	return orchs, traces
}

// boundSpans keeps the oldest spans that fit maxSpansReply and
// maxSpansBytes and counts the others.
func boundSpans(recs []telemetry.SpanRecord) ([]telemetry.SpanRecord, int) {
	size := 0
	for i, r := range recs {
		b, err := json.Marshal(r)
		if err != nil || i >= maxSpansReply || size+len(b)+1 > maxSpansBytes {
			return recs[:i], len(recs) - i
		}
		size += len(b) + 1
	}
	return recs, 0
}

// validTraceID reports whether s is a W3C trace ID: 32 lowercase hex
// digits, not all zero.
func validTraceID(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == "" && strings.Trim(s, "0") != ""
}

// parseTraceparent reads a W3C traceparent (invalid when s is not one).
func parseTraceparent(s string) trace.SpanContext {
	sc, _ := actor.ParseTraceparent(s)
	return sc
}

// cut shortens s for a message.
func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// traceService implements apiserver.TraceService.
type traceService struct{ n *Node }

var _ apiserver.TraceService = traceService{}

// Trace gathers a deployment's trace: this node's spans and those of every
// other node of the deployment (its providers, the providers of replaced
// copies, its standbys), asked at once within gatherTimeout.
func (s traceService) Trace(ctx context.Context, id string) (*api.DeploymentTrace, error) {
	n := s.n
	d, err := n.deploys.Get(id)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return nil, &apiserver.NotFound{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if d.IsStandby() {
		return nil, &apiserver.BadRequest{Err: fmt.Errorf("this node is a standby orchestrator of deployment %s: ask its orchestrator's node %s", id, d.Orchestrator.Host)}
	}
	sc := parseTraceparent(d.Trace)
	switch {
	case !sc.IsValid():
		return nil, &apiserver.NotFound{Err: fmt.Errorf("deployment %s has no trace: it was submitted while tracing was off", id)}
	case !sc.IsSampled():
		return nil, &apiserver.NotFound{Err: fmt.Errorf("deployment %s has no trace: telemetry.sampling is %g: this deployment was not sampled", id, n.cfg.Config.Telemetry.Sampling)}
	}
	traceID := sc.TraceID().String()
	self := n.host.ID()
	hosts := traceHosts(d, self)

	out := &api.DeploymentTrace{Deployment: id, TraceID: traceID}
	results := make([]api.TraceNode, len(hosts))
	replies := make([][]telemetry.SpanRecord, len(hosts))
	gctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, host := range hosts {
		wg.Go(func() {
			var rep spansReply
			err := n.deploys.AskAs(gctx, id, host, deployproto.BehaviorSpans, spansRequest{Deployment: id, TraceID: traceID}, &rep)
			results[i] = api.TraceNode{Node: host}
			switch {
			case err != nil:
				results[i].Error = gatherError(err)
			case rep.Off:
				results[i].Error = "tracing is off on that node"
			default:
				replies[i] = rep.Spans
				results[i].Spans, results[i].Omitted = len(rep.Spans), rep.Omitted
			}
		})
	}
	local := api.TraceNode{Node: self}
	var all []telemetry.SpanRecord
	if n.spans == nil {
		local.Error = "tracing is off on this node"
	} else if recs, err := n.spans.Spans(traceID); err != nil {
		local.Error = err.Error()
	} else {
		all = append(all, recs...)
		local.Spans = len(recs)
	}
	wg.Wait()
	out.Nodes = append([]api.TraceNode{local}, results...)
	for _, r := range replies {
		all = append(all, r...)
	}
	out.Spans = apiSpans(all, traceID)
	return out, nil
}

// traceHosts lists the other nodes of a deployment: its providers (of the
// current copies and the replaced ones) and its standbys, sorted.
func traceHosts(d *orchestrator.Deployment, self string) []string {
	seen := map[string]bool{self: true, "": true}
	var out []string
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, a := range d.Allocations {
		add(a.Handle.Host)
		for _, c := range a.Replaced {
			add(c.Handle.Host)
		}
	}
	for _, p := range d.Placement {
		add(p.Provider.Host)
	}
	for _, s := range d.Standbys {
		add(s)
	}
	for _, e := range d.Events { // a former orchestrator (takeover)
		if e.Kind == orchestrator.EventTakeover {
			add(e.From)
		}
	}
	slices.Sort(out)
	return out
}

// gatherError says why a node gave no spans: unreachable (no answer in
// time, no route) or refused (its answer).
func gatherError(err error) string {
	var ae *actor.Error
	if errors.As(err, &ae) && ae.Code != actor.CodeTimeout && ae.Code != actor.CodeUnreachable && ae.Code != actor.CodeShuttingDown {
		return "refused: " + ae.Msg
	}
	return "unreachable: " + err.Error()
}

// apiSpans converts the records of the trace for the API: each span once
// (by span ID), oldest first; records of another trace are dropped.
func apiSpans(recs []telemetry.SpanRecord, traceID string) []api.Span {
	seen := map[string]bool{}
	out := make([]api.Span, 0, len(recs))
	for _, r := range recs {
		if r.TraceID != traceID || seen[r.SpanID] {
			continue
		}
		seen[r.SpanID] = true
		s := api.Span{TraceID: r.TraceID, SpanID: r.SpanID, ParentID: r.ParentID, Name: r.Name, Node: r.Node,
			Start: r.Start, End: r.End, Attrs: r.Attrs, Error: r.Error}
		for _, e := range r.Events {
			s.Events = append(s.Events, api.SpanEvent{Time: e.Time, Name: e.Name, Attrs: e.Attrs})
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b api.Span) int { return a.Start.Compare(b.Start) })
	return out
}
