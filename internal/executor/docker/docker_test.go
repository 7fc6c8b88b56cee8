//go:build integration

package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/poll"
)

func newExecutor(t testing.TB, cfg docker.Config) *docker.Executor {
	t.Helper()
	requireDocker(t)
	if cfg.Labels == nil {
		cfg.Labels = runLabel
	}
	ex, err := docker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

func rawClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// run starts spec, waits for it and returns its result and logs; the
// container is removed afterwards.
func run(t *testing.T, ex *docker.Executor, spec executor.Spec) (executor.Result, string, string) {
	t.Helper()
	ctx := t.Context()
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer ex.Remove(context.Background(), id)
	res, err := ex.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var out, errb bytes.Buffer
	if err := ex.Logs(ctx, id, executor.LogOptions{}, &out, &errb); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return res, out.String(), errb.String()
}

func TestConformance(t *testing.T) {
	executortest.Conformance(t, executortest.Harness{
		Executor: newExecutor(t, docker.Config{}),
		Spec:     workload,
		New:      func(t *testing.T) executor.Executor { return newExecutor(t, docker.Config{}) },
	})
}

func TestOOMKilled(t *testing.T) {
	ex := newExecutor(t, docker.Config{})
	spec := workload("alloc=256", "print=survived")
	spec.Resources.Memory = 64 << 20
	res, out, _ := run(t, ex, spec)
	if res.Reason != executor.ReasonOOMKilled {
		t.Errorf("Wait = %s %d (%s), want oom-killed", res.Reason, res.ExitCode, res.Error)
	}
	if strings.Contains(out, "survived") {
		t.Errorf("the workload survived allocating 256 MiB in 64 MiB: %q", out)
	}
}

func TestPIDsLimitHolds(t *testing.T) {
	ex := newExecutor(t, docker.Config{})
	// Fork 64 sleepers in a subshell (ash gives up at the first failed
	// fork), then read the cgroup with builtins only: no fork is left.
	spec := shell(`(for i in $(seq 64); do sleep 30 & done) 2>/tmp/err
		d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup
		read cur < $d/pids.current; read max < $d/pids.max; read first < /tmp/err
		echo "$cur $max $first"`)
	spec.Resources.PIDs = 16
	res, out, stderr := run(t, ex, spec)
	if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
		t.Fatalf("Wait = %+v; stderr %q", res, stderr)
	}
	var cur, max int
	if _, err := fmt.Sscanf(out, "%d %d", &cur, &max); err != nil {
		t.Fatalf("cannot read %q: %v", out, err)
	}
	if max != 16 || cur > 16 || !strings.Contains(out, "can't fork") {
		t.Errorf("pids.max %d, pids.current %d, output %q; want max 16, current ≤ 16 and a failed fork", max, cur, out)
	}
}

func TestCPUAndMemoryLimitsInCgroup(t *testing.T) {
	ex := newExecutor(t, docker.Config{})
	spec := shell(`cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max`)
	spec.Resources.CPU = 500 // half a core
	spec.Resources.Memory = 96 << 20
	res, out, stderr := run(t, ex, spec)
	if res.ExitCode != 0 {
		t.Fatalf("Wait = %+v; stderr %q", res, stderr)
	}
	got := strings.Join(strings.Fields(out), " ")
	if got != "50000 100000 100663296" {
		t.Errorf("cgroup quota, period, memory = %q, want %q", got, "50000 100000 100663296")
	}
}

