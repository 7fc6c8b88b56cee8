package executor

import (
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// Result is how an instance ended.
type Result struct {
	// ExitCode is the workload's exit status. It is meaningful when Reason
	// is ReasonExited; otherwise it is what the backend saw (137 for a
	// killed container or process), or -1 when there is none (a wasm trap,
	// a VM that never reported one).
	ExitCode int    `json:"exit_code"`
	Reason   Reason `json:"reason"`
	// Error explains ReasonFailed (and adds detail to other reasons).
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Usage      Usage     `json:"usage"`

	// Accel is the accelerator a VM ran with: "tcg" or "kvm" (vm only).
	Accel string `json:"accel,omitempty"`
	// Boot is the time from starting the VM to its payload starting (vm
	// only; zero when the payload never started).
	Boot time.Duration `json:"boot,omitempty"`
}

// Reason says why an instance ended.
type Reason string

// The reasons an instance ends.
const (
	// ReasonExited: the workload exited by itself; see ExitCode.
	ReasonExited Reason = "exited"
	// ReasonOOMKilled: the workload went over its memory limit.
	ReasonOOMKilled Reason = "oom-killed"
	// ReasonTimedOut: Spec.Timeout passed and the executor killed it.
	ReasonTimedOut Reason = "timed-out"
	// ReasonCancelled: Stop or Remove ended it.
	ReasonCancelled Reason = "cancelled"
	// ReasonFailed: it could not run to an exit status (a trap, a VM that
	// died without reporting one, the backend lost it); see Error.
	ReasonFailed Reason = "failed"
	// ReasonUnhealthy: its health check kept failing and its supervisor
	// killed it (set by the allocation supervisor, not by executors).
	ReasonUnhealthy Reason = "unhealthy"
)

// Usage is what an instance consumed. Fields a backend cannot measure stay
// zero.
type Usage struct {
	// CPUTime is the CPU time used (user and system).
	CPUTime time.Duration `json:"cpu_time,omitempty"`
	// Memory is the memory in use now (Stats only).
	Memory match.Bytes `json:"memory,omitempty"`
	// MemoryPeak is the most memory used at once.
	MemoryPeak match.Bytes `json:"memory_peak,omitempty"`
	// PIDs is the number of processes and threads now (Stats only).
	PIDs int64 `json:"pids,omitempty"`
}
