//go:build linux

package wasm

import (
	"runtime"
	"testing"
)

// TestThreadCPUOf reads this thread's CPU clock by its ID, as Stats reads
// a module's thread from another one, and checks it against the thread's
// own clock read before and after.
func TestThreadCPUOf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; threadCPU() < 20e6 && i < 1e9; i++ { // use some CPU
	}
	before := threadCPU()
	got, ok := threadCPUOf(threadID())
	after := threadCPU()
	if !ok || got < before || got > after {
		t.Errorf("threadCPUOf(self) = %v, %v; want between %v and %v", got, ok, before, after)
	}
	if _, ok := threadCPUOf(1 << 22); ok { // above the largest pid_max
		t.Error("threadCPUOf(a thread that does not exist) succeeded")
	}
}
