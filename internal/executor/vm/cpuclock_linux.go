package vm

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the CPU time of process pid, all its threads (those that
// ended included), from its CPU clock (MAKE_PROCESS_CPUCLOCK(pid,
// CPUCLOCK_SCHED) in the kernel's posix-timers.h): nanoseconds, where
// /proc/<pid>/stat counts 10 ms ticks.
func processCPU(pid int) (time.Duration, bool) {
	if pid <= 0 || pid >= 1<<22 { // 0 would be this process; pid_max is at most 2^22
		return 0, false
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^uint32(pid)<<3|2), &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
