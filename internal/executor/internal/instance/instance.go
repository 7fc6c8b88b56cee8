// Package instance keeps the instances of an in-process executor (wasm, vm
// and the fake in executortest): it hands out their IDs, holds them in one
// guarded table, records how each one ended, and implements the parts of
// the executor.Executor contract that need nothing else — Wait, Stop, Logs
// and Remove — and an idempotent Close. An executor keeps only what is its
// own: how to start a workload, how to end it, and what its Result says.
//
// # Usage
//
// The executor's instance type embeds *Instance, made by New with the
// executor's way of ending the workload; a Table holds them:
//
//	type vmInstance struct {
//		*instance.Instance
//		cmd *exec.Cmd
//	}
//
//	instances := instance.NewTable[*vmInstance]("vm") // IDs "vm-…", errors "vm: …"
//
//	// In Start:
//	in := &vmInstance{cmd: cmd}
//	in.Instance = instance.New(cfg.LogLimit, func(grace time.Duration) { go in.end(grace) })
//	id, err := instances.Add(in) // ErrUnavailable once the table is closed
//	go func() {
//		// run the workload, writing to in.Stdout() and in.Stderr()
//		in.Finish(result) // once, when it has ended
//	}()
//
//	// The contract's other methods delegate:
//	func (e *Executor) Wait(ctx context.Context, id string) (executor.Result, error) {
//		return e.instances.Wait(ctx, id)
//	}
//
// # Life of an instance
//
// An instance runs from Add until its executor calls Finish with its
// Result. Stop, Remove and Close end it early through the stop function
// given to New; the executor's run then calls Finish as always (with
// ReasonCancelled). After Finish the Result and the logs stay readable
// until Remove, which is the only way out of the table: Close ends the
// instances but keeps them.
//
// # Concurrency
//
// A Table and its instances are safe for concurrent use. The stop function
// may be called from any goroutine, more than once, and also after the
// instance has ended; it must not block (start a slow ending in a goroutine
// of its own). Nothing here starts a goroutine or reads a clock, so an
// executor built on it runs inside a testing/synctest bubble.
package instance

import (
	"io"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/logbuf"
)

// Instance is what every in-process executor records about one instance:
// its ID, its logs, how to end it and how it ended. An executor's own
// instance type embeds *Instance, which makes it an Entry of a Table.
type Instance struct {
	id   string // set by Table.Add, before the instance is shared
	logs *logbuf.Buffer
	stop func(grace time.Duration)
	done chan struct{} // closed by Finish

	// result is written once, by Finish, before done is closed, and read
	// only after done is closed: the channel orders the two, no lock needed.
	result executor.Result
}

// New returns a running instance whose logs keep up to logLimit bytes per
// stream (0: logbuf.DefaultLimit). stop asks the workload to end, killing it
// after grace (0: at once); the Concurrency section of the package doc says
// what it may and may not do.
func New(logLimit int, stop func(grace time.Duration)) *Instance {
	return &Instance{logs: logbuf.New(logLimit), stop: stop, done: make(chan struct{})}
}

// ID returns the ID Table.Add gave the instance ("" before).
func (in *Instance) ID() string { return in.id }

// Stdout returns the writer of the workload's standard output.
func (in *Instance) Stdout() io.Writer { return in.logs.Stdout() }

// Stderr returns the writer of the workload's standard error.
func (in *Instance) Stderr() io.Writer { return in.logs.Stderr() }

// Finish records how the instance ended, closes its logs and wakes every
// Wait. The executor calls it exactly once, when no code of the workload
// runs any more.
func (in *Instance) Finish(res executor.Result) {
	in.result = res
	in.logs.Close()
	close(in.done)
}

// Done returns a channel that is closed once the instance has ended.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Ended reports whether the instance has ended (Finish was called).
func (in *Instance) Ended() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// instance makes *Instance, and every type that embeds it, an Entry.
func (in *Instance) instance() *Instance { return in }
