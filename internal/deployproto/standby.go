package deployproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/actor"
)

// Standby orchestrators. A deployment may name standby orchestrators: nodes
// that keep a replica of its record and take over its supervision when the
// orchestrating node (the primary) is gone for longer than a lease.
//
// The primary's orchestrator actor sends a ReplicateRequest to the node
// actor of every standby at each persisted change of the deployment and,
// as a lease renewal, every Lease/3. The standby stores the replica and
// answers with the highest epoch it knows and that epoch's primary: a
// primary that learns of a higher epoch steps down. A standby fetches the
// deployment's artifacts it lacks from the primary with BehaviorArtifact,
// as an allocation does, so that it can serve them once it takes over. A standby that has
// heard nothing for 1.5 × Lease takes over with a higher epoch (see
// package orchestrator, standby.go).

// MaxLease is the longest lease a ReplicateRequest may carry.
const MaxLease = time.Hour

// ReplicateRequest carries a deployment's record to a standby orchestrator.
// With Probe set it carries no record: it asks whether the receiver would
// be a standby for deployment ID (dms deploy checks its standbys before it
// accepts the deployment).
type ReplicateRequest struct {
	ID    string `json:"id"`
	Probe bool   `json:"probe,omitempty"`
	// Deployment is the orchestrator's record (JSON of
	// orchestrator.Deployment, without its sealed key).
	Deployment json.RawMessage `json:"deployment,omitempty"`
	// Epoch is the deployment's fencing epoch as the sender knows it;
	// Primary is the sender, the deployment's orchestrator actor.
	Epoch   uint64       `json:"epoch"`
	Primary actor.Handle `json:"primary"`
	// Lease is how long the primary holds its lease after a replicate the
	// standby acknowledged: the standby takes over after 1.5 × Lease of
	// silence (plus its rank × Lease/2).
	Lease time.Duration `json:"lease"`
	// Chains are the sender's delegations to the receiving node (token
	// files) of CmdDeployment and CmdAllocation, rooted at the deployment's
	// owner: with them the standby can act for the owner once it takes
	// over.
	Chains []string `json:"chains,omitempty"`
}

// ReplicateReply answers a ReplicateRequest: the highest epoch the standby
// knows and the orchestrator actor of that epoch. A sender whose epoch is
// lower has been replaced and must step down. Missing is how many of the
// deployment's artifacts the standby does not hold yet (it fetches them
// from the primary with BehaviorArtifact); a reply without it, from an
// older node, reads as none missing.
type ReplicateReply struct {
	Epoch   uint64       `json:"epoch"`
	Primary actor.Handle `json:"primary"`
	Missing int          `json:"missing,omitempty"`
}

// ShutdownRequest asks a deployment's orchestrator to shut it down, on
// behalf of a standby orchestrator the user asked.
type ShutdownRequest struct {
	Deployment string `json:"deployment"`
}

// Validate checks a ReplicateRequest as a standby receives it, so that a
// bad one is refused with a clear error before anything is stored.
func (r *ReplicateRequest) Validate() error {
	var errs []error
	if err := ValidID(r.ID); err != nil {
		errs = append(errs, err)
	}
	if r.Probe {
		return errors.Join(errs...)
	}
	if len(r.Deployment) == 0 {
		errs = append(errs, errors.New("replicate: no deployment record"))
	}
	if r.Primary.IsZero() || r.Primary.Host == "" || r.Primary.DID == "" {
		errs = append(errs, errors.New("replicate: no primary orchestrator"))
	}
	if r.Lease <= 0 || r.Lease > MaxLease {
		errs = append(errs, fmt.Errorf("replicate: lease %s: want more than 0 and at most %s", r.Lease, MaxLease))
	}
	if len(r.Chains) > 8 {
		errs = append(errs, fmt.Errorf("replicate: %d chains: want at most 8", len(r.Chains)))
	}
	return errors.Join(errs...)
}

// ValidID checks a deployment ID as it travels between nodes: 1 to 64
// characters of a-z, 0-9, '-' and '_'.
func ValidID(id string) error {
	if id == "" || len(id) > 64 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return fmt.Errorf("deployment ID %q: want 1 to 64 characters of a-z, 0-9, - and _", id)
	}
	return nil
}
