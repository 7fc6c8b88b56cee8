package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/telemetry"
)

// traced starts a node's tracing (the real one: every deployment sampled,
// spans kept in its store, no collector), as Run would.
func traced(t *testing.T) func(n *Node) {
	return func(n *Node) {
		stop, err := n.startTracing()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop() })
	}
}

// TestTraceGathering: a deployment orchestrated by one node on two
// providers (three real nodes over libp2p, with UCAN) yields one trace
// that the orchestrator's node gathers from all three; a node that is not
// the deployment's orchestrator is refused the spans.
func TestTraceGathering(t *testing.T) {
	user := mustKey(t)
	orch := newOrchNodeWith(t, user, 0, match.Price{}, traced(t))
	provs := []*Node{newOrchNodeWith(t, user, 2000, match.Price{}, traced(t)), newOrchNodeWith(t, user, 2000, match.Price{}, traced(t))}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, p := range provs {
		if _, err := orch.host.Connect(ctx, p.host.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	d := deployFrom(t, orch, user, `version: v1
allocations:
  a:
    type: service
    executor: docker
    resources: {cpu: 1.5, ram: 64MiB}
    execution: {image: workload, cmd: [workload, sleep=1h]}
  b:
    type: service
    executor: docker
    resources: {cpu: 1.5, ram: 64MiB}
    execution: {image: workload, cmd: [workload, sleep=1h]}
`)
	d = waitDeployment(t, orch, d.ID, "running", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Running })
	if d.Allocations["a"].Handle.Host == d.Allocations["b"].Handle.Host {
		t.Fatalf("both allocations on %s: want one per provider", d.Allocations["a"].Handle.Host)
	}
	if _, err := orch.deploys.Shutdown(t.Context(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, orch, d.ID, "stopped", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Stopped })

	// The providers' "allocation" spans end with the stop.
	var tr *api.DeploymentTrace
	err := poll.Until(t.Context(), 20*time.Second, "spans from the three nodes", func(ctx context.Context) (bool, error) {
		var err error
		tr, err = traceService{orch}.Trace(ctx, d.ID)
		if err != nil {
			return false, err
		}
		nodes := map[string]bool{}
		for _, s := range tr.Spans {
			if s.Name == allocation.SpanAllocation {
				nodes[s.Node] = true
			}
		}
		return len(nodes) == 2, nil
	})
	if err != nil {
		t.Fatalf("%v: %+v", err, tr)
	}
	if len(tr.Nodes) != 3 {
		t.Fatalf("nodes asked %+v, want the orchestrator's and two providers", tr.Nodes)
	}
	for _, n := range tr.Nodes {
		if n.Error != "" || n.Spans == 0 {
			t.Errorf("node %s: %d spans, error %q", n.Node, n.Spans, n.Error)
		}
	}
	recorders := map[string]bool{}
	for _, s := range tr.Spans {
		if s.TraceID != tr.TraceID {
			t.Errorf("span %s in trace %s, want %s", s.Name, s.TraceID, tr.TraceID)
		}
		recorders[s.Node] = true
	}
	if len(recorders) != 3 {
		t.Errorf("spans recorded by %d nodes, want 3", len(recorders))
	}
	var names []string
	for _, s := range tr.Spans {
		names = append(names, s.Name)
	}
	for _, want := range []string{orchestrator.SpanDeployment, orchestrator.SpanBidRound, orchestrator.SpanCommit, orchestrator.SpanStart,
		orchestrator.SpanShutdown, allocation.SpanAllocation, allocation.SpanStart} {
		if !slices.Contains(names, want) {
			t.Errorf("no span %q among %v", want, names)
		}
	}
	// The tree has one root and no orphan.
	var recs []telemetry.SpanRecord
	for _, s := range tr.Spans {
		rec := telemetry.SpanRecord{SpanID: s.SpanID, ParentID: s.ParentID, Name: s.Name, Node: s.Node, Start: s.Start, End: s.End, Attrs: s.Attrs, Error: s.Error}
		for _, e := range s.Events {
			rec.Events = append(rec.Events, telemetry.SpanEvent{Time: e.Time, Name: e.Name, Attrs: e.Attrs})
		}
		recs = append(recs, rec)
	}
	roots := telemetry.Tree(recs)
	var tree strings.Builder
	if err := telemetry.Render(&tree, roots); err != nil {
		t.Fatal(err)
	}
	t.Logf("the trace:\n%s", tree.String())
	if len(roots) != 1 || roots[0].Span.Name != orchestrator.SpanDeployment {
		t.Fatalf("%d roots, want the deployment span", len(roots))
	}
	var orphans func(ns []*telemetry.Node) int
	orphans = func(ns []*telemetry.Node) (c int) {
		for _, n := range ns {
			if n.Orphan {
				c++
			}
			c += orphans(n.Children)
		}
		return c
	}
	if c := orphans(roots); c != 0 {
		t.Errorf("%d orphan spans", c)
	}

	// A provider cut off: the trace is the rest, and says which node is
	// missing and why.
	cut := provs[1].host.ID()
	if err := orch.host.Block(cut); err != nil {
		t.Fatal(err)
	}
	part, err := traceService{orch}.Trace(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range part.Nodes {
		switch {
		case n.Node == cut && (n.Spans != 0 || !strings.HasPrefix(n.Error, "unreachable: ")):
			t.Errorf("the cut-off node: %d spans, error %q, want unreachable", n.Spans, n.Error)
		case n.Node != cut && n.Error != "":
			t.Errorf("node %s: %q", n.Node, n.Error)
		}
	}
	if len(part.Spans) == 0 || len(part.Spans) >= len(tr.Spans) {
		t.Errorf("%d spans without the cut-off node, %d with it", len(part.Spans), len(tr.Spans))
	}

	// Another node's actor is refused: only the orchestrator reads spans.
	prov := provs[0]
	other := mustKey(t)
	payload, _ := json.Marshal(spansRequest{Deployment: d.ID, TraceID: tr.TraceID})
	_, err = prov.answerSpans(t.Context(), &actor.Message{From: actor.Handle{DID: other.DID(), Host: orch.host.ID(), Inbox: "x"}, Payload: payload})
	var ae *actor.Error
	if !errors.As(err, &ae) || ae.Code != actor.CodeDenied || !strings.Contains(ae.Msg, "only its orchestrator") {
		t.Fatalf("a stranger's request: %v, want denied", err)
	}
	_, err = prov.answerSpans(t.Context(), &actor.Message{From: d.Orchestrator, Payload: []byte(`{"deployment":"` + d.ID + `","trace_id":"` + strings.Repeat("1", 32) + `"}`)})
	if !errors.As(err, &ae) || ae.Code != actor.CodeDenied {
		t.Fatalf("another trace: %v, want denied", err)
	}
}

func TestAnswerSpansChecks(t *testing.T) {
	user := mustKey(t)
	n := newOrchNodeWith(t, user, 0, match.Price{}, traced(t))
	orchDID := mustKey(t).DID()
	for _, tc := range []struct {
		name    string
		payload string
		code    actor.Code
	}{
		{"not json", `{`, actor.CodeBadEnvelope},
		{"no deployment", `{"trace_id":"` + strings.Repeat("a", 32) + `"}`, actor.CodeBadEnvelope},
		{"short trace", `{"deployment":"dx","trace_id":"abc"}`, actor.CodeBadEnvelope},
		{"upper-case trace", `{"deployment":"dx","trace_id":"` + strings.Repeat("A", 32) + `"}`, actor.CodeBadEnvelope},
		{"zero trace", `{"deployment":"dx","trace_id":"` + strings.Repeat("0", 32) + `"}`, actor.CodeBadEnvelope},
		{"deployment not held", `{"deployment":"dx","trace_id":"` + strings.Repeat("a", 32) + `"}`, actor.CodeDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.answerSpans(t.Context(), &actor.Message{From: actor.Handle{DID: orchDID}, Payload: []byte(tc.payload)})
			var ae *actor.Error
			if !errors.As(err, &ae) || ae.Code != tc.code {
				t.Fatalf("answerSpans(%s) = %v, want code %s", tc.payload, err, tc.code)
			}
		})
	}
}

func TestTraceErrors(t *testing.T) {
	user := mustKey(t)
	// Tracing off (the node's default no-op tracer): no trace kept.
	n := newOrchNode(t, user, 2000, match.Price{})
	d := deployFrom(t, n, user, `version: v1
allocations:
  a:
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution: {image: workload, cmd: [workload, exit=0]}
`)
	_, err := traceService{n}.Trace(t.Context(), d.ID)
	var nf *apiserver.NotFound
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "tracing was off") {
		t.Fatalf("untraced deployment: %v, want not found: tracing was off", err)
	}
	_, err = traceService{n}.Trace(t.Context(), "dnothere")
	if !errors.As(err, &nf) {
		t.Fatalf("unknown deployment: %v, want not found", err)
	}
	// Not sampled: the message names telemetry.sampling.
	m := newOrchNodeWith(t, user, 2000, match.Price{}, func(n *Node) {
		n.cfg.Config.Telemetry.Sampling = 0
		traced(t)(n)
	})
	d = deployFrom(t, m, user, `version: v1
allocations:
  a:
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution: {image: workload, cmd: [workload, exit=0]}
`)
	_, err = traceService{m}.Trace(t.Context(), d.ID)
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "telemetry.sampling is 0: this deployment was not sampled") {
		t.Fatalf("unsampled deployment: %v", err)
	}
}

