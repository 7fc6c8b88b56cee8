package deployproto

import (
	"time"

	"github.com/dmsnet/dms/internal/actor"
)

// Fencing. Every placement of a node carries an epoch, the deployment's
// counter at the time: it grows with every placement and every takeover by
// a standby orchestrator, and never goes back. An allocation keeps the
// highest epoch it has seen (from its commit, the orchestrator's report
// acknowledgements and adoptions) and refuses commands of a lower one with
// an *actor.Error of code CodeStaleEpoch; the orchestrator answers the
// reports of a copy it has replaced with ReportAck.Stop.
//
// An allocation that has had no acknowledgement from its orchestrator for
// the commit's StopAfter stops its copy on its own (a provider cut off
// from its orchestrator cannot know whether the node was placed again).

// CodeStaleEpoch is the code of a command or report refused because its
// epoch is older than the one its receiver knows.
const CodeStaleEpoch actor.Code = "stale-epoch"

// ReportAck answers a Report: the deployment's current epoch, and whether
// the reporting copy is stale (its node was placed again elsewhere, or the
// deployment gave it up) and must stop and release its resources.
type ReportAck struct {
	Epoch  uint64 `json:"epoch"`
	Stop   bool   `json:"stop,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Dependency events.
const (
	DependencyRestarted = "restarted" // the dependency restarted on its provider
	DependencyMoved     = "moved"     // the dependency was placed on another provider
)

// DependencyNotice tells an allocation that one it depends on (or, under
// the one_for_all strategy, any other of its deployment) restarted or
// moved. The allocation writes it into its log, and with Restart it
// restarts its workload (the rest_for_one and one_for_all strategies).
type DependencyNotice struct {
	Epoch      uint64 `json:"epoch"`
	Dependency string `json:"dependency"` // allocation name
	Event      string `json:"event"`      // DependencyRestarted or DependencyMoved
	Message    string `json:"message,omitempty"`
	Restart    bool   `json:"restart,omitempty"`
	// Strategy is the supervision strategy that asks for the restart
	// (rest_for_one, one_for_all), for the allocation's log; optional.
	Strategy string `json:"strategy,omitempty"`
}

// AdoptRequest moves an allocation to a new orchestrator: a standby that
// took over the deployment with a higher epoch. Chain is the new
// orchestrator's delegation of CmdDeployment to the allocation actor (as
// in StartRequest); the allocation reports to Orchestrator from then on
// and refuses lower epochs.
type AdoptRequest struct {
	Deployment   string       `json:"deployment"`
	Epoch        uint64       `json:"epoch"`
	Orchestrator actor.Handle `json:"orchestrator"`
	Chain        string       `json:"chain"`
}

// DefaultStopAfterFactor is how many LostAfter periods a provider waits,
// without an acknowledgement from the orchestrator, before it stops its
// copy on its own, when the commit does not say.
const DefaultStopAfterFactor = 2

// MinStopAfter is the shortest StopAfter a provider accepts.
const MinStopAfter = time.Second
