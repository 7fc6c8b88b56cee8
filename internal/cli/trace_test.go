package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
)

// fakeTraces serves d1's trace (one node unreachable) and says d2 was not
// sampled.
type fakeTraces struct{}

func (fakeTraces) Trace(_ context.Context, id string) (*api.DeploymentTrace, error) {
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	tid := "0af7651916cd43dd8448eb211c80319c"
	switch id {
	case "d1":
		return &api.DeploymentTrace{Deployment: "d1", TraceID: tid, Spans: []api.Span{
			{TraceID: tid, SpanID: "0000000000000001", Name: "deployment", Node: "12D3KooWOrchestrator1", Start: t0, End: t0.Add(1500 * time.Millisecond)},
			{TraceID: tid, SpanID: "0000000000000002", ParentID: "0000000000000001", Name: "bid round", Node: "12D3KooWOrchestrator1", Start: t0.Add(time.Millisecond), End: t0.Add(301 * time.Millisecond), Attrs: map[string]string{"bids": "2"}},
			{TraceID: tid, SpanID: "0000000000000003", ParentID: "0000000000000001", Name: "start", Node: "12D3KooWOrchestrator1", Start: t0.Add(400 * time.Millisecond), End: t0.Add(410 * time.Millisecond)},
			{TraceID: tid, SpanID: "0000000000000004", ParentID: "0000000000000003", Name: "allocation", Node: "12D3KooWProviderAAAA1", Start: t0.Add(405 * time.Millisecond), End: t0.Add(3 * time.Second),
				Error: "exit code 3", Events: []api.SpanEvent{{Time: t0.Add(2 * time.Second), Name: "restart", Attrs: map[string]string{"restart": "1"}}}},
		}, Nodes: []api.TraceNode{{Node: "12D3KooWOrchestrator1", Spans: 3}, {Node: "12D3KooWProviderAAAA1", Spans: 1}, {Node: "12D3KooWProviderBBBB1", Error: "unreachable: no answer before the deadline"}}}, nil
	case "d2":
		return nil, &apiserver.NotFound{Err: errors.New("deployment d2 has no trace: telemetry.sampling is 0.1: this deployment was not sampled")}
	}
	return nil, &apiserver.NotFound{Err: errors.New("deployment " + id + ": not found")}
}

func TestDeploymentTrace(t *testing.T) {
	home := serveAPI(t, apiserver.Config{Traces: fakeTraces{}})
	code, out, stderr := run(t, "--home", home, "deployment", "trace", "d1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `trace 0af7651916cd43dd8448eb211c80319c of deployment d1: 4 spans from 2 of 3 nodes
deployment  [12D3…rator1]  1.5s  @+0s
├─ bid round  [12D3…rator1]  300ms  @+1ms  bids=2
└─ start  [12D3…rator1]  10ms  @+400ms
   └─ allocation  [12D3…rAAAA1]  2.6s  @+405ms  ERROR: exit code 3
         · restart  @+2s  restart=1
partial: node 12D3KooWProviderBBBB1 gave no spans: unreachable: no answer before the deadline
`
	if out != want {
		t.Errorf("deployment trace =\n%s\nwant\n%s", out, want)
	}

	code, out, stderr = run(t, "--home", home, "-o", "json", "deployment", "trace", "d1")
	var got api.DeploymentTrace
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Spans) != 4 || got.Nodes[2].Error == "" {
		t.Fatalf("-o json: exit %d, %s %s", code, out, stderr)
	}

	for _, tc := range []struct{ id, msg string }{
		{"d2", "telemetry.sampling is 0.1: this deployment was not sampled"},
		{"nope", "deployment nope: not found"},
	} {
		code, out, stderr = run(t, "--home", home, "deployment", "trace", tc.id)
		if code != 1 || out != "" || !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("trace %s: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", tc.id, code, out, stderr, tc.msg)
		}
	}
}
