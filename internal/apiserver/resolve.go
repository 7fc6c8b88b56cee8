package apiserver

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/dmsnet/dms/api"
)

// Resolver is an optional interface of a DeploymentService: it turns
// unique prefixes into full deployment IDs and allocation names. When the
// service has it, every endpoint whose path holds deploymentPath resolves
// the {id} path value, an {alloc} or {allocation} path value and the
// allocation query parameter before its handler runs, so handlers (and the CLI commands
// on top of them) see full names only.
type Resolver interface {
	// Resolve returns the deployment ID prefix designates.
	Resolve(ctx context.Context, prefix string) (string, error)
	// ResolveAllocation returns the name of deployment id's allocation
	// that prefix designates.
	ResolveAllocation(ctx context.Context, id, prefix string) (string, error)
}

// deploymentPath marks the routes whose {id} is a deployment ID.
const deploymentPath = "/api/v1/deployments/{id}"

// Ambiguous marks an error as a prefix matching several things (400, code
// ambiguous); Candidates are sent with it.
type Ambiguous struct {
	Err        error
	Candidates []string
}

func (e *Ambiguous) Error() string { return e.Err.Error() }
func (e *Ambiguous) Unwrap() error { return e.Err }

func writeAmbiguous(w http.ResponseWriter, e *Ambiguous) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(api.ErrorResponse{Error: api.ErrorBody{Code: api.CodeAmbiguous, Message: e.Error(), Candidates: e.Candidates}})
}

// resolving wraps a handler of a deploymentPath route: it resolves the
// deployment ID and allocation prefixes of the request in place.
func (s *Server) resolving(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, ok := s.cfg.Deployments.(Resolver)
		if !ok {
			h(w, r)
			return
		}
		id, err := res.Resolve(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, err)
			return
		}
		r.SetPathValue("id", id)
		for _, key := range []string{"alloc", "allocation"} {
			p := r.PathValue(key)
			if p == "" {
				continue
			}
			name, err := res.ResolveAllocation(r.Context(), id, p)
			if err != nil {
				s.fail(w, err)
				return
			}
			r.SetPathValue(key, name)
		}
		q := r.URL.Query()
		if p := q.Get("allocation"); p != "" {
			name, err := res.ResolveAllocation(r.Context(), id, p)
			if err != nil {
				s.fail(w, err)
				return
			}
			q.Set("allocation", name)
			r.URL.RawQuery = q.Encode()
		}
		h(w, r)
	}
}

// routeResolve serves GET /api/v1/deployments/{id}/resolve: the full ID
// and allocation name, resolved by the wrapper every such route has.
func (s *Server) routeResolve() {
	s.handle("GET "+deploymentPath+"/resolve", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		if _, ok := s.cfg.Deployments.(Resolver); !ok {
			unavailable(w, "prefix resolution")
			return
		}
		writeJSON(w, api.Resolved{ID: r.PathValue("id"), Allocation: r.URL.Query().Get("allocation")})
	})
}