func TestHardening(t *testing.T) {
	ex := newExecutor(t, docker.Config{})
	ctx := t.Context()
	spec := workload("sleep=1h")
	spec.Privileged = true
	if _, err := ex.Start(ctx, spec); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), "privileged:") {
		t.Errorf("privileged Start = %v, want refused", err)
	}
	spec.Privileged = false
	spec.Network = executor.NetworkHost
	if _, err := ex.Start(ctx, spec); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), "network:") {
		t.Errorf("host network Start = %v, want refused", err)
	}
	spec.Network = ""
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	info, err := rawClient(t).ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := info.Container.HostConfig
	if hc.Privileged || strings.Join(hc.CapDrop, ",") != "CAP_ALL" && strings.Join(hc.CapDrop, ",") != "ALL" ||
		len(hc.SecurityOpt) != 1 || !strings.HasPrefix(hc.SecurityOpt[0], "no-new-privileges") || hc.Init == nil || !*hc.Init {
		t.Errorf("host config: privileged %v, cap drop %v, security %v, init %v", hc.Privileged, hc.CapDrop, hc.SecurityOpt, hc.Init)
	}
	if info.Container.Config.Labels[executor.LabelManaged] != "true" {
		t.Errorf("labels = %v", info.Container.Config.Labels)
	}

}

