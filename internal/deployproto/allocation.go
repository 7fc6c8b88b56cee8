package deployproto

import (
	"time"

	"github.com/dmsnet/dms/internal/executor"
)

// StartRequest starts an allocation. Chain is the orchestrator's delegation
// to the allocation actor (token file text) for CmdDeployment: the
// allocation presents it with its reports and artifact requests.
type StartRequest struct {
	Chain string `json:"chain"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Contract is the ID of the placement's contract (the commit's); an
	// allocation committed under a contract refuses a start naming
	// another.
	Contract string `json:"contract,omitempty"`
}

// StopRequest stops an allocation (shutdown, or a revert); Grace is how long
// it may take before it is killed.
type StopRequest struct {
	Grace  time.Duration `json:"grace"`
	Remove bool          `json:"remove"` // also delete its data and release its resources
	Epoch  uint64        `json:"epoch,omitempty"`
}

// AllocationState is where an allocation is in its life.
type AllocationState string

// The states of an allocation.
const (
	AllocPending    AllocationState = "pending"   // committed, not started
	AllocStarting   AllocationState = "starting"  // fetching artifacts, starting the executor
	AllocRunning    AllocationState = "running"   // the workload runs
	AllocHealthy    AllocationState = "healthy"   // running and its healthcheck passes
	AllocUnhealthy  AllocationState = "unhealthy" // running and its healthcheck fails
	AllocRestarting AllocationState = "restarting"
	AllocCompleted  AllocationState = "completed" // ended by itself with exit code 0
	AllocFailed     AllocationState = "failed"    // ended otherwise, or could not start
	AllocStopped    AllocationState = "stopped"   // stopped on request
	AllocLost       AllocationState = "lost"      // set by the orchestrator: no heartbeat
)

// Terminal reports whether s is final.
func (s AllocationState) Terminal() bool {
	switch s {
	case AllocCompleted, AllocFailed, AllocStopped, AllocLost:
		return true
	}
	return false
}

// Report is what an allocation tells its orchestrator: its state after
// every change, and as a heartbeat every interval.
type Report struct {
	Deployment string           `json:"deployment"`
	Allocation string           `json:"allocation"` // name in the ensemble
	ID         string           `json:"id"`         // allocation ID on the provider
	Seq        uint64           `json:"seq"`        // increases with every report
	State      AllocationState  `json:"state"`
	Restarts   int              `json:"restarts"`
	Message    string           `json:"message,omitempty"`
	Result     *executor.Result `json:"result,omitempty"` // set once it ended
	Ports      []executor.Port  `json:"ports,omitempty"`  // published ports, host side
	Time       time.Time        `json:"time"`
	Epoch      uint64           `json:"epoch,omitempty"` // the highest epoch the allocation has seen
}

// AllocationStatus answers BehaviorStatus.
type AllocationStatus = Report

// ArtifactRequest asks the orchestrator for a chunk of an artifact (a wasm
// module, a vm image) by digest ("sha256:<hex>").
type ArtifactRequest struct {
	Deployment string `json:"deployment"`
	Digest     string `json:"digest"`
	Offset     int64  `json:"offset"`
}

// ArtifactChunk is part of an artifact; Size is the whole artifact's.
type ArtifactChunk struct {
	Data []byte `json:"data"`
	Size int64  `json:"size"`
}

// ArtifactChunkSize is the most an ArtifactChunk carries.
const ArtifactChunkSize = 1 << 20

// HealthCheckUserAgent is the User-Agent of a provider's HTTP health
// checks, so that the lines they leave in a service's access log can be
// told apart (api.HealthCheckUserAgent is the same string).
const HealthCheckUserAgent = "dms-health-check/1"

// LogsRequest reads an allocation's log from Offset, waiting up to Wait for
// new output when there is none (long poll).
type LogsRequest struct {
	Offset int64         `json:"offset"`
	Wait   time.Duration `json:"wait"`
	Max    int           `json:"max"` // bytes; 0: 256 KiB
	LogFilter
}

// LogFilter selects what a LogsRequest returns. Tail applies to the first
// answer only: the last Tail lines logged so far from Offset (the
// orchestrator asks with Tail once, then follows from the Next it gets).
type LogFilter struct {
	Tail   int       `json:"tail,omitempty"`   // lines; 0: all
	Since  time.Time `json:"since,omitzero"`   // entries written at or after it (entries without a time pass)
	Stream string    `json:"stream,omitempty"` // stdout or stderr; empty: both
	// HealthChecks keeps the lines that contain HealthCheckUserAgent (a
	// service's access log of the provider's HTTP health checks); by
	// default they are left out, and Tail does not count them.
	HealthChecks bool `json:"health_checks,omitempty"`
}

// LogsChunk is a piece of a log: entries in order, the offset to ask for
// next, and EOF once the allocation ended and everything was read.
type LogsChunk struct {
	Entries []LogEntry `json:"entries"`
	Next    int64      `json:"next"`
	EOF     bool       `json:"eof"`
}

// LogEntry is output of one stream.
type LogEntry struct {
	Stream string    `json:"stream"` // stdout or stderr
	Data   []byte    `json:"data"`
	Time   time.Time `json:"time,omitzero"` // when it was copied from the workload; zero in logs older than timestamps
}
