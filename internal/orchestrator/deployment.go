package orchestrator

import (
	"errors"
	"maps"
	"net/netip"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// State is where a deployment is in its life.
type State string

// The states of a deployment, in order:
//
//	queued → bidding → committing → provisioning → running → completed | failed
//	                                  any state → shutting-down → stopped
//
// A deployment goes back from bidding or committing to queued when no
// placement fits (it waits for providers, up to its queue timeout) and
// from committing to bidding when a provider refuses a commit.
const (
	Queued       State = "queued"
	Bidding      State = "bidding"
	Committing   State = "committing"
	Provisioning State = "provisioning"
	Running      State = "running"
	Completed    State = "completed"
	Failed       State = "failed"
	ShuttingDown State = "shutting-down"
	Stopped      State = "stopped"
)

// Terminal reports whether s is final.
func (s State) Terminal() bool { return s == Completed || s == Failed || s == Stopped }

// Deployment is one run of an ensemble, as persisted by the orchestrator's
// node. Version grows with every change.
type Deployment struct {
	ID      string       `json:"id"`
	Owner   identity.DID `json:"owner"`
	Spec    []byte       `json:"spec"` // the ensemble (YAML)
	State   State        `json:"state"`
	Version uint64       `json:"version"`
	Created time.Time    `json:"created"`
	Updated time.Time    `json:"updated"`
	// Message says what is going on, or why it failed.
	Message string `json:"message,omitempty"`
	// Reason is the typed reason of a failure (a Reason* constant).
	Reason string `json:"reason,omitempty"`
	// ExitCode is the job's: 0 when every task completed, else the exit
	// code of the first task that failed; nil until the deployment ends.
	ExitCode *int `json:"exit_code,omitempty"`
	// Round counts bid rounds.
	Round int `json:"round"`
	// Candidates says, for the last round that found no placement, why
	// each candidate provider does not host each node.
	Candidates []placement.Reason `json:"candidates,omitempty"`
	// Placement is each node's provider once committed.
	Placement map[string]Placement `json:"placement,omitempty"`
	// Allocations are by allocation name.
	Allocations map[string]*Allocation `json:"allocations,omitempty"`

	QueueDeadline time.Time `json:"queue_deadline,omitzero"`
	EndDeadline   time.Time `json:"end_deadline,omitzero"` // from timeouts.total

	// The orchestrator actor: its DID and key sealed with the node key,
	// and the delegation chains (token files) it acts with.
	Orchestrator actor.Handle `json:"orchestrator"`
	SealedKey    []byte       `json:"sealed_key"`
	Chains       []string     `json:"chains"`
	Artifacts    []string     `json:"artifacts,omitempty"` // digests of the files shipped with it
	// SealedSecrets are the user's secrets (secrets.go), sealed with the
	// node key; StandbySecrets, in a replica only, the same sealed to each
	// standby's key, by peer ID. Both are dropped when the deployment ends.
	SealedSecrets  []byte            `json:"sealed_secrets,omitempty"`
	StandbySecrets map[string][]byte `json:"standby_secrets,omitempty"`

	// Epoch is the fencing epoch: it grows with every placement and every
	// takeover by a standby orchestrator (package deployproto).
	Epoch uint64 `json:"epoch"`
	// Events is the supervision timeline, oldest first (at most
	// maxEvents); EventSeq numbers them.
	Events   []Event `json:"events,omitempty"`
	EventSeq uint64  `json:"event_seq,omitempty"`
	// Redeploys are the times each node was redeployed, for the reschedule
	// budget.
	Redeploys map[string][]time.Time `json:"redeploys,omitempty"`
	// Standbys are the peer IDs of the standby orchestrators.
	Standbys []string `json:"standbys,omitempty"`
	// Role is this node's part in the deployment (standby.go): RolePrimary
	// (or empty) where it orchestrates, RoleStandby where it keeps a
	// replica and Orchestrator names the primary's actor.
	Role string `json:"role,omitempty"`
	// NodeChains are the delegations to this node (token files) of
	// CmdDeployment and CmdAllocation, rooted at the owner: a primary
	// redelegates them to its standbys, a standby to the orchestrator it
	// creates when it takes over.
	NodeChains []string `json:"node_chains,omitempty"`
	// Subnet is the deployment's address block when its ensemble asks for
	// a subnet (network.subnet), Addresses each allocation's address in
	// it, and SubnetVersion the version of the last routing table sent to
	// the providers (subnet.go).
	Subnet        netip.Prefix          `json:"subnet,omitzero"`
	Addresses     map[string]netip.Addr `json:"addresses,omitempty"`
	SubnetVersion uint64                `json:"subnet_version,omitempty"`
	// Trace is the W3C traceparent of the deployment's root span (one
	// trace per deployment, trace.go): the spans of later work, on this
	// node after a restart or on a standby that took over, are its
	// children. Empty when tracing was off at submit.
	Trace string `json:"trace,omitempty"`
}

// The typed reasons of a failed deployment.
const (
	ReasonBudgetSpent       = "reschedule-budget-spent" // a node needed more redeploys than its budget allows
	ReasonNoPlacement       = "no-placement"            // no provider fit before the queue timeout
	ReasonPinned            = "pinned-node-failed"      // an allocation of a pinned node failed: it cannot move
	ReasonAllocationFailed  = "allocation-failed"       // an allocation failed and no other provider took its node
	ReasonTimeout           = "timeout"                 // the total timeout passed
	ReasonSecretUnavailable = "secret-unavailable"      // a node to redeploy needs a secret this orchestrator does not hold
)

// Placement is the provider of one node.
type Placement struct {
	Provider    actor.Handle `json:"provider"`
	Reservation string       `json:"reservation"`
	Score       float64      `json:"score"`
	Cost        string       `json:"cost,omitempty"` // per hour
	Epoch       uint64       `json:"epoch,omitempty"`
	// Price is the provider's price in its bid: its contract's.
	Price match.Price `json:"price,omitzero"`
}

// Allocation is the orchestrator's view of one allocation.
type Allocation struct {
	Name     string                      `json:"name"`
	Node     string                      `json:"node"`
	Handle   actor.Handle                `json:"handle"`
	State    deployproto.AllocationState `json:"state"`
	Restarts int                         `json:"restarts"`
	Seq      uint64                      `json:"seq"`
	LastSeen time.Time                   `json:"last_seen,omitzero"`
	Message  string                      `json:"message,omitempty"`
	Result   *executor.Result            `json:"result,omitempty"`
	Ports    []executor.Port             `json:"ports,omitempty"`
	Started  bool                        `json:"started"`
	// Attempt counts the placements of the allocation (1: the first);
	// Epoch is the fencing epoch of the current one.
	Attempt int    `json:"attempt,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`
	// Contract is the ID of the placement's contract ("": none), sent
	// with the start.
	Contract string `json:"contract,omitempty"`
	// Replaced are the handles of copies this allocation replaced (on
	// providers it was moved away from), newest last: their reports are
	// answered with a stop.
	Replaced []Replaced `json:"replaced,omitempty"`
}

// Replaced is a copy of an allocation that a redeploy replaced.
type Replaced struct {
	Handle  actor.Handle `json:"handle"`
	Epoch   uint64       `json:"epoch"`
	Told    bool         `json:"told,omitempty"`    // it reported and was told to stop
	Stopped bool         `json:"stopped,omitempty"` // it reported its end
}

// clone returns a copy for readers outside the run loop. The slices that
// the package only ever appends to or replaces (Events, Candidates) share
// their elements with d, capped at their length: an append to either side
// writes past the other's end or into a new array, and no element is
// changed in place. The Placement map is shared too: the package replaces
// it (setPlacement) and never writes into it.
func (d *Deployment) clone() *Deployment {
	c := *d
	c.Placement = d.Placement // replaced, never written into (setPlacement)
	c.Allocations = make(map[string]*Allocation, len(d.Allocations))
	for k, v := range d.Allocations {
		a := *v
		a.Replaced = append([]Replaced(nil), v.Replaced...)
		c.Allocations[k] = &a
	}
	c.Events = d.Events[:len(d.Events):len(d.Events)]
	c.Standbys = append([]string(nil), d.Standbys...)
	c.NodeChains = append([]string(nil), d.NodeChains...)
	c.StandbySecrets = maps.Clone(d.StandbySecrets)
	c.Addresses = maps.Clone(d.Addresses)
	if d.Redeploys != nil {
		c.Redeploys = make(map[string][]time.Time, len(d.Redeploys))
		for k, v := range d.Redeploys {
			c.Redeploys[k] = append([]time.Time(nil), v...)
		}
	}
	c.Candidates = d.Candidates[:len(d.Candidates):len(d.Candidates)]
	return &c
}

// setPlacement sets node's placement in a new map: the copies of d share
// its map (clone), so the package replaces it and never writes into it.
func (d *Deployment) setPlacement(node string, pl Placement) {
	m := make(map[string]Placement, len(d.Placement)+1)
	maps.Copy(m, d.Placement)
	m[node] = pl
	d.Placement = m
}

// Store persists deployments and the files shipped with them.
type Store interface {
	// PutDeployment keeps d, which the run also gives its readers: the
	// store must not change it. What Deployments returns may be the same
	// values; the Service copies them before it changes them.
	PutDeployment(d *Deployment) error
	Deployments() ([]*Deployment, error)
	PutArtifact(digest string, data []byte) error
	// Artifact returns a part of an artifact and its whole size.
	Artifact(digest string, offset int64, max int) (data []byte, size int64, err error)
}

// ErrNotFound is returned for an unknown deployment or allocation.
var ErrNotFound = errors.New("not found")
