package wasm_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/executor/internal/testbuild"
	"github.com/dmsnet/dms/internal/executor/wasm"
)

// workload is the test workload compiled for wasip1, built by TestMain;
// native is the same program built for this machine (a benchmark anchor).
var (
	workload []byte
	native   string
)

// cacheDir is the compilation cache the tests share, kept across runs:
// compiling the Go workload takes seconds (tens of seconds with -race).
var cacheDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "dms-wasm-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		path, err := testbuild.Go(dir, testbuild.Workload, "wasip1", "wasm", "workload.wasm")
		if err == nil {
			workload, err = os.ReadFile(path)
		}
		if err == nil {
			native, err = testbuild.Go(dir, testbuild.Workload, runtime.GOOS, runtime.GOARCH, "workload")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if cacheDir, err = os.UserCacheDir(); err != nil {
			cacheDir = dir
		}
		cacheDir = filepath.Join(cacheDir, "dms-test", "wazero")
		return m.Run()
	}())
}

func spec(steps ...string) executor.Spec {
	return executor.Spec{Module: workload, Command: append([]string{"workload"}, steps...)}
}

func newExecutor(t testing.TB, cfg wasm.Config) *wasm.Executor {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	ex, err := wasm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

func TestConformance(t *testing.T) {
	executortest.Conformance(t, executortest.Harness{
		Executor: newExecutor(t, wasm.Config{}),
		Spec:     spec,
		New:      func(t *testing.T) executor.Executor { return newExecutor(t, wasm.Config{}) },
	})
}

func run(t *testing.T, ex *wasm.Executor, s executor.Spec) (executor.Result, string, string) {
	t.Helper()
	id, err := ex.Start(t.Context(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer ex.Remove(t.Context(), id)
	res, err := ex.Wait(t.Context(), id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var out, errb bytes.Buffer
	ex.Logs(t.Context(), id, executor.LogOptions{}, &out, &errb)
	return res, out.String(), errb.String()
}

func TestMemoryLimit(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	for _, c := range []struct {
		name   string
		alloc  string
		memory int
		reason executor.Reason
	}{
		{"within the limit", "alloc=16", 64 << 20, executor.ReasonExited},
		{"past the limit", "alloc=128", 64 << 20, executor.ReasonOOMKilled},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec(c.alloc)
			s.Resources.Memory = 64 << 20
			res, out, stderr := run(t, ex, s)
			if res.Reason != c.reason {
				t.Errorf("Wait = %s %d (%s), want %s; stdout %q stderr %.200q", res.Reason, res.ExitCode, res.Error, c.reason, out, stderr)
			}
			if res.Usage.MemoryPeak == 0 || res.Usage.MemoryPeak > 64<<20 {
				t.Errorf("peak memory %s, want within (0, 64MiB]", res.Usage.MemoryPeak)
			}
		})
	}
}

func TestMemoryRefusedAtStart(t *testing.T) {
	ex := newExecutor(t, wasm.Config{MaxMemoryPages: 1024}) // 64 MiB
	s := spec("print=x")
	s.Resources.Memory = 128 << 20
	if _, err := ex.Start(t.Context(), s); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), "resources.memory") {
		t.Errorf("Start over the provider's limit = %v, want a resources.memory problem", err)
	}
	s.Resources.Memory = 64 << 10 // one page: less than a Go module's initial memory
	if _, err := ex.Start(t.Context(), s); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), "needs at least") {
		t.Errorf("Start below the module's minimum = %v, want a 'needs at least' problem", err)
	}
}

func TestDeadline(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	s := spec("tick=100x100ms")
	s.Timeout = 500 * time.Millisecond
	res, out, _ := run(t, ex, s)
	if res.Reason != executor.ReasonTimedOut {
		t.Errorf("Wait = %s (%s), want timed-out", res.Reason, res.Error)
	}
	if ran := res.FinishedAt.Sub(res.StartedAt); ran > 1500*time.Millisecond {
		t.Errorf("ran %v with a 500ms timeout", ran)
	}
	if !strings.HasPrefix(out, "tick 1\n") || strings.Contains(out, "tick 10\n") {
		t.Errorf("stdout = %q: want the first ticks only", out)
	}
}

