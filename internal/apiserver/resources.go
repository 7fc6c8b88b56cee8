package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/dmsnet/dms/api"
)

// ResourceService is the node's resource accounting: what the machine has,
// what its owner onboarded, and the machine benchmark. Errors that are the
// caller's input are *BadRequest, refusals by the node's state *Refused.
type ResourceService interface {
	Snapshot(ctx context.Context) (api.ResourceSnapshot, error)
	Onboard(ctx context.Context, req api.OnboardRequest) (api.OnboardResult, error)
	Offboard(ctx context.Context) (api.OffboardResult, error)
	Benchmark(ctx context.Context, req api.BenchmarkRequest) (api.BenchmarkResult, error)
}

// Refused marks an error as a refusal by the node's current state (409,
// api.CodeRefused): more than the machine has, below what is allocated,
// allocations still running, not onboarded.
type Refused struct{ Err error }

func (e *Refused) Error() string { return e.Err.Error() }
func (e *Refused) Unwrap() error { return e.Err }

// routesResources registers the onboarding and resources endpoints.
func (s *Server) routesResources() {
	s.handle("GET /api/v1/resources", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Resources == nil {
			unavailable(w, "resource accounting")
			return
		}
		snap, err := s.cfg.Resources.Snapshot(r.Context())
		if err != nil {
			s.fail(w, err)
			return
		}
		snap.Ledger = s.ledgerOf(r.Context())
		writeJSON(w, snap)
	})
	s.handle("POST /api/v1/onboard", func(w http.ResponseWriter, r *http.Request) {
		var req api.OnboardRequest
		if !decode(w, r, &req) {
			return
		}
		if s.cfg.Resources == nil {
			unavailable(w, "resource accounting")
			return
		}
		res, err := s.cfg.Resources.Onboard(r.Context(), req)
		if err != nil {
			s.failResources(w, err)
			return
		}
		writeJSON(w, res)
	})
	s.handle("POST /api/v1/offboard", func(w http.ResponseWriter, r *http.Request) {
		if !decodeOptional(w, r, &struct{}{}) {
			return
		}
		if s.cfg.Resources == nil {
			unavailable(w, "resource accounting")
			return
		}
		res, err := s.cfg.Resources.Offboard(r.Context())
		if err != nil {
			s.failResources(w, err)
			return
		}
		writeJSON(w, res)
	})
	s.handle("POST /api/v1/benchmark", func(w http.ResponseWriter, r *http.Request) {
		var req api.BenchmarkRequest
		if !decodeOptional(w, r, &req) {
			return
		}
		if s.cfg.Resources == nil {
			unavailable(w, "resource accounting")
			return
		}
		if req.BudgetMS != 0 && (req.BudgetMS < 1000 || req.BudgetMS > 60000) {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("budget_ms %d: want 1000 to 60000, or 0 for the node's default", req.BudgetMS))
			return
		}
		res, err := s.cfg.Resources.Benchmark(r.Context(), req)
		if err != nil {
			s.failResources(w, err)
			return
		}
		writeJSON(w, res)
	})
}

// decodeOptional is decode for endpoints whose body may be empty.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	return decode(w, r, v)
}

// failResources answers a refusal with 409, and everything else as fail.
func (s *Server) failResources(w http.ResponseWriter, err error) {
	var rf *Refused
	if errors.As(err, &rf) {
		writeError(w, http.StatusConflict, api.CodeRefused, rf.Error())
		return
	}
	s.fail(w, err)
}
