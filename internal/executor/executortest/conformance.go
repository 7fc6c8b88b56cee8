package executortest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

// Harness tells Conformance how to drive one executor.
type Harness struct {
	Executor executor.Executor
	// Spec returns a spec that runs the test workload (package
	// internal/executor/internal/workload, or the fake's script) with the
	// given steps as its arguments.
	Spec func(steps ...string) executor.Spec
	// Boot is how long the backend may take before the workload runs (a
	// VM's boot); timeouts in the tests are stretched by it.
	Boot time.Duration
	// NoMounts skips the mount tests, for a backend without mounts.
	NoMounts bool
	// New returns another executor like Executor, for the tests that close
	// one (it must be an io.Closer, as every concrete executor is); they
	// are skipped when New is nil.
	New func(t *testing.T) executor.Executor
}

// Conformance runs the contract's acceptance tests against h.Executor:
// exit code and logs, logs followed while the workload runs, tail, Stop
// within 2 s, timeout, bad specs refused before anything starts, mounts
// (unless h.NoMounts), unknown IDs, Remove, Remove with a done ctx (it
// returns ctx.Err() and changes nothing), List when the executor is a
// Lister, and on executors from h.New: Close twice (the second returns
// nil, Start then returns ErrUnavailable) and Close while Starts run.
// Subtests run one after another, so timing checks are not disturbed by
// each other.
func Conformance(t *testing.T, h Harness) {
	ex := h.Executor
	ctx := t.Context()

	start := func(t *testing.T, spec executor.Spec) string {
		t.Helper()
		id, err := ex.Start(ctx, spec)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(func() {
			if err := ex.Remove(context.Background(), id); err != nil && !errors.Is(err, executor.ErrNotFound) {
				t.Errorf("Remove(%s): %v", id, err)
			}
		})
		return id
	}
	wait := func(t *testing.T, id string) executor.Result {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, h.Boot+time.Minute)
		defer cancel()
		res, err := ex.Wait(wctx, id)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		return res
	}
	logs := func(t *testing.T, id string, opts executor.LogOptions) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if err := ex.Logs(ctx, id, opts, &out, &errb); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		return out.String(), errb.String()
	}

	t.Run("exit code and logs", func(t *testing.T) {
		before := time.Now()
		id := start(t, h.Spec("print=hello", "eprint=oops", "exit=3"))
		res := wait(t, id)
		if res.Reason != executor.ReasonExited || res.ExitCode != 3 {
			t.Errorf("Wait = %s %d (%s), want exited 3", res.Reason, res.ExitCode, res.Error)
		}
		if res.StartedAt.Before(before.Add(-time.Second)) || res.FinishedAt.Before(res.StartedAt) || res.FinishedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("StartedAt %v, FinishedAt %v: not within the run (began %v)", res.StartedAt, res.FinishedAt, before)
		}
		out, errs := logs(t, id, executor.LogOptions{})
		if out != "hello\n" || errs != "oops\n" {
			t.Errorf("Logs = stdout %q, stderr %q; want %q, %q", out, errs, "hello\n", "oops\n")
		}
		// A finished instance still answers.
		if again := wait(t, id); again.ExitCode != 3 {
			t.Errorf("second Wait = %d, want 3", again.ExitCode)
		}
	})

	t.Run("exit 0 and environment", func(t *testing.T) {
		spec := h.Spec("env=GREETING")
		spec.Env = map[string]string{"GREETING": "hello world"}
		id := start(t, spec)
		res := wait(t, id)
		if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
			t.Errorf("Wait = %s %d (%s), want exited 0", res.Reason, res.ExitCode, res.Error)
		}
		if out, _ := logs(t, id, executor.LogOptions{}); out != "GREETING=hello world\n" {
			t.Errorf("stdout = %q, want %q", out, "GREETING=hello world\n")
		}
	})

	t.Run("logs followed while running", func(t *testing.T) {
		id := start(t, h.Spec("tick=4x400ms"))
		w := &firstWrite{}
		if err := ex.Logs(ctx, id, executor.LogOptions{Follow: true}, w, nil); err != nil {
			t.Fatalf("Logs(follow): %v", err)
		}
		returned := time.Now()
		if got, want := w.String(), "tick 1\ntick 2\ntick 3\ntick 4\n"; got != want {
			t.Errorf("followed stdout = %q, want %q", got, want)
		}
		if w.first.IsZero() || returned.Sub(w.first) < 800*time.Millisecond {
			t.Errorf("first line came %v before the end: logs were not streamed", returned.Sub(w.first))
		}
		if res := wait(t, id); res.Reason != executor.ReasonExited {
			t.Errorf("Wait = %s (%s), want exited", res.Reason, res.Error)
		}
	})

	t.Run("tail", func(t *testing.T) {
		id := start(t, h.Spec("tick=5x1ms"))
		wait(t, id)
		if out, _ := logs(t, id, executor.LogOptions{Tail: 2}); out != "tick 4\ntick 5\n" {
			t.Errorf("Logs(tail 2) = %q, want %q", out, "tick 4\ntick 5\n")
		}
	})

	t.Run("stop within 2s", func(t *testing.T) {
		id := start(t, h.Spec("print=started", "sleep=1h"))
		// Stop once the workload is surely running (after a VM's boot).
		waitForOutput(t, ex, id, "started", h.Boot+30*time.Second)
		began := time.Now()
		if err := ex.Stop(ctx, id, time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("Stop took %v, want ≤ 2s", took)
		}
		if res := wait(t, id); res.Reason != executor.ReasonCancelled {
			t.Errorf("Wait = %s %d (%s), want cancelled", res.Reason, res.ExitCode, res.Error)
		}
		if err := ex.Stop(ctx, id, 0); err != nil {
			t.Errorf("Stop of an ended instance: %v", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		spec := h.Spec("sleep=1h")
		spec.Timeout = h.Boot + time.Second
		id := start(t, spec)
		res := wait(t, id)
		if res.Reason != executor.ReasonTimedOut {
			t.Errorf("Wait = %s %d (%s), want timed-out", res.Reason, res.ExitCode, res.Error)
		}
		if ran := res.FinishedAt.Sub(res.StartedAt); ran > spec.Timeout+2*time.Second {
			t.Errorf("ran %v with a timeout of %v", ran, spec.Timeout)
		}
	})

	t.Run("bad spec refused before anything starts", func(t *testing.T) {
		before := count(t, ex)
		noSource := h.Spec("print=x")
		noSource.Image, noSource.Module, noSource.VM = "", nil, nil
		noCommand := h.Spec()
		noCommand.Entrypoint, noCommand.Command = nil, nil
		negMemory := h.Spec("print=x")
		neg := int64(-64 << 20)
		negMemory.Resources.Memory = match.Bytes(neg)
		negCPU := h.Spec("print=x")
		negCPU.Resources.CPU = -500
		for _, c := range []struct {
			name  string
			spec  executor.Spec
			field string
		}{
			{"missing image", noSource, "image"},
			{"empty command", noCommand, "command"},
			{"negative memory", negMemory, "resources.memory"},
			{"negative cpu", negCPU, "resources.cpu"},
		} {
			id, err := ex.Start(ctx, c.spec)
			if err == nil {
				ex.Remove(ctx, id)
				t.Errorf("%s: Start = %s, want an error", c.name, id)
				continue
			}
			var ve *executor.ValidationError
			if !errors.Is(err, executor.ErrInvalidSpec) || !errors.As(err, &ve) {
				t.Errorf("%s: Start error %v is not a *ValidationError", c.name, err)
			}
			if !strings.Contains(err.Error(), c.field+":") {
				t.Errorf("%s: Start error %q does not name %s", c.name, err, c.field)
			}
		}
		if after := count(t, ex); after != before {
			t.Errorf("instances: %d before, %d after refused specs", before, after)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		const id = "no-such-instance"
		if _, err := ex.Wait(ctx, id); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Wait = %v, want ErrNotFound", err)
		}
		if err := ex.Stop(ctx, id, 0); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Stop = %v, want ErrNotFound", err)
		}
		if err := ex.Logs(ctx, id, executor.LogOptions{}, nil, nil); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Logs = %v, want ErrNotFound", err)
		}
		if err := ex.Remove(ctx, id); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Remove = %v, want ErrNotFound", err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		id, err := ex.Start(ctx, h.Spec("print=started", "sleep=1h"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitForOutput(t, ex, id, "started", h.Boot+30*time.Second)
		if err := ex.Remove(ctx, id); err != nil {
			t.Fatalf("Remove of a running instance: %v", err)
		}
		if _, err := ex.Wait(ctx, id); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Wait after Remove = %v, want ErrNotFound", err)
		}
		if err := ex.Remove(ctx, id); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("second Remove = %v, want ErrNotFound", err)
		}
	})

	t.Run("remove honours a cancelled context", func(t *testing.T) {
		done, cancel := context.WithCancel(ctx)
		cancel()
		// A running instance: Remove changes nothing.
		running := start(t, h.Spec("print=started", "sleep=1h"))
		waitForOutput(t, ex, running, "started", h.Boot+30*time.Second)
		if err := ex.Remove(done, running); !errors.Is(err, context.Canceled) {
			t.Errorf("Remove(done ctx) of a running instance = %v, want context.Canceled", err)
		}
		short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
		res, err := ex.Wait(short, running)
		stop()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait after Remove(done ctx) = %s (%s), %v; want the instance still running", res.Reason, res.Error, err)
		}
		// An ended instance: Remove changes nothing, every time.
		ended := start(t, h.Spec("print=bye", "exit=4"))
		wait(t, ended)
		for i := range 10 {
			if err := ex.Remove(done, ended); !errors.Is(err, context.Canceled) {
				t.Fatalf("Remove(done ctx) #%d of an ended instance = %v, want context.Canceled", i+1, err)
			}
		}
		if res := wait(t, ended); res.Reason != executor.ReasonExited || res.ExitCode != 4 {
			t.Errorf("Wait after Remove(done ctx) = %s %d (%s), want exited 4", res.Reason, res.ExitCode, res.Error)
		}
		if out, _ := logs(t, ended, executor.LogOptions{}); out != "bye\n" {
			t.Errorf("Logs after Remove(done ctx) = %q, want %q", out, "bye\n")
		}
		// With a live ctx Remove does its work.
		for _, id := range []string{running, ended} {
			if err := ex.Remove(ctx, id); err != nil {
				t.Errorf("Remove(%s) = %v", id, err)
			}
			if _, err := ex.Wait(ctx, id); !errors.Is(err, executor.ErrNotFound) {
				t.Errorf("Wait after Remove = %v, want ErrNotFound", err)
			}
		}
	})

	t.Run("concurrent waits", func(t *testing.T) {
		id := start(t, h.Spec("sleep=200ms", "exit=7"))
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if res, err := ex.Wait(ctx, id); err != nil || res.ExitCode != 7 {
					t.Errorf("Wait = %d, %v; want 7", res.ExitCode, err)
				}
			})
		}
		wg.Wait()
	})

	if l, ok := ex.(executor.Lister); ok {
		t.Run("list by label", func(t *testing.T) {
			spec := h.Spec("print=started", "sleep=1h")
			label := "conformance-" + time.Now().Format("150405.000000000")
			spec.Labels = map[string]string{executor.LabelAllocation: label}
			id := start(t, spec)
			got, err := l.List(ctx, map[string]string{executor.LabelAllocation: label})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got) != 1 || got[0].ID != id || got[0].State != executor.StateRunning || got[0].Labels[executor.LabelAllocation] != label {
				t.Errorf("List = %+v, want one running instance %s with label %s", got, id, label)
			}
			ex.Stop(ctx, id, 0)
		})
	}

	// fresh returns a new executor from h.New, and its Close; the cleanup
	// removes ids through it, or through ex for what outlives it (a
	// container outlives a docker executor).
	fresh := func(t *testing.T, ids *[]string) (executor.Executor, func() error) {
		t.Helper()
		if h.New == nil {
			t.Skip("Harness.New is not set")
		}
		fx := h.New(t)
		c, ok := fx.(io.Closer)
		if !ok {
			t.Fatalf("%T has no Close method", fx)
		}
		t.Cleanup(func() {
			for _, id := range *ids {
				if fx.Remove(context.Background(), id) == nil {
					continue
				}
				if err := ex.Remove(context.Background(), id); err != nil && !errors.Is(err, executor.ErrNotFound) {
					t.Errorf("Remove(%s): %v", id, err)
				}
			}
		})
		// Close must not hang.
		closeWithin := func() error {
			errc := make(chan error, 1)
			go func() { errc <- c.Close() }()
			select {
			case err := <-errc:
				return err
			case <-time.After(h.Boot + time.Minute):
				t.Fatalf("Close did not return within %v", h.Boot+time.Minute)
				return nil
			}
		}
		return fx, closeWithin
	}

	t.Run("close twice", func(t *testing.T) {
		var ids []string
		fx, closeIt := fresh(t, &ids)
		id, err := fx.Start(ctx, h.Spec("print=started", "sleep=1h"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
		waitForOutput(t, fx, id, "started", h.Boot+30*time.Second)
		if err := closeIt(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := closeIt(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		// The instance has ended (in-process executors) or is no longer
		// watched (docker): either way Wait answers at once.
		wctx, cancel := context.WithTimeout(ctx, h.Boot+time.Minute)
		defer cancel()
		if res, err := fx.Wait(wctx, id); err != nil && !errors.Is(err, executor.ErrUnavailable) || err == nil && res.Reason != executor.ReasonCancelled {
			t.Errorf("Wait after Close = %s (%s), %v; want cancelled or ErrUnavailable", res.Reason, res.Error, err)
		}
		if id, err := fx.Start(ctx, h.Spec("exit=0")); !errors.Is(err, executor.ErrUnavailable) {
			if err == nil {
				ids = append(ids, id)
			}
			t.Errorf("Start after Close = %q, %v; want ErrUnavailable", id, err)
		}
	})

	t.Run("close while starting", func(t *testing.T) {
		var ids []string
		fx, closeIt := fresh(t, &ids)
		// The first Start may compile, pull or load: not while closing.
		id, err := fx.Start(ctx, h.Spec("sleep=1h"))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		ids = append(ids, id)
		const starters, each = 4, 8
		var mu sync.Mutex // guards ids while the Starts run
		var wg sync.WaitGroup
		started, all := make(chan struct{}, starters*each), make(chan struct{})
		for range starters {
			wg.Go(func() {
				for range each {
					id, err := fx.Start(ctx, h.Spec("sleep=1h"))
					if err != nil {
						if !errors.Is(err, executor.ErrUnavailable) {
							t.Errorf("Start while closing = %v, want success or ErrUnavailable", err)
						}
						return
					}
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
					started <- struct{}{}
				}
			})
		}
		go func() { wg.Wait(); close(all) }()
		// Close once the starters are under way and out of step.
		for range starters + 2 {
			select {
			case <-started:
			case <-all:
			}
		}
		if err := closeIt(); err != nil {
			t.Errorf("Close = %v", err)
		}
		<-all
		if id, err := fx.Start(ctx, h.Spec("exit=0")); !errors.Is(err, executor.ErrUnavailable) {
			if err == nil {
				ids = append(ids, id)
			}
			t.Errorf("Start after Close = %q, %v; want ErrUnavailable", id, err)
		}
	})

	if h.NoMounts {
		return
	}
	t.Run("mounts", func(t *testing.T) {
		in, out := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(in, "in.txt"), []byte("input\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := h.Spec("cat=/in/in.txt", "pwd", "write=/out/result.txt:42")
		spec.Mounts = []executor.Mount{{Source: in, Target: "/in", ReadOnly: true}, {Source: out, Target: "/out"}}
		spec.WorkDir = "/out"
		id := start(t, spec)
		res := wait(t, id)
		stdout, stderr := logs(t, id, executor.LogOptions{})
		if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
			t.Fatalf("Wait = %s %d (%s), stderr %q; want exited 0", res.Reason, res.ExitCode, res.Error, stderr)
		}
		if stdout != "input\n/out\n" {
			t.Errorf("stdout = %q, want %q", stdout, "input\n/out\n")
		}
		if b, err := os.ReadFile(filepath.Join(out, "result.txt")); err != nil || string(b) != "42" {
			t.Errorf("output file = %q, %v; want 42", b, err)
		}

		spec = h.Spec("write=/in/x:1")
		spec.Mounts = []executor.Mount{{Source: in, Target: "/in", ReadOnly: true}}
		id = start(t, spec)
		res = wait(t, id)
		if res.ExitCode == 0 {
			t.Errorf("writing into a read-only mount exited 0")
		}
		// The same words in every executor: the job's error is EROFS.
		if _, stderr := logs(t, id, executor.LogOptions{}); !strings.Contains(strings.ToLower(stderr), "read-only file system") {
			t.Errorf("writing into a read-only mount: stderr %q, want EROFS (read-only file system)", stderr)
		}
		if _, err := os.Stat(filepath.Join(in, "x")); err == nil {
			t.Errorf("a file was written into the read-only mount")
		}
	})
}

// count returns how many instances a Lister executor has, or 0.
func count(t *testing.T, ex executor.Executor) int {
	l, ok := ex.(executor.Lister)
	if !ok {
		return 0
	}
	got, err := l.List(t.Context(), nil)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return len(got)
}

// waitForOutput waits until the instance's stdout contains s.
func waitForOutput(t *testing.T, ex executor.Executor, id, s string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	w := &watch{want: s, found: cancel}
	err := ex.Logs(ctx, id, executor.LogOptions{Follow: true}, w, nil)
	if !w.seen() {
		t.Fatalf("no %q in stdout within %v (Logs: %v; got %q)", s, within, err, w.String())
	}
}

// watch is a writer that calls found once it has seen want.
type watch struct {
	want  string
	found func()

	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.found()
	}
	return len(p), nil
}

func (w *watch) seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), w.want)
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// firstWrite is a writer that remembers when it was first written to.
type firstWrite struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Time
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() {
		w.first = time.Now()
	}
	return w.buf.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
