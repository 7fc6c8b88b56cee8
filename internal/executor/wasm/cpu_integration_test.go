//go:build integration && linux

package wasm_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
	"github.com/dmsnet/dms/internal/match"
)

// processCPU is the CPU time this process has used, user and system, as
// the kernel counts it.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestWasmCPULimit runs a module that keeps a core busy for a few seconds
// with a CPU limit below one core, and checks with getrusage that the whole
// test process used no more than the limit plus a margin over the run.
// The red team's module asked for 0.5 cores and used 0.85.
func TestWasmCPULimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	ex := newExecutor(t, wasm.Config{RequireCPULimit: true})
	run(t, ex, spec("print=warm")) // compile first: measure only the run
	const spin = 3 * time.Second
	for _, tc := range []struct {
		cpu    match.MilliCPU
		margin float64 // cores over the limit the process may use
	}{
		{500, 0.1},
		{250, 0.1},
	} {
		t.Run(tc.cpu.String(), func(t *testing.T) {
			s := spec("spin=" + spin.String())
			s.Resources.CPU = tc.cpu
			cpu0, wall0 := processCPU(t), time.Now()
			res, out, stderr := run(t, ex, s)
			cpu, wall := processCPU(t)-cpu0, time.Since(wall0)
			if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
				t.Fatalf("Wait = %s %d (%s); stdout %q stderr %.200q", res.Reason, res.ExitCode, res.Error, out, stderr)
			}
			used := cpu.Seconds() / wall.Seconds()
			limit := float64(tc.cpu) / 1000
			t.Logf("cpu %s: process used %.3f cores over %s (%s CPU; module thread %s); %s", tc.cpu, used, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), res.Usage.CPUTime.Round(time.Millisecond), out)
			if used > limit+tc.margin {
				t.Errorf("a module limited to %s used %.2f cores over %s, want at most %.2f", tc.cpu, used, wall.Round(time.Millisecond), limit+tc.margin)
			}
			if m := res.Usage.CPUTime.Seconds() / wall.Seconds(); m > limit+tc.margin {
				t.Errorf("Result.Usage.CPUTime %s over %s = %.2f cores, want at most %.2f", res.Usage.CPUTime, wall, m, limit+tc.margin)
			}
		})
	}
}
