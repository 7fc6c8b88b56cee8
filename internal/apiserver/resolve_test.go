package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// fakeDeployments is a DeploymentService with Resolver over fixed
// deployments, each with allocations "web" and "worker"; it records the
// IDs and allocation names its methods receive.
type fakeDeployments struct {
	ids []string
	got []string
}

func match(what, prefix string, names []string) (string, error) {
	var m []string
	for _, n := range names {
		if n == prefix {
			return n, nil
		}
		if strings.HasPrefix(n, prefix) {
			m = append(m, n)
		}
	}
	switch len(m) {
	case 0:
		return "", &NotFound{Err: fmt.Errorf("%s %s: not found", what, prefix)}
	case 1:
		return m[0], nil
	}
	return "", &Ambiguous{Err: fmt.Errorf("%s prefix %q is ambiguous", what, prefix), Candidates: m}
}

func (f *fakeDeployments) Resolve(_ context.Context, prefix string) (string, error) {
	return match("deployment", prefix, f.ids)
}

func (f *fakeDeployments) ResolveAllocation(_ context.Context, id, prefix string) (string, error) {
	return match("allocation", prefix, []string{"web", "worker"})
}

func (f *fakeDeployments) Submit(context.Context, api.DeployRequest) (*api.Deployment, error) {
	return nil, errors.New("not here")
}
func (f *fakeDeployments) List(context.Context) []api.Deployment { return nil }
func (f *fakeDeployments) Get(_ context.Context, id string, _ uint64, _ time.Duration) (*api.Deployment, error) {
	f.got = append(f.got, "get "+id)
	return &api.Deployment{ID: id}, nil
}
func (f *fakeDeployments) Shutdown(_ context.Context, id string) (*api.Deployment, error) {
	f.got = append(f.got, "shutdown "+id)
	return &api.Deployment{ID: id}, nil
}
func (f *fakeDeployments) Logs(_ context.Context, id, alloc string, _ bool, _ api.LogFilter, emit func(api.LogLine)) error {
	f.got = append(f.got, "logs "+id+" "+alloc)
	emit(api.LogLine{Allocation: alloc, Stream: "stdout", Data: "hi\n"})
	return nil
}

func TestResolvePrefixes(t *testing.T) {
	deps := &fakeDeployments{ids: []string{"dabcdefghijkl", "dabcxyzxyzxyz", "dqrstuvwxyz23"}}
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: deps})
	if err != nil {
		t.Fatal(err)
	}
	// A route added later (an exec) gets its {id} and {alloc} resolved too.
	s.handle("GET /api/v1/deployments/{id}/allocations/{alloc}/probe", func(w http.ResponseWriter, r *http.Request) {
		deps.got = append(deps.got, "probe "+r.PathValue("id")+" "+r.PathValue("alloc"))
	})
	tests := []struct {
		name, method, path string
		status             int
		code               string // error code, or the recorded call
	}{
		{"get by prefix", "GET", "/api/v1/deployments/dqrs", 200, "get dqrstuvwxyz23"},
		{"get exact", "GET", "/api/v1/deployments/dabcdefghijkl", 200, "get dabcdefghijkl"},
		{"shutdown by prefix", "POST", "/api/v1/deployments/dabcd/shutdown", 200, "shutdown dabcdefghijkl"},
		{"logs by prefixes", "GET", "/api/v1/deployments/dqr/logs?allocation=wo", 200, "logs dqrstuvwxyz23 worker"},
		{"new route by prefixes", "GET", "/api/v1/deployments/dabcd/allocations/we/probe", 200, "probe dabcdefghijkl web"},
		{"new route, ambiguous allocation", "GET", "/api/v1/deployments/dabcd/allocations/w/probe", 400, api.CodeAmbiguous},
		{"ambiguous id", "GET", "/api/v1/deployments/dabc", 400, api.CodeAmbiguous},
		{"ambiguous id on logs", "GET", "/api/v1/deployments/dabc/logs", 400, api.CodeAmbiguous},
		{"ambiguous allocation", "GET", "/api/v1/deployments/dqr/logs?allocation=w", 400, api.CodeAmbiguous},
		{"unknown id", "POST", "/api/v1/deployments/dzz/shutdown", 404, api.CodeNotFound},
		{"unknown allocation", "GET", "/api/v1/deployments/dqr/resolve?allocation=db", 404, api.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps.got = nil
			w := do(s, tt.method, tt.path, "", "127.0.0.1:5000", token)
			if w.Code != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.status)
			}
			if tt.status == 200 {
				if len(deps.got) == 0 || deps.got[len(deps.got)-1] != tt.code {
					t.Fatalf("%s %s called %q, want %q", tt.method, tt.path, deps.got, tt.code)
				}
				return
			}
			if len(deps.got) != 0 {
				t.Fatalf("%s %s reached the handler (%q) despite the error", tt.method, tt.path, deps.got)
			}
			if !strings.Contains(w.Body.String(), `"code":"`+tt.code+`"`) {
				t.Fatalf("%s %s body = %s, want code %s", tt.method, tt.path, w.Body, tt.code)
			}
		})
	}

	// Through the client: Resolve, and the candidates of an ambiguity.
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	c, _ := api.NewClient(api.ClientConfig{Addr: addr.String(), Token: token})
	r, err := c.Resolve(ctx, "dqrs", "we")
	if err != nil || r.ID != "dqrstuvwxyz23" || r.Allocation != "web" {
		t.Fatalf("Resolve(dqrs, we) = %+v, %v", r, err)
	}
	r, err = c.Resolve(ctx, "dabcd", "")
	if err != nil || r.ID != "dabcdefghijkl" || r.Allocation != "" {
		t.Fatalf("Resolve(dabcd) = %+v, %v", r, err)
	}
	_, err = c.Resolve(ctx, "dabc", "")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeAmbiguous || ae.Status != 400 || strings.Join(ae.Candidates, ",") != "dabcdefghijkl,dabcxyzxyzxyz" {
		t.Fatalf("Resolve(dabc) = %#v, want ambiguous with both candidates", err)
	}
	if _, err := c.Resolve(ctx, url.PathEscape("d/x"), ""); err == nil {
		t.Fatal("Resolve(d/x) succeeded")
	}
}
