package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dmsnet/dms/api"
)

// fakePlans refuses an ensemble "bad", places anything else.
type fakePlans struct{ got api.PlanRequest }

func (f *fakePlans) Plan(_ context.Context, req api.PlanRequest) (*api.Plan, error) {
	if req.Ensemble == "bad" {
		return nil, &BadRequest{Err: errors.New("version: missing")}
	}
	f.got = req
	return &api.Plan{ID: "p1", Placement: []api.DeploymentNode{{Node: "job", Provider: "12D3KooWX"}}}, nil
}

func (f *fakePlans) Providers(context.Context) []api.Provider { return nil }

func TestPlanEndpoints(t *testing.T) {
	fake := &fakePlans{}
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Plans: fake})
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := newServer(t)
	const lo = "127.0.0.1:5000"
	tests := []struct {
		name, method, path, body string
		server                   *Server
		wantStatus               int
		wantBody                 string
	}{
		{"plan", "POST", "/api/v1/plan", `{"ensemble": "version: v1", "chains": ["c"]}`, s, 200, `"provider": "12D3KooWX"`},
		{"plan refused", "POST", "/api/v1/plan", `{"ensemble": "bad", "chains": []}`, s, 400, api.CodeBadRequest},
		{"plan unknown field", "POST", "/api/v1/plan", `{"spec": "x"}`, s, 400, api.CodeBadRequest},
		{"providers, none known: an empty list", "GET", "/api/v1/providers", "", s, 200, "[]"},
		{"plan not wired", "POST", "/api/v1/plan", `{}`, bare, http.StatusServiceUnavailable, api.CodeUnavailable},
		{"providers not wired", "GET", "/api/v1/providers", "", bare, http.StatusServiceUnavailable, api.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(tt.server, tt.method, tt.path, tt.body, lo, token)
			if w.Code != tt.wantStatus || !json.Valid(w.Body.Bytes()) || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("%s %s = %d %s, want %d with %s", tt.method, tt.path, w.Code, w.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if fake.got.Ensemble != "version: v1" || len(fake.got.Chains) != 1 {
		t.Fatalf("the service got %+v", fake.got)
	}
}
