package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DeployRequest is the body of POST /api/v1/deployments.
type DeployRequest struct {
	// Ensemble is the job (YAML), its local files already replaced by their
	// sha256 references.
	Ensemble string `json:"ensemble"`
	// Artifacts are the files it references, by digest ("sha256:<hex>").
	Artifacts map[string][]byte `json:"artifacts,omitempty"`
	// Chains are the user's delegations to this node of /dms/deployment and
	// /dms/allocation (token file text): the authority the deployment acts
	// with on the network.
	Chains []string `json:"chains"`
	// Secrets are secrets the ensemble names (an s3 volume's
	// credentials.secret), by name: the text of a credentials file
	// (KEY=VALUE lines or JSON; see docs/storage.md). The node keeps them
	// sealed and gives each only to the providers that need it, sealed to
	// their keys; they never appear in status, logs or events.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// Deployment is a deployment as the API shows it.
type Deployment struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Message     string            `json:"message,omitempty"`
	Version     uint64            `json:"version"`
	Owner       string            `json:"owner"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	ExitCode    *int              `json:"exit_code,omitempty"`
	Round       int               `json:"round"`
	Placement   []DeploymentNode  `json:"placement,omitempty"`
	Allocations []DeploymentAlloc `json:"allocations,omitempty"`
	// Subnet is the deployment's address block when its ensemble asks for
	// a subnet (network.subnet).
	Subnet     string                `json:"subnet,omitempty"`
	Candidates []DeploymentCandidate `json:"candidates,omitempty"`
	Ensemble   string                `json:"ensemble,omitempty"`
	// Reason is the typed reason of a failure: reschedule-budget-spent,
	// no-placement, pinned-node-failed, allocation-failed, timeout,
	// secret-unavailable, budget-exhausted (ensemble contract.budget).
	Reason string `json:"reason,omitempty"`
	// Epoch is the fencing epoch: it grows with every placement and every
	// takeover by a standby orchestrator.
	Epoch uint64 `json:"epoch,omitempty"`
	// Events is the supervision timeline, oldest first (the node keeps the
	// last 500).
	Events []DeploymentEvent `json:"events,omitempty"`
	// Standbys are the peer IDs of the standby orchestrators.
	Standbys []string `json:"standbys,omitempty"`
	// Orchestrator is the peer ID of the node that orchestrates the
	// deployment.
	Orchestrator string `json:"orchestrator,omitempty"`
}

// DeploymentEvent is one entry of a deployment's timeline: a supervision
// decision (a redeploy, a restart, a stale copy stopped, a takeover) or
// what caused one.
type DeploymentEvent struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is placed, lost, back, failed, restarted, redeploying,
	// redeployed, waiting, stale-stopped, notified, budget-spent, takeover
	// or step-down (docs/supervision.md); a client shows a kind it does
	// not know as it is.
	Kind       string `json:"kind"`
	Allocation string `json:"allocation,omitempty"`
	Node       string `json:"node,omitempty"`
	From       string `json:"from,omitempty"` // provider peer ID
	To         string `json:"to,omitempty"`   // provider peer ID
	Epoch      uint64 `json:"epoch,omitempty"`
	Message    string `json:"message"`
}

// DeploymentEvents is the answer of GET /api/v1/deployments/{id}/events:
// the events after a sequence number.
type DeploymentEvents struct {
	// ID is the deployment's full ID (the request may give a prefix).
	ID     string            `json:"id"`
	Events []DeploymentEvent `json:"events"`
	// Next is the sequence number to ask after next time: that of the
	// last event returned, or the after asked when there is none.
	Next uint64 `json:"next"`
	// State is the deployment's; Ended says it is completed, failed or
	// stopped (a follower stops there).
	State string `json:"state"`
	Ended bool   `json:"ended"`
}

// Terminal reports whether the deployment has ended.
func (d *Deployment) Terminal() bool {
	return d.State == "completed" || d.State == "failed" || d.State == "stopped"
}

// DeploymentNode is where one node of the ensemble runs.
type DeploymentNode struct {
	Node        string  `json:"node"`
	Provider    string  `json:"provider"` // peer ID
	Reservation string  `json:"reservation"`
	Score       float64 `json:"score"`
	Cost        string  `json:"cost,omitempty"`
}

// DeploymentAlloc is one allocation of a deployment.
type DeploymentAlloc struct {
	Name     string `json:"name"`
	Node     string `json:"node"`
	Provider string `json:"provider,omitempty"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	// Attempt counts the placements of the allocation (1: the first, 2
	// after one redeploy); Epoch is the fencing epoch of the current one.
	Attempt  int       `json:"attempt,omitempty"`
	Epoch    uint64    `json:"epoch,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Reason   string    `json:"reason,omitempty"` // how it ended: exited, oom-killed, timed-out, cancelled, failed, unhealthy
	Message  string    `json:"message,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Ports    []string  `json:"ports,omitempty"` // host:guest/proto
	// Address is the allocation's address on the deployment's subnet
	// (ensemble network.subnet), reachable as <name>.internal.
	Address string `json:"address,omitempty"`
	// Started and Finished are the last run's, once it ended.
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// DeploymentCandidate says why a provider does not host a node.
type DeploymentCandidate struct {
	Peer    string   `json:"peer"`
	Node    string   `json:"node"`
	Kind    string   `json:"kind"` // resource, executor, location, price, time, onboarding, pinned, invalid, refused, no-answer, distinct, rtt, peer-limit
	Reasons []string `json:"reasons,omitempty"`
}

// LogLine is one piece of output, as GET /api/v1/deployments/{id}/logs
// streams them (one JSON object per line).
type LogLine struct {
	Allocation string    `json:"allocation"`
	Stream     string    `json:"stream"` // stdout or stderr
	Data       string    `json:"data"`
	Time       time.Time `json:"time,omitzero"` // when the provider copied it from the workload; absent in logs written before DMS stamped them
}

// HealthCheckUserAgent is the User-Agent of the HTTP health checks a
// provider sends to services: the logs leave out the lines that contain it
// unless LogFilter.HealthChecks asks for them.
const HealthCheckUserAgent = "dms-health-check/1"

// LogFilter selects which log lines GET /api/v1/deployments/{id}/logs
// streams.
type LogFilter struct {
	// Tail, when positive, starts with the last Tail lines of each
	// allocation logged so far instead of the beginning.
	Tail int
	// Since, when set, drops lines written before it (lines without a
	// time are kept).
	Since time.Time
	// Stream is stdout or stderr to get only that stream; empty gets both.
	Stream string
	// HealthChecks keeps the log lines of the provider's own HTTP health
	// checks (they contain HealthCheckUserAgent); by default they are left
	// out, also from a followed log.
	HealthChecks bool
}

func (f LogFilter) query(q url.Values) {
	if f.Tail > 0 {
		q.Set("tail", strconv.Itoa(f.Tail))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Stream != "" {
		q.Set("stream", f.Stream)
	}
	if f.HealthChecks {
		q.Set("health_checks", "true")
	}
}

// Deploy submits an ensemble.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (*Deployment, error) {
	var d Deployment
	return &d, c.do(ctx, http.MethodPost, "/api/v1/deployments", req, &d)
}

// Deployments lists the deployments this node orchestrates, newest first.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var ds []Deployment
	return ds, c.do(ctx, http.MethodGet, "/api/v1/deployments", nil, &ds)
}

