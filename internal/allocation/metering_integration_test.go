//go:build integration

package allocation

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	dockerex "github.com/dmsnet/dms/internal/executor/docker"
)

// meterWindow is how long TestMeteringAccuracy's job runs
// (bench/run-metering.sh sets it: -args -duration=60s).
var meterWindow = flag.Duration("duration", 5*time.Second, "TestMeteringAccuracy: how long the CPU-bound job runs")

// busyboxImage imports a FROM-scratch image of the host's static busybox
// (/bin/busybox, Debian's busybox-static) and returns its reference.
func busyboxImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox to build the image from: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("dms-test/meter-busybox:%d", time.Now().UnixNano())
	resp, err := cli.ImageImport(t.Context(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("import busybox: %v", err)
	}
	io.Copy(io.Discard, resp)
	resp.Close()
	t.Cleanup(func() { cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
	return ref
}

// cgroupCPU reads the container's CPU time from its cgroup, found by the
// usual layouts (independently of the executor's own lookup): cgroup v2's
// cpu.stat usage_usec, else v1's cpuacct.usage.
func cgroupCPU(t *testing.T, id string) (time.Duration, string) {
	t.Helper()
	for _, pattern := range []string{
		"/sys/fs/cgroup/unified/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat",
		"/sys/fs/cgroup/*/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/cpu,cpuacct/docker/" + id + "/cpuacct.usage",
	} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if strings.HasSuffix(p, "cpuacct.usage") {
				ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				if err == nil {
					return time.Duration(ns), p
				}
				continue
			}
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					if err == nil {
						return time.Duration(us) * time.Microsecond, p
					}
				}
			}
		}
	}
	t.Fatalf("no cgroup cpu file for container %s", id)
	return 0, ""
}

// TestMeteringAccuracy runs a CPU-bound busybox job (one core) on the real
// Docker executor through the allocation Manager for -duration, and
// compares the CPU time Manager.Usage meters with the container cgroup's
// own counter read at the same moments (start and end of the window):
// they must agree within 2 %. The anchor is the window's wall time times
// the one core the job may use. After the stop, the final metered CPU
// must not be below the last cgroup reading.
func TestMeteringAccuracy(t *testing.T) {
	cli, err := client.New()
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{})
		cancel()
	}
	if err != nil {
		t.Skipf("no Docker daemon: %v", err)
	}
	defer cli.Close()
	image := busyboxImage(t, cli)
	ex, err := dockerex.New(dockerex.Config{
		Labels:        map[string]string{"dms.test": fmt.Sprintf("meter-%d", time.Now().UnixNano())},
		BlockNetworks: []string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })

	h := newHarness(t)
	h.m.Close(context.Background())
	h.m = h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Docker: ex})
	spec := deployproto.AllocationSpec{
		Name:      "spin",
		Type:      ensemble.Service,
		Executor:  ensemble.Docker,
		Execution: ensemble.Execution{Image: image, Cmd: []string{"/bin/sh", "-c", "while :; do :; done"}},
		Restart:   ensemble.Restart{Policy: ensemble.Never},
	}
	spec.Resources.CPU = 1000
	spec.Resources.RAM = 64 << 20
	hd := h.create(h.m, "spin", "r-spin", spec)
	t.Cleanup(func() { h.m.Revert(context.Background(), "r-spin") })
	h.mustStart(hd)
	h.awaitState("spin", deployproto.AllocRunning)
	id := h.instanceOf("spin")

	read := func() (contract.Usage, time.Duration, time.Time) {
		u, _, err := h.m.Usage(t.Context(), "r-spin")
		if err != nil {
			t.Fatalf("Usage: %v", err)
		}
		ref, _ := cgroupCPU(t, id)
		return u, ref, time.Now()
	}
	u0, ref0, t0 := read()
	_, file := cgroupCPU(t, id)
	select { // the measurement window
	case <-time.After(*meterWindow):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	u1, ref1, t1 := read()

	metered := time.Duration(u1.CPUMicros-u0.CPUMicros) * time.Microsecond
	kernel := ref1 - ref0
	wall := t1.Sub(t0)
	errPct := 100 * math.Abs(metered.Seconds()-kernel.Seconds()) / kernel.Seconds()
	totalErr := 100 * math.Abs(float64(u1.CPUMicros)/1e6-ref1.Seconds()) / ref1.Seconds()
	t.Logf("METERING window=%.3fs metered_cpu_s=%.6f cgroup_cpu_s=%.6f error_pct=%.4f | since start: metered=%.6f cgroup=%.6f error_pct=%.4f | anchor wall×1core=%.3fs (job got %.1f%% of a core) | memory=%d byte·s run=%dms | %s",
		wall.Seconds(), metered.Seconds(), kernel.Seconds(), errPct,
		float64(u1.CPUMicros)/1e6, ref1.Seconds(), totalErr,
		wall.Seconds(), 100*kernel.Seconds()/wall.Seconds(), u1.MemoryByteSeconds, u1.WallMillis, file)
	if kernel <= 0 {
		t.Fatalf("the job used no CPU in the window (cgroup %v to %v)", ref0, ref1)
	}
	if errPct > 2 {
		t.Errorf("metered CPU %v over the window, cgroup %v: error %.3f %%, want at most 2 %%", metered, kernel, errPct)
	}
	if totalErr > 2 {
		t.Errorf("metered CPU %v since the start, cgroup %v: error %.3f %%, want at most 2 %%", time.Duration(u1.CPUMicros)*time.Microsecond, ref1, totalErr)
	}
	if u1.WallMillis < uint64(wall.Milliseconds()) || u1.MemoryByteSeconds == 0 {
		t.Errorf("Usage = %+v: want a run of at least the window's %v and some memory", u1, wall)
	}

	last, _ := cgroupCPU(t, id)
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	h.awaitState("spin", deployproto.AllocStopped)
	final, ended, err := h.m.Usage(t.Context(), "r-spin")
	if err != nil || !ended {
		t.Fatalf("Usage after the stop = %+v, ended %v, %v; want ended", final, ended, err)
	}
	finalCPU := time.Duration(final.CPUMicros) * time.Microsecond
	t.Logf("METERING final metered_cpu_s=%.6f last_cgroup_read_s=%.6f (before the stop) diff_ms=%.3f", finalCPU.Seconds(), last.Seconds(), (finalCPU-last).Seconds()*1000)
	// The cgroup goes with the container: its last samples, every 100 ms,
	// are what a run's end adds.
	if finalCPU < last-100*time.Millisecond || final.CPUMicros < u1.CPUMicros {
		t.Errorf("final metered CPU %v is more than 100 ms below the cgroup's %v read before the stop (or below the last Usage, %+v)", finalCPU, last, u1)
	}
}
