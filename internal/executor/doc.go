// Package executor is the contract between dms and the things that run a
// workload: a Docker container (package docker), a QEMU microVM (package vm)
// or a WebAssembly module (package wasm). The orchestrator and the
// allocation actor speak only to this contract; the node's composition root
// builds the concrete executors from their Config and hands them over as
// Executor values.
//
// # Usage
//
// An allocation describes its workload as a Spec, starts it, streams its logs
// and waits for its Result:
//
//	id, err := ex.Start(ctx, executor.Spec{
//		Image:     "alpine:3.20",
//		Command:   []string{"echo", "hello"},
//		Resources: executor.Resources{CPU: 500, Memory: 256 << 20},
//		Labels:    map[string]string{executor.LabelAllocation: allocID},
//		Timeout:   10 * time.Minute,
//	})
//	if err != nil {
//		return err // errors.Is(err, executor.ErrInvalidSpec) for a bad spec
//	}
//	defer ex.Remove(context.WithoutCancel(ctx), id)
//	go ex.Logs(ctx, id, executor.LogOptions{Follow: true}, stdout, stderr)
//	res, err := ex.Wait(ctx, id)
//	// res.Reason is exited, oom-killed, timed-out, cancelled or failed.
//
// Start returns once the workload runs; it does not wait for the workload to
// end. The workload's life is independent of the ctx given to Start: it ends
// when the workload exits, when Spec.Timeout passes, or when Stop or Remove
// is called. Wait may be called any number of times, also concurrently, and
// returns the same Result until Remove.
//
// # Extras
//
// Features that not every backend has are optional interfaces found by type
// assertion, as with http.Flusher: Lister (find instances by label, also
// after a daemon restart), Pauser, Execer and Statser. The package doc of
// each backend says which it implements.
//
// # Errors
//
// Methods return ErrNotFound for an ID the executor does not know (never
// started, removed, or not created by dms), ErrInvalidSpec (as a
// *ValidationError listing every problem) when a Spec is refused before
// anything starts, ErrImage when the image or module cannot be obtained, and
// ErrUnavailable when the backend itself is missing (no Docker daemon, no
// QEMU) or the executor was closed. A workload that fails is not an error:
// it is a Result.
//
// # Testing
//
// Package executortest has an in-process executor that runs a tiny scripted
// workload, for orchestration tests, and the conformance suite every backend
// passes.
package executor