// A busy loop without host calls must end at the deadline too.
func TestDeadlineBusyLoop(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	s := executor.Spec{Module: mustModule(t, loopModule), Command: []string{"loop"}, Timeout: 300 * time.Millisecond}
	res, _, _ := run(t, ex, s)
	if res.Reason != executor.ReasonTimedOut || res.FinishedAt.Sub(res.StartedAt) > time.Second {
		t.Errorf("Wait = %s after %v, want timed-out after ~300ms", res.Reason, res.FinishedAt.Sub(res.StartedAt))
	}
}

func TestRefusedSpecs(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		edit  func(*executor.Spec)
		field string
	}{
		{"image instead of module", func(s *executor.Spec) { s.Module, s.Image = nil, "alpine" }, "module"},
		{"ports", func(s *executor.Spec) { s.Ports = []executor.Port{{Guest: 80}} }, "ports"},
		{"network", func(s *executor.Spec) { s.Network = executor.NetworkHost }, "network"},
		{"subnet", func(s *executor.Spec) {
			s.Subnet = &executor.Subnet{Addr: netip.MustParsePrefix("10.77.0.2/24"), DNS: netip.MustParseAddr("10.77.0.1")}
		}, "subnet"},
		{"gpus", func(s *executor.Spec) { s.Resources.GPUs = append(s.Resources.GPUs, gpu()) }, "resources.gpus"},
		{"missing mount source", func(s *executor.Spec) {
			s.Mounts = []executor.Mount{{Source: filepath.Join(dir, "nope"), Target: "/x"}}
		}, "mounts[0].source"},
		{"foreign import", func(s *executor.Spec) { s.Module = mustModule(t, importModule) }, "module"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec("print=x")
			c.edit(&s)
			if _, err := ex.Start(t.Context(), s); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), c.field+":") {
				t.Errorf("Start = %v, want a %s problem", err, c.field)
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		s := spec()
		s.Module = []byte("#!/bin/sh\necho hi\n")
		if _, err := ex.Start(t.Context(), s); !errors.Is(err, executor.ErrImage) {
			t.Errorf("Start = %v, want ErrImage", err)
		}
	})
}

func TestTrapIsFailed(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	res, _, _ := run(t, ex, executor.Spec{Module: mustModule(t, trapModule), Command: []string{"trap"}})
	if res.Reason != executor.ReasonFailed || res.ExitCode != -1 || !strings.Contains(res.Error, "unreachable") {
		t.Errorf("Wait = %+v, want failed with an unreachable trap", res)
	}
}

func TestCloseEndsInstances(t *testing.T) {
	ex, err := wasm.New(wasm.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	id, err := ex.Start(t.Context(), spec("sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := ex.Wait(t.Context(), id); err != nil || res.Reason != executor.ReasonCancelled {
		t.Errorf("Wait after Close = %+v, %v; want cancelled", res, err)
	}
	if _, err := ex.Start(t.Context(), spec()); !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("Start after Close = %v, want ErrUnavailable", err)
	}
}

// The compiled module is kept in memory: a second start skips compilation
// and loading. (BenchmarkStart measures the ≤ 20 ms target without -race.)
func TestWarmStart(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	runOnce := func() time.Duration {
		began := time.Now()
		res, out, _ := run(t, ex, spec("print=hi"))
		if res.ExitCode != 0 || out != "hi\n" {
			t.Fatalf("run = %+v, %q", res, out)
		}
		return time.Since(began)
	}
	first := runOnce()
	warm := runOnce()
	t.Logf("start-to-exit: first %v (from the disk cache or compiled), warm %v", first, warm)
	if warm > 500*time.Millisecond {
		t.Errorf("warm start-to-exit took %v", warm)
	}
}

func TestCacheDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		ex := newExecutor(t, wasm.Config{CacheDir: dir})
		res, _, _ := run(t, ex, executor.Spec{Module: mustModule(t, exitModule), Command: []string{"exit"}})
		if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
			t.Fatalf("run %d: %+v", i, res)
		}
		ex.Close()
		if entries, _ := os.ReadDir(dir); len(entries) == 0 {
			t.Fatalf("cache dir %s is empty after run %d", dir, i)
		}
	}
}
