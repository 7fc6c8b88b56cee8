package vm

import (
	"runtime"
	"sync"
	"time"
)

// tscKHz returns the host's TSC frequency in kHz, measured once, or 0
// where it cannot be measured.
//
// Under TCG the guest's TSC is the host's, and the guest kernel must learn
// its rate: it tries the PIT, which under emulation on a busy host often
// fails ("tsc: Unable to calibrate against PIT"), and then, having no
// HPET or ACPI PM timer on microvm, hangs for good. Telling it the rate
// (tsc_early_khz) skips the calibration.
var tscKHz = sync.OnceValue(func() uint64 {
	if runtime.GOARCH != "amd64" {
		return 0
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, c0 := time.Now(), rdtsc()
	time.Sleep(25 * time.Millisecond)
	c1, t1 := rdtsc(), time.Now()
	if c1 <= c0 {
		return 0
	}
	return (c1 - c0) * uint64(time.Millisecond) / uint64(t1.Sub(t0))
})
