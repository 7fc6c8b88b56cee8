package executor

import (
	"context"
	"io"
	"time"
)

// Executor runs workloads of one kind. Implementations are safe for
// concurrent use. Instance IDs are opaque strings chosen by the executor.
type Executor interface {
	// Start validates spec, creates the instance and starts it. It returns
	// the instance ID once the workload is running (for docker: the
	// container started; for vm: QEMU started; for wasm: the module
	// instantiating). ctx bounds only the start (image pull, create), not
	// the run. A refused spec returns a *ValidationError (ErrInvalidSpec)
	// and starts nothing.
	Start(ctx context.Context, spec Spec) (id string, err error)

	// Wait blocks until the instance has ended and returns its Result, or
	// until ctx is done (then it returns ctx.Err() and the instance keeps
	// running). A workload that fails is reported in the Result, not as an
	// error.
	Wait(ctx context.Context, id string) (Result, error)

	// Stop asks the instance to end (SIGTERM or the backend's equivalent),
	// kills it when it has not ended after grace (0 kills at once), and
	// returns once it has ended. Its Result then says ReasonCancelled,
	// unless it had already ended by itself. Stopping an ended instance
	// does nothing.
	Stop(ctx context.Context, id string, grace time.Duration) error

	// Logs writes the instance's output to stdout and stderr, each stream
	// in order. Without Follow it writes what was logged so far and
	// returns; with Follow it also writes new output as it comes and
	// returns nil once the instance has ended and all output is written,
	// or ctx.Err() when ctx is done first. Logs stay readable after the
	// instance ended, until Remove.
	Logs(ctx context.Context, id string, opts LogOptions, stdout, stderr io.Writer) error

	// Remove cleans up: it kills the instance if it still runs and deletes
	// everything the executor created for it (container and anonymous
	// volumes, VM work directory, logs). Afterwards the ID is unknown.
	// It is all or nothing: when ctx is already done it returns ctx.Err()
	// and changes nothing; when ctx ends while the instance is still
	// ending, it returns ctx.Err() and the instance, told to stop, is
	// still known (Remove may be called again).
	Remove(ctx context.Context, id string) error
}

// LogOptions selects what Logs writes.
type LogOptions struct {
	// Follow keeps streaming until the instance ends.
	Follow bool
	// Tail, when positive, starts with only the last Tail lines logged so
	// far (of each stream for in-process backends; of the combined log for
	// docker); zero means everything.
	Tail int
}

// Lister is implemented by executors that can find their instances by
// labels, including instances started before the executor (or the whole
// daemon) restarted: docker finds its containers again by their labels, and
// every other method then accepts the IDs it returns (re-attach).
type Lister interface {
	// List returns the instances whose labels include every given label
	// (nil or empty matches all instances of this executor).
	List(ctx context.Context, labels map[string]string) ([]Instance, error)
}

// Pauser is implemented by executors that can freeze and thaw an instance.
// A timeout keeps running while paused.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// Execer is implemented by executors that can run another command inside a
// running instance, e.g. for health checks.
type Execer interface {
	// Exec runs cmd in the instance, writes its output and returns its exit
	// code once it has ended.
	Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (exitCode int, err error)
}

// Statser is implemented by executors that can measure a running instance.
type Statser interface {
	Stats(ctx context.Context, id string) (Usage, error)
}

// SubnetAttacher is implemented by executors whose instances outlive dms
// but whose subnet interface does not (docker: the TUN in the container's
// network namespace ends with the process that holds it). Start attaches
// a new instance itself; after a restart, the caller calls AttachSubnet
// for each running instance it re-attaches to whose spec had a Subnet.
type SubnetAttacher interface {
	AttachSubnet(ctx context.Context, id string, subnet *Subnet) error
}

// Instance describes one instance, as List returns it.
type Instance struct {
	ID        string
	State     State
	Labels    map[string]string
	StartedAt time.Time
	// Ports are the published ports with the host port actually bound.
	Ports []Port
}

// State is where an instance is in its life.
type State string

// The states of an instance.
const (
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateExited  State = "exited"
)
