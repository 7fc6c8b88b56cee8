package vm

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

func rusageSelf(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestProcUsageCountsAllThreads keeps several threads busy and checks that
// procUsage (what Stats reads of QEMU) counts all of them: it falls between
// the process's own rusage before and after.
func TestProcUsageCountsAllThreads(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
			}
		})
	}
	wg.Wait()
	before := rusageSelf(t)
	u, err := procUsage(os.Getpid())
	after := rusageSelf(t)
	if err != nil {
		t.Fatal(err)
	}
	// rusage is itself rounded to the tick: allow one tick per thread.
	if slack := 50 * time.Millisecond; u.CPUTime < before-slack || u.CPUTime > after+slack {
		t.Errorf("procUsage CPU = %v, want between rusage %v and %v", u.CPUTime, before, after)
	}
	if u.Memory == 0 || u.PIDs < 2 {
		t.Errorf("procUsage = %+v, want resident memory and the threads", u)
	}
	if _, ok := processCPU(0); ok {
		t.Error("processCPU(0) succeeded: it would read this process, not pid 0")
	}
}
