package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/ensemble"
)

// UserKeyService signs with the home's user key the delegations of
// /dms/deployment and /dms/allocation to this node that `dms deploy` signs,
// valid ttl. A wrong passphrase is a *BadRequest.
type UserKeyService interface {
	DeployChains(ctx context.Context, passphrase []byte, ttl time.Duration) ([]string, error)
}

// dashboardGrantTTL is how long a deploy from the dashboard lets the node
// act for the user (dms deploy's --grant-ttl default).
const dashboardGrantTTL = 30 * 24 * time.Hour

// indexStates are the states the index counts, in their order.
var indexStates = []string{"queued", "bidding", "committing", "provisioning", "running", "shutting-down", "completed", "failed", "stopped"}

func (s *Server) routesDashboard() {
	s.handle("GET /api/v1/dashboard/deployments", func(w http.ResponseWriter, r *http.Request) {
		if !s.deploymentsReady(w) {
			return
		}
		ix, err := s.index(r.Context(), r.URL.Query().Get("state"))
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, ix)
	})
	s.handle("GET /api/v1/dashboard/deployments/stream", s.streamIndex)
	s.handle("GET /api/v1/deployments/{id}/stream", s.streamDeployment)
	s.handle("POST /api/v1/validate", func(w http.ResponseWriter, r *http.Request) {
		var req api.ValidateRequest
		if !decode(w, r, &req) {
			return
		}
		writeJSON(w, validate(req.Ensemble))
	})
	s.handle("POST /api/v1/dashboard/deploy", s.dashboardDeploy)
}

// index builds the deployments index from one List call.
func (s *Server) index(ctx context.Context, state string) (*api.DeploymentIndex, error) {
	if s.cfg.Deployments == nil {
		return nil, errors.New("deployments are not available on this node")
	}
	if state != "" && !slices.Contains(indexStates, state) {
		return nil, &BadRequest{Err: fmt.Errorf("state: %q is not one of %s", clip(state), strings.Join(indexStates, ", "))}
	}
	ds := s.cfg.Deployments.List(ctx)
	ix := &api.DeploymentIndex{Deployments: []api.DeploymentSummary{}, States: map[string]int{}, Total: len(ds)}
	for i := range ds {
		d := &ds[i]
		ix.States[d.State]++
		if state != "" && d.State != state {
			continue
		}
		ix.Deployments = append(ix.Deployments, summary(d))
	}
	return ix, nil
}

// summary is d's row of the index.
func summary(d *api.Deployment) api.DeploymentSummary {
	sm := api.DeploymentSummary{
		ID: d.ID, State: d.State, Message: d.Message, Reason: d.Reason, Version: d.Version,
		Created: d.Created, Updated: d.Updated, Allocations: len(d.Allocations), Providers: []string{},
	}
	for _, a := range d.Allocations {
		if a.State == "running" {
			sm.Running++
		}
		sm.Restarts += a.Restarts
		if a.Provider != "" && !slices.Contains(sm.Providers, a.Provider) {
			sm.Providers = append(sm.Providers, a.Provider)
		}
	}
	for _, p := range d.Placement {
		if p.Provider != "" && !slices.Contains(sm.Providers, p.Provider) {
			sm.Providers = append(sm.Providers, p.Provider)
		}
	}
	slices.Sort(sm.Providers)
	if d.State == "queued" {
		sm.Waiting = d.Candidates
	}
	return sm
}

// validate checks an ensemble as `dms validate --skip-files` does: the
// same problems, with their lines.
func validate(text string) api.Validation {
	v := api.Validation{Problems: []api.EnsembleProblem{}}
	spec, err := ensemble.Parse([]byte(text))
	var probs ensemble.Problems
	switch {
	case errors.As(err, &probs):
		for _, p := range probs {
			v.Problems = append(v.Problems, api.EnsembleProblem{Path: p.Path, Line: p.Line, Message: p.Msg})
		}
	case err != nil:
		v.Problems = append(v.Problems, api.EnsembleProblem{Message: err.Error()})
	default:
		v.Allocations, v.Nodes = len(spec.Allocations), len(spec.Nodes)
		for _, p := range spec.Unsupported() {
			v.Problems = append(v.Problems, api.EnsembleProblem{Path: p.Path, Line: p.Line, Message: p.Msg})
		}
	}
	v.Valid = len(v.Problems) == 0
	return v
}

