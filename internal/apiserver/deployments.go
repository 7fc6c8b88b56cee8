package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/storage"
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
		// The body holds secrets: it is never logged, and errors name a
		// secret, never its value.
		if err := checkSecrets(req); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
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
		after, wait, err := pollQuery(r.URL.Query(), "a version number")
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
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
	s.handle("GET /api/v1/deployments/{id}/events", s.handleEvents)
	s.routeResolve()
}

// pollQuery reads the after and wait parameters of a long poll; after is
// described as what.
func pollQuery(q url.Values, what string) (after uint64, wait time.Duration, err error) {
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("after: not %s", what)
		}
		after = n
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, 0, errors.New("wait: not a duration (e.g. 30s)")
		}
		wait = min(d, maxWait)
	}
	return after, wait, nil
}

// handleEvents serves GET /api/v1/deployments/{id}/events: the events of
// the timeline after the sequence number after. With wait it long-polls
// through DeploymentService.Get, from version to version, and answers at
// the first such event, when the deployment has ended, or when wait
// passes.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if !s.deploymentsReady(w) {
		return
	}
	after, wait, err := pollQuery(r.URL.Query(), "an event sequence number")
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	ctx, id := r.Context(), r.PathValue("id")
	deadline := time.Now().Add(wait)
	d, err := s.cfg.Deployments.Get(ctx, id, 0, 0)
	for err == nil && !eventsReady(d, after) {
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			break
		}
		prev := d.Version
		d, err = s.cfg.Deployments.Get(ctx, id, prev, remaining)
		if err == nil && d.Version <= prev {
			break // wait passed with no change
		}
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	out := api.DeploymentEvents{ID: d.ID, Events: []api.DeploymentEvent{}, Next: after, State: d.State, Ended: d.Terminal()}
	for _, e := range d.Events {
		if e.Seq > after {
			out.Events = append(out.Events, e)
			out.Next = max(out.Next, e.Seq)
		}
	}
	writeJSON(w, out)
}

// eventsReady reports whether an events poll can answer: d has an event
// after after, or has ended.
func eventsReady(d *api.Deployment, after uint64) bool {
	return d.Terminal() || len(d.Events) > 0 && d.Events[len(d.Events)-1].Seq > after
}

func (s *Server) deploymentsReady(w http.ResponseWriter) bool {
	if s.cfg.Deployments == nil {
		unavailable(w, "deployments")
		return false
	}
	return true
}

// checkSecrets checks the secrets of a deploy request: each a credentials
// file under a valid name, and, when the ensemble parses (the service
// reports it otherwise), exactly the secrets it names. A request without
// secrets is left to the service, which reports those missing the same
// way (and the ensemble is parsed once).
func checkSecrets(req api.DeployRequest) error {
	if len(req.Secrets) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(req.Secrets))
	for _, name := range names {
		if !ensemble.IsName(name) {
			return fmt.Errorf("secrets: %q is not a secret name (lower-case letters, digits and '-')", clip(name))
		}
		if _, err := storage.ParseCredentials([]byte(req.Secrets[name])); err != nil {
			return fmt.Errorf("secret %s: %w", name, err)
		}
	}
	spec, err := ensemble.Parse([]byte(req.Ensemble))
	if err != nil {
		return nil
	}
	return spec.CheckSecrets(names)
}

// clip shortens a client's value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
