package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// fakeTraces knows deployment d1 (traced) and d2 (not sampled).
type fakeTraces struct{}

func (fakeTraces) Trace(_ context.Context, id string) (*api.DeploymentTrace, error) {
	switch id {
	case "d1":
		t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
		return &api.DeploymentTrace{Deployment: "d1", TraceID: "0af7651916cd43dd8448eb211c80319c",
			Spans: []api.Span{{TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Name: "deployment", Node: "12D3KooWA", Start: t0, End: t0.Add(time.Second)}},
			Nodes: []api.TraceNode{{Node: "12D3KooWA", Spans: 1}, {Node: "12D3KooWB", Error: "unreachable: timeout"}}}, nil
	case "d2":
		return nil, &NotFound{Err: errors.New("deployment d2 has no trace: telemetry.sampling is 0.1: this deployment was not sampled")}
	}
	return nil, &NotFound{Err: errors.New("deployment " + id + ": not found")}
}

func TestTraceRoute(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Traces: fakeTraces{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{"traced", "/api/v1/deployments/d1/trace", 200, ""},
		{"not sampled", "/api/v1/deployments/d2/trace", 404, "deployment d2 has no trace: telemetry.sampling is 0.1: this deployment was not sampled"},
		{"unknown", "/api/v1/deployments/nope/trace", 404, "deployment nope: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s, "GET", tc.path, "", "127.0.0.1:5000", token)
			if w.Code != tc.status {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, w.Code, w.Body, tc.status)
			}
			if tc.status != http.StatusOK {
				var body api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != api.CodeNotFound || body.Error.Message != tc.msg {
					t.Fatalf("GET %s body = %s, want %s: %s", tc.path, w.Body, api.CodeNotFound, tc.msg)
				}
				return
			}
			var got api.DeploymentTrace
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Spans) != 1 || got.Spans[0].Name != "deployment" || len(got.Nodes) != 2 || got.Nodes[1].Error != "unreachable: timeout" {
				t.Fatalf("GET %s = %+v", tc.path, got)
			}
		})
	}
	t.Run("no trace service", func(t *testing.T) {
		s, err := New(Config{Addr: "127.0.0.1:0", Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if w := do(s, "GET", "/api/v1/deployments/d1/trace", "", "127.0.0.1:5000", token); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("without a trace service: %d %s", w.Code, w.Body)
		}
	})
}
