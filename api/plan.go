package api

import (
	"context"
	"net/http"
	"time"
)

// PlanRequest is the body of POST /api/v1/plan.
type PlanRequest struct {
	// Ensemble is the job (YAML); local files need not be shipped (nothing
	// runs), but the CLI replaces them by their sha256 references all the
	// same.
	Ensemble string `json:"ensemble"`
	// Chains are the user's delegations to this node; one must cover
	// /dms/deployment/plan (CmdPlan; /dms/deployment does too).
	Chains []string `json:"chains"`
}

// CmdPlan is the command a dry-run bid request is authorized by: the CLI
// delegates it, and nothing more, to the node for dms plan.
const CmdPlan = CmdDeployment + "/plan"

// Plan is the outcome of a dry-run bid round: where each node of the
// ensemble would land, the nodes that could not be placed, and why each
// provider that does not host a node does not. Nothing is deployed and no
// provider reserves anything.
type Plan struct {
	ID         string                `json:"id"`
	Placement  []DeploymentNode      `json:"placement,omitempty"` // reservation empty: none is made
	Unplaced   []string              `json:"unplaced,omitempty"`  // every node, when one cannot be placed: all or nothing
	Stuck      []string              `json:"stuck,omitempty"`     // the nodes no provider could be found for
	Candidates []DeploymentCandidate `json:"candidates,omitempty"`
	Asked      int                   `json:"asked"`    // providers asked, this node included
	Answered   int                   `json:"answered"` // of them, those that answered in the bid window
	// RoundMS is how long the bid round took, in milliseconds: until
	// every provider asked had answered, or the bid window ended.
	RoundMS float64 `json:"round_ms"`
}

// Provider is a provider this node knows from the bid and plan rounds it
// ran: what it offered the last time it answered.
type Provider struct {
	Peer      string    `json:"peer"`
	Location  Location  `json:"location"`
	Executors []string  `json:"executors"`
	Free      Resources `json:"free"`
	Price     string    `json:"price"` // per hour and unit: "cpu=0.5,ram=0.1", or "0"
	LastSeen  time.Time `json:"last_seen"`
}

// Plan runs a dry-run bid round for an ensemble.
func (c *Client) Plan(ctx context.Context, req PlanRequest) (*Plan, error) {
	var p Plan
	return &p, c.do(ctx, http.MethodPost, "/api/v1/plan", req, &p)
}

// Providers lists the providers this node knows, most recently seen first.
func (c *Client) Providers(ctx context.Context) ([]Provider, error) {
	var ps []Provider
	return ps, c.do(ctx, http.MethodGet, "/api/v1/providers", nil, &ps)
}
