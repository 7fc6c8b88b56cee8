package apiserver

import (
	"context"
	"net/http"

	"github.com/dmsnet/dms/api"
)

// TraceService gathers the traces of the deployments this node
// orchestrates (dms deployment trace).
type TraceService interface {
	// Trace returns a deployment's trace. A deployment that is unknown,
	// untraced or not sampled is a *NotFound saying which.
	Trace(ctx context.Context, id string) (*api.DeploymentTrace, error)
}

func (s *Server) routesTraces() {
	s.handle("GET /api/v1/deployments/{id}/trace", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Traces == nil {
			unavailable(w, "tracing")
			return
		}
		t, err := s.cfg.Traces.Trace(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, err)
			return
		}
		if t.Spans == nil {
			t.Spans = []api.Span{}
		}
		if t.Nodes == nil {
			t.Nodes = []api.TraceNode{}
		}
		writeJSON(w, t)
	})
}