func TestBoundSpans(t *testing.T) {
	rec := telemetry.SpanRecord{TraceID: strings.Repeat("a", 32), SpanID: strings.Repeat("b", 16), Name: strings.Repeat("n", 1000)}
	for _, tc := range []struct {
		n, kept int
	}{
		{0, 0}, {10, 10}, {maxSpansReply + 5, 0},
	} {
		recs := make([]telemetry.SpanRecord, tc.n)
		for i := range recs {
			recs[i] = rec
		}
		out, omitted := boundSpans(recs)
		b, _ := json.Marshal(spansReply{Spans: out})
		if len(out)+omitted != tc.n || len(b) > maxSpansBytes+64 || (tc.kept > 0 && len(out) != tc.kept) {
			t.Errorf("boundSpans(%d spans) kept %d, omitted %d, %d bytes", tc.n, len(out), omitted, len(b))
		}
	}
}

// FuzzDecodeSpansRequest: whatever a peer sends, the request is refused
// with a bad-envelope error or names a deployment and a valid trace ID.
func FuzzDecodeSpansRequest(f *testing.F) {
	f.Add([]byte(`{"deployment":"dabc","trace_id":"0af7651916cd43dd8448eb211c80319c"}`))
	f.Add([]byte(`{"deployment":"","trace_id":""}`))
	f.Add([]byte(`{"deployment":"d","trace_id":"00000000000000000000000000000000"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := decodeSpansRequest(&actor.Message{Behavior: deployproto.BehaviorSpans, Payload: payload})
		if err != nil {
			var ae *actor.Error
			if !errors.As(err, &ae) || ae.Code != actor.CodeBadEnvelope {
				t.Fatalf("refused with %v, want a bad-envelope error", err)
			}
			return
		}
		if !validTraceID(req.TraceID) || deployproto.CheckName("deployment", req.Deployment) != nil {
			t.Fatalf("accepted %+v", req)
		}
	})
}
