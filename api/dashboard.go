package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DeploymentIndex is the answer of GET /api/v1/dashboard/deployments: every
// deployment this node orchestrates, newest first, summed up in one call so
// that an index needs no request per row.
type DeploymentIndex struct {
	// Deployments are those in the state asked (all without a state).
	Deployments []DeploymentSummary `json:"deployments"`
	// States counts every deployment by state, whatever the filter.
	States map[string]int `json:"states"`
	// Total is the number of deployments, whatever the filter.
	Total int `json:"total"`
}

// DeploymentSummary is one row of the deployments index.
type DeploymentSummary struct {
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Allocations counts the allocations; Running those running; Restarts
	// sums their restarts.
	Allocations int `json:"allocations"`
	Running     int `json:"running"`
	Restarts    int `json:"restarts"`
	// Providers are the peer IDs of the providers hosting it, sorted.
	Providers []string `json:"providers"`
	// Waiting, for a queued deployment, says per provider why it does not
	// fit (Deployment.Candidates).
	Waiting []DeploymentCandidate `json:"waiting,omitempty"`
}

// ValidateRequest is the body of POST /api/v1/validate.
type ValidateRequest struct {
	Ensemble string `json:"ensemble"`
}

// Validation is the answer of POST /api/v1/validate: the problems of an
// ensemble, the same as `dms validate` reports, with their lines.
type Validation struct {
	Valid       bool              `json:"valid"`
	Allocations int               `json:"allocations,omitempty"`
	Nodes       int               `json:"nodes,omitempty"`
	Problems    []EnsembleProblem `json:"problems"`
}

// EnsembleProblem is one problem of an ensemble: where (a key path and a
// line, 0 when unknown) and what.
type EnsembleProblem struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// DashboardDeployRequest is the body of POST /api/v1/dashboard/deploy.
type DashboardDeployRequest struct {
	Ensemble string `json:"ensemble"`
	// Passphrase unlocks the home's user key for this request only; the
	// node neither logs nor keeps it.
	Passphrase string `json:"passphrase"`
}

// DeploymentIndex returns the deployments index, only the deployments in
// state when it is set.
func (c *Client) DeploymentIndex(ctx context.Context, state string) (*DeploymentIndex, error) {
	path := "/api/v1/dashboard/deployments"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	var ix DeploymentIndex
	return &ix, c.do(ctx, http.MethodGet, path, nil, &ix)
}

// Validate checks an ensemble on the node.
func (c *Client) Validate(ctx context.Context, ensemble string) (*Validation, error) {
	var v Validation
	return &v, c.do(ctx, http.MethodPost, "/api/v1/validate", ValidateRequest{Ensemble: ensemble}, &v)
}
