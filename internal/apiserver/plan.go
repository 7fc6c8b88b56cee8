package apiserver

import (
	"context"
	"net/http"

	"github.com/dmsnet/dms/api"
)

// PlanService runs dry-run bid rounds (dms plan) and lists the providers
// the node knows from its rounds (dms nodes).
type PlanService interface {
	Plan(ctx context.Context, req api.PlanRequest) (*api.Plan, error)
	Providers(ctx context.Context) []api.Provider
}

func (s *Server) routesPlan() {
	s.handle("POST /api/v1/plan", func(w http.ResponseWriter, r *http.Request) {
		var req api.PlanRequest
		if !decode(w, r, &req) || !s.plansReady(w) {
			return
		}
		p, err := s.cfg.Plans.Plan(r.Context(), req)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, p)
	})
	s.handle("GET /api/v1/providers", func(w http.ResponseWriter, r *http.Request) {
		if !s.plansReady(w) {
			return
		}
		ps := s.cfg.Plans.Providers(r.Context())
		if ps == nil {
			ps = []api.Provider{}
		}
		writeJSON(w, ps)
	})
}

func (s *Server) plansReady(w http.ResponseWriter) bool {
	if s.cfg.Plans == nil {
		unavailable(w, "plans")
		return false
	}
	return true
}