// dashboardDeploy submits an ensemble typed in the dashboard: it is
// validated first (422 with the problems), local files are refused (the
// browser cannot ship them: dms deploy does), and the user key signs the
// delegations.
func (s *Server) dashboardDeploy(w http.ResponseWriter, r *http.Request) {
	var req api.DashboardDeployRequest
	if !decode(w, r, &req) || !s.deploymentsReady(w) {
		return
	}
	if s.cfg.UserKey == nil || s.cfg.Node == nil {
		unavailable(w, "deploying from the dashboard")
		return
	}
	v := validate(req.Ensemble)
	if v.Valid {
		spec, _ := ensemble.Parse([]byte(req.Ensemble))
		for _, f := range spec.LocalFiles() {
			v.Problems = append(v.Problems, api.EnsembleProblem{Path: f.Path, Line: ensemble.LineOf([]byte(req.Ensemble), f.Path),
				Message: f.File + ": a local file cannot be sent from the dashboard (use dms deploy -f FILE)"})
		}
		v.Valid = len(v.Problems) == 0
	}
	if !v.Valid {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(v)
		return
	}
	if req.Passphrase == "" {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "passphrase: the user key's passphrase is required (dms deploy asks for it too)")
		return
	}
	chains, err := s.cfg.UserKey.DeployChains(r.Context(), []byte(req.Passphrase), dashboardGrantTTL)
	if err != nil {
		s.fail(w, err)
		return
	}
	d, err := s.cfg.Deployments.Submit(r.Context(), api.DeployRequest{Ensemble: req.Ensemble, Chains: chains})
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/deployments/"+d.ID)
	writeJSON(w, d)
}

// sse starts a Server-Sent Events answer; it returns a function that
// sends one event.
func sse(w http.ResponseWriter) (send func(event string, v any) error, ok bool) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "streaming is not supported")
		return nil, false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	return func(event string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}, true
}

// sseKeepAlive is how often a stream with nothing new sends a comment, so
// that a dead client is noticed.
const sseKeepAlive = 25 * time.Second

// streamDeployment serves GET /api/v1/deployments/{id}/stream: an SSE
// stream of "deployment" events, the deployment (with its events) at once
// and at every change, then "end" once it has ended.
func (s *Server) streamDeployment(w http.ResponseWriter, r *http.Request) {
	if !s.deploymentsReady(w) {
		return
	}
	ctx, id := r.Context(), r.PathValue("id")
	d, err := s.cfg.Deployments.Get(ctx, id, 0, 0)
	if err != nil {
		s.fail(w, err)
		return
	}
	send, ok := sse(w)
	if !ok {
		return
	}
	for {
		if send("deployment", d) != nil {
			return
		}
		if d.Terminal() {
			send("end", struct{}{})
			return
		}
		next, err := s.cfg.Deployments.Get(ctx, id, d.Version, sseKeepAlive)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			send("failure", api.ErrorBody{Code: api.CodeInternal, Message: err.Error()})
			return
		}
		d = next
	}
}

// indexPoll is how often the index stream looks for changes: the service
// offers no wait on the whole list.
const indexPoll = time.Second

// streamIndex serves GET /api/v1/dashboard/deployments/stream: an SSE
// stream of "index" events, the index (with the state filter) at once and
// whenever a deployment changes.
func (s *Server) streamIndex(w http.ResponseWriter, r *http.Request) {
	if !s.deploymentsReady(w) {
		return
	}
	ctx, state := r.Context(), r.URL.Query().Get("state")
	ix, err := s.index(ctx, state)
	if err != nil {
		s.fail(w, err)
		return
	}
	send, ok := sse(w)
	if !ok {
		return
	}
	last := fingerprint(s.cfg.Deployments.List(ctx))
	if send("index", ix) != nil {
		return
	}
	tick := time.NewTicker(indexPoll)
	defer tick.Stop()
	quiet := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fp := fingerprint(s.cfg.Deployments.List(ctx))
		if fp == last {
			if time.Since(quiet) > sseKeepAlive {
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				quiet = time.Now()
			}
			continue
		}
		last = fp
		if ix, err = s.index(ctx, state); err != nil || send("index", ix) != nil {
			return
		}
		quiet = time.Now()
	}
}

// fingerprint changes when a deployment is added, removed or changed.
func fingerprint(ds []api.Deployment) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s:%d,", d.ID, d.Version)
	}
	return b.String()
}
