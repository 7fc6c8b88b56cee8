//go:build integration

package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor/docker"
)

// cgroupCPU reads container id's CPU time from its cgroup by the usual
// layouts, apart from the executor's own lookup (false: not found).
func cgroupCPU(id string) (time.Duration, bool) {
	for _, pattern := range []string{
		"/sys/fs/cgroup/unified/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat",
	} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					if us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
						return time.Duration(us) * time.Microsecond, true
					}
				}
			}
		}
	}
	return 0, false
}

// tick is the longest scheduler tick (HZ=100).
const tick = 10 * time.Millisecond

// TestStatsFromCgroup checks Stats of a CPU-bound container against its
// cgroup's counter read just after (never above it, and behind it by no
// more than the time between the two reads and a tick), and that the Result counts
// at least what the cgroup said before the stop.
func TestStatsFromCgroup(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	spec := shell("while :; do :; done")
	spec.Resources.CPU = 1000
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	if _, ok := cgroupCPU(id); !ok {
		t.Skip("no cgroup v2 cpu.stat for the container on this host")
	}
	var last time.Duration
	deadline := time.Now().Add(time.Minute)
	for n := 0; last < 300*time.Millisecond || n < 5; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("the container used only %v of CPU in a minute", last)
		}
		t0 := time.Now()
		u, err := ex.Stats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := cgroupCPU(id)
		between := time.Since(t0)
		// The kernel charges a running task's time at its ticks (10 ms at
		// HZ=100): the counter moves in steps of up to one.
		if u.CPUTime > ref || ref-u.CPUTime > between+tick {
			t.Errorf("Stats CPU %v, cgroup %v read %v later", u.CPUTime, ref, between)
		}
		if u.CPUTime < last || u.Memory == 0 || u.PIDs < 1 {
			t.Errorf("Stats = %+v after a reading of %v CPU", u, last)
		}
		last = u.CPUTime
	}
	before, _ := cgroupCPU(id)
	if err := ex.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	res, err := ex.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("last reading %v, cgroup before the stop %v, Result %v", last, before, res.Usage.CPUTime)
	if res.Usage.CPUTime < before {
		t.Errorf("Result CPU %v is below the cgroup's %v before the stop", res.Usage.CPUTime, before)
	}
}
