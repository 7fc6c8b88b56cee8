package docker

import (
	"context"
	"syscall"
	"testing"
)

// HoldJobNetwork sets the job network up with ex's firewall rules and keeps
// every other process on this machine from setting it up again — with its
// own block list — until the test ends. The rules are the machine's, shared
// by every executor; a test asserting what a given block list lets through
// holds them, or a test package running beside it with the default list
// can replace them halfway (CI saw the host blocked under an operator's
// list without "host").
//
// ex's own starts keep working: they take the lock shared, as the hold
// does. Call it after newExecutor, so that the hold ends (a cleanup runs
// before those registered earlier) before ex.Close takes the lock
// exclusive.
func HoldJobNetwork(t testing.TB, ex *Executor) {
	t.Helper()
	ex.netMu.Lock() // before the lock, as jobNetwork takes them
	l, err := lockNet(syscall.LOCK_EX)
	if err != nil {
		ex.netMu.Unlock()
		t.Fatal(err)
	}
	err = ex.setupJobNetwork(t.Context())
	if err == nil {
		// flock(2) does not promise that converting a lock is atomic; on
		// Linux an exclusive lock turned shared is, as jobNetwork relies
		// on too (the kernel swaps them under one spinlock, and a waiter
		// for an exclusive lock woken by the swap finds the shared one).
		err = l.set(syscall.LOCK_SH)
	}
	ex.netMu.Unlock()
	if err != nil {
		l.unlock()
		t.Fatal(err)
	}
	t.Cleanup(l.unlock)
}

// WaitProgram and SandboxTar expose the sandbox's program and image.
var (
	WaitProgram = waitProgram
	SandboxTar  = sandboxTar
)

// ReadySandboxes returns the IDs of ex's ready network sandboxes for
// plain jobs.
func ReadySandboxes(ex *Executor) []string { return readyOf(ex, plainBox) }

// ReadySubnetSandboxes returns the IDs of ex's ready network sandboxes for
// jobs with a subnet.
func ReadySubnetSandboxes(ex *Executor) []string { return readyOf(ex, subnetBox) }

func readyOf(ex *Executor, kind boxKind) []string {
	ex.pool.mu.Lock()
	defer ex.pool.mu.Unlock()
	return append([]string(nil), ex.pool.ready[kind]...)
}

// StartPlainSandbox starts one sandbox for plain jobs outside the pool and
// returns its ID.
func StartPlainSandbox(ctx context.Context, ex *Executor) (string, error) {
	return ex.startSandbox(ctx, plainBox)
}

// RemoveSandbox removes one sandbox of ex.
func RemoveSandbox(ex *Executor, id string) { ex.removeSandbox(id) }
