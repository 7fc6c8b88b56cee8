package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/dmsnet/dms/api"
)

// DeploymentService runs the deployments this node orchestrates.
type DeploymentService interface {
	Submit(ctx context.Context, req api.DeployRequest) (*api.Deployment, error)
	List(ctx context.Context) []api.Deployment
	// Get returns a deployment; with wait > 0 it waits until its version
	// exceeds after, or wait passes.
	Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error)
	Shutdown(ctx context.Context, id string) (*api.Deployment, error)
	Logs(ctx context.Context, id, alloc string, follow bool, f api.LogFilter, emit func(api.LogLine)) error
}

// maxWait bounds a long poll.
const maxWait = 60 * time.Second

func (s *Server) routesDeployments() {
	s.handle("POST /api/v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		var req api.DeployRequest
		if !decode(w, r, &req) || !s.deploymentsReady(w) {
			return
		}
		d, err := s.cfg.Deployments.Submit(r.Context(), req)
		if err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("Location", "/api/v1/deployments/"+d.ID)
		writeJSON(w, d)
	})
	s.handle("GET /api/v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		ds := s.cfg.Deployments.List(r.Context())
		if ds == nil {
			ds = []api.Deployment{}
		}
		writeJSON(w, ds)
	})
	s.handle("GET /api/v1/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		var after uint64
		var wait time.Duration
		q := r.URL.Query()
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, api.CodeBadRequest, "after: not a version number")
				return
			}
			after = n
		}
		if v := q.Get("wait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				writeError(w, http.StatusBadRequest, api.CodeBadRequest, "wait: not a duration (e.g. 30s)")
				return
			}
			wait = min(d, maxWait)
		}
		d, err := s.cfg.Deployments.Get(r.Context(), r.PathValue("id"), after, wait)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, d)
	})
	s.handle("POST /api/v1/deployments/{id}/shutdown", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		d, err := s.cfg.Deployments.Shutdown(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, d)
	})
	s.handle("GET /api/v1/deployments/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		q := r.URL.Query()
		follow, _ := strconv.ParseBool(q.Get("follow"))
		id, alloc := r.PathValue("id"), q.Get("allocation")
		filter, err := logFilter(q)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
		// Check the deployment exists before the stream starts, so that an
		// unknown ID gets a proper 404.
		if _, err := s.cfg.Deployments.Get(r.Context(), id, 0, 0); err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flusher, _ := w.(http.Flusher)
		enc := json.NewEncoder(w)
		if flusher != nil {
			flusher.Flush()
		}
		err = s.cfg.Deployments.Logs(r.Context(), id, alloc, follow, filter, func(l api.LogLine) {
			enc.Encode(l)
			if flusher != nil {
				flusher.Flush()
			}
		})
		if err != nil && r.Context().Err() == nil {
			// The status is sent: report the failure in the stream.
			enc.Encode(api.LogLine{Stream: "error", Data: err.Error()})
		}
	})
	s.routeResolve()
}

func (s *Server) deploymentsReady(w http.ResponseWriter) bool {
	if s.cfg.Deployments == nil {
		unavailable(w, "deployments")
		return false
	}
	return true
}