func TestReattachAfterRestart(t *testing.T) {
	ctx := t.Context()
	first := newExecutor(t, docker.Config{})
	// it must outlive the second start and the restart: a start can wait
	// seconds for the daemon, busy with the next network sandbox
	spec := workload("tick=20x300ms", "exit=5")
	spec.Labels = map[string]string{executor.LabelAllocation: "reattach"}
	id, err := first.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Remove(context.Background(), id)
	timed := workload("sleep=1h")
	timed.Labels = map[string]string{executor.LabelAllocation: "reattach-timeout"}
	timed.Timeout = 3 * time.Second
	tid, err := first.Start(ctx, timed)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Remove(context.Background(), tid)
	first.Close() // the daemon restarts: containers keep running

	second := newExecutor(t, docker.Config{})
	found, err := second.List(ctx, map[string]string{executor.LabelAllocation: "reattach"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != id || found[0].State != executor.StateRunning {
		t.Fatalf("List after restart = %+v, want the running %s", found, id)
	}
	var out bytes.Buffer
	if err := second.Logs(ctx, found[0].ID, executor.LogOptions{Follow: true}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "tick 20\n") {
		t.Errorf("followed logs after re-attach = %q", out.String())
	}
	if res, err := second.Wait(ctx, id); err != nil || res.Reason != executor.ReasonExited || res.ExitCode != 5 {
		t.Errorf("Wait after re-attach = %+v, %v; want exited 5", res, err)
	}
	// The timeout survives the restart.
	res, err := second.Wait(ctx, tid)
	if err != nil || res.Reason != executor.ReasonTimedOut {
		t.Errorf("Wait on the re-attached container with a timeout = %+v, %v; want timed-out", res, err)
	}
	if err := second.Remove(ctx, id); err != nil {
		t.Error(err)
	}
	if err := second.Remove(ctx, tid); err != nil {
		t.Error(err)
	}
}

func TestForeignContainersAreNotTouched(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	other := newExecutor(t, docker.Config{Labels: map[string]string{"dms.test": "another-node"}})
	id, err := other.Start(ctx, workload("sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Remove(context.Background(), id)
	if err := ex.Stop(ctx, id, 0); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("Stop of another node's container = %v, want ErrNotFound", err)
	}
	if got, _ := ex.List(ctx, nil); len(got) != 0 {
		t.Errorf("List = %+v, want none of another node's", got)
	}
}

func TestAnonymousVolumesRemoved(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	cli := rawClient(t)
	id, err := ex.Start(ctx, workload("write=/data/x:1", "exit=0"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var volumes []string
	for _, m := range info.Container.Mounts {
		if m.Type == "volume" {
			volumes = append(volumes, m.Name)
		}
	}
	if len(volumes) != 1 {
		t.Fatalf("mounts %+v: want the image's anonymous volume", info.Container.Mounts)
	}
	ex.Wait(ctx, id)
	if err := ex.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after Remove: %v", err)
	}
	if _, err := cli.VolumeInspect(ctx, volumes[0], client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume %s still there after Remove: %v", volumes[0], err)
	}
}

func TestAbsentImageNoRegistry(t *testing.T) {
	var progress []docker.PullProgress
	ex := newExecutor(t, docker.Config{OnPull: func(p docker.PullProgress) { progress = append(progress, p) }})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const image = "dms-test/absent-image:does-not-exist"
	_, err := ex.Start(ctx, executor.Spec{Image: image, Command: []string{"/x"}})
	if !errors.Is(err, executor.ErrImage) || !strings.Contains(err.Error(), image) {
		t.Errorf("Start with an absent image = %v, want ErrImage naming %s", err, image)
	}
	t.Logf("error: %v (%d progress messages)", err, len(progress))
}

func TestExecPauseStats(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	id, err := ex.Start(ctx, workload("alloc=32", "print=ready", "sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	waitFor(t, ex, id, "ready")

	var out bytes.Buffer
	code, err := ex.Exec(ctx, id, []string{"/workload", "print=ok", "exit=4"}, &out, nil)
	if err != nil || code != 4 || out.String() != "ok\n" {
		t.Errorf("Exec = %d, %v, %q; want 4, nil, ok", code, err, out.String())
	}
	u, err := ex.Stats(ctx, id)
	if err != nil || u.Memory < 32<<20 || u.PIDs < 1 {
		t.Errorf("Stats = %+v, %v; want ≥ 32MiB", u, err)
	}
	if err := ex.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l, _ := ex.List(ctx, nil); !hasState(l, id, executor.StatePaused) {
		t.Errorf("List after Pause = %+v", l)
	}
	if err := ex.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l, _ := ex.List(ctx, nil); !hasState(l, id, executor.StateRunning) {
		t.Errorf("List after Resume = %+v", l)
	}
	if err := ex.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	res, _ := ex.Wait(ctx, id)
	if res.Usage.MemoryPeak < 32<<20 || res.Usage.CPUTime == 0 {
		t.Errorf("Result usage = %+v, want a peak ≥ 32MiB and some CPU time", res.Usage)
	}
}

func TestPortsPublished(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	spec := workload("sleep=1h")
	spec.Ports = []executor.Port{{Guest: 8080}}
	spec.Labels = map[string]string{executor.LabelAllocation: "ports"}
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	l, err := ex.List(ctx, spec.Labels)
	if err != nil || len(l) != 1 || len(l[0].Ports) == 0 || l[0].Ports[0].Guest != 8080 || l[0].Ports[0].Host == 0 {
		t.Errorf("List = %+v, %v; want guest port 8080 on a host port", l, err)
	}
}

func hasState(l []executor.Instance, id string, s executor.State) bool {
	for _, in := range l {
		if in.ID == id {
			return in.State == s
		}
	}
	return false
}

func waitFor(t *testing.T, ex executor.Executor, id, s string) {
	t.Helper()
	poll.Eventually(t, 30*time.Second, fmt.Sprintf("%q in the logs of %s", s, id), func() bool {
		var out bytes.Buffer
		ex.Logs(t.Context(), id, executor.LogOptions{}, &out, nil)
		return strings.Contains(out.String(), s)
	})
}

// TestFollowKeepsTheLastLineWithoutNewline: a follow of the logs hands over
// the output's last line even when it lacks its newline (the json-file
// driver keeps it from followers).
func TestFollowKeepsTheLastLineWithoutNewline(t *testing.T) {
	ex := newExecutor(t, docker.Config{})
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "n.txt"), []byte("13 21"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := workload("cat=/in/n.txt", "eprint=after")
	spec.Mounts = []executor.Mount{{Source: in, Target: "/in", ReadOnly: true}}
	id, err := ex.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	var out, errb bytes.Buffer
	if err := ex.Logs(t.Context(), id, executor.LogOptions{Follow: true}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "13 21" || errb.String() != "after\n" {
		t.Fatalf("followed stdout %q, stderr %q; want %q and %q", out.String(), errb.String(), "13 21", "after\n")
	}
}