// Deployment returns a deployment. With wait > 0 it long-polls: it answers
// as soon as the deployment's version exceeds after, or when wait passes.
func (c *Client) Deployment(ctx context.Context, id string, after uint64, wait time.Duration) (*Deployment, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
		q.Set("wait", wait.String())
	}
	path := "/api/v1/deployments/" + url.PathEscape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var d Deployment
	return &d, c.do(ctx, http.MethodGet, path, nil, &d)
}

// DeploymentEvents returns the events of a deployment's timeline whose
// sequence number exceeds after. With wait > 0 it long-polls: it answers
// as soon as there is such an event, the deployment has ended, or wait
// passes (the node bounds it to a minute).
func (c *Client) DeploymentEvents(ctx context.Context, id string, after uint64, wait time.Duration) (*DeploymentEvents, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	path := "/api/v1/deployments/" + url.PathEscape(id) + "/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var evs DeploymentEvents
	return &evs, c.do(ctx, http.MethodGet, path, nil, &evs)
}

// ShutdownDeployment stops a deployment.
func (c *Client) ShutdownDeployment(ctx context.Context, id string) (*Deployment, error) {
	var d Deployment
	return &d, c.do(ctx, http.MethodPost, "/api/v1/deployments/"+url.PathEscape(id)+"/shutdown", nil, &d)
}

// DeploymentLogs streams a deployment's logs (one allocation's when alloc
// is set) to fn, from the beginning; with follow until they end.
func (c *Client) DeploymentLogs(ctx context.Context, id, alloc string, follow bool, fn func(LogLine)) error {
	return c.DeploymentLogsFiltered(ctx, id, alloc, follow, LogFilter{}, fn)
}

// DeploymentLogsFiltered is DeploymentLogs for the lines that pass f.
func (c *Client) DeploymentLogsFiltered(ctx context.Context, id, alloc string, follow bool, f LogFilter, fn func(LogLine)) error {
	q := url.Values{}
	f.query(q)
	if alloc != "" {
		q.Set("allocation", alloc)
	}
	if follow {
		q.Set("follow", "true")
	}
	body, err := c.stream(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("log stream: %w", err)
		}
		if l.Stream == "error" {
			return &Error{Status: 502, Code: "logs", Message: l.Data}
		}
		fn(l)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && err != io.EOF {
		return err
	}
	return ctx.Err()
}
