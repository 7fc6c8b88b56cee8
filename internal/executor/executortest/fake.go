// Package executortest has a working in-process executor for orchestration
// tests, and the conformance suite that every executor passes.
//
// The fake executor (Executor) does not pretend: it implements the whole
// contract (Start, Wait, Stop, Logs with follow and tail, Remove,
// timeouts), the optional Lister, Pauser, Execer and Statser, and Close, by
// running the spec's command as a tiny script in a goroutine. Its instance
// bookkeeping is the one wasm and vm use too (package
// internal/executor/internal/instance). The script is the same step
// language the real test workload understands (see Spec and the package
// internal/executor/internal/script doc):
//
//	ex := executortest.New(executortest.Config{})
//	id, _ := ex.Start(ctx, executortest.Spec("print=hello", "sleep=100ms", "exit=3"))
//	res, _ := ex.Wait(ctx, id) // res.ExitCode == 3, logs "hello\n"
//
// Usage is scriptable: SetUsage fixes what Stats and the Result say.
//
// Resources are honoured the way a real backend would: alloc past
// Resources.Memory ends with ReasonOOMKilled, spawn stops at
// Resources.PIDs, write and cat reach host files only through Mounts.
// Timers are the standard library's, so tests may run it inside a
// testing/synctest bubble.
//
// Conformance runs the contract's acceptance tests against any executor;
// each backend's tests call it with a Harness.
package executortest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/instance"
	"github.com/dmsnet/dms/internal/executor/internal/script"
	"github.com/dmsnet/dms/internal/match"
)

// Config adjusts the fake executor, e.g. to inject failures.
type Config struct {
	// StartDelay is added to every Start, like an image pull or a boot.
	StartDelay time.Duration
	// StartError, when set, is called by Start; a non-nil error is
	// returned and nothing starts.
	StartError func(executor.Spec) error
}

// Executor is the in-process fake executor. Create it with New.
type Executor struct {
	cfg       Config
	instances *instance.Table[*workload]
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Lister   = (*Executor)(nil)
	_ executor.Pauser   = (*Executor)(nil)
	_ executor.Execer   = (*Executor)(nil)
	_ executor.Statser  = (*Executor)(nil)
	_ io.Closer         = (*Executor)(nil)
)

// New returns an empty fake executor.
func New(cfg Config) *Executor {
	return &Executor{cfg: cfg, instances: instance.NewTable[*workload]("fake")}
}

// Close ends every instance, as wasm and vm do; Start then returns
// ErrUnavailable. The ended instances stay readable until Remove. A second
// Close does nothing and returns nil.
func (e *Executor) Close() error { return e.instances.Close(nil) }

// Spec returns a spec that runs the given script steps on the fake (and,
// as the program is named "workload", reads like the real test workload's
// specs).
func Spec(steps ...string) executor.Spec {
	return executor.Spec{Image: "workload", Command: append([]string{"workload"}, steps...)}
}

// workload is one instance of the fake: its script, run in a goroutine.
type workload struct {
	*instance.Instance
	spec      executor.Spec
	steps     []script.Step
	cancel    context.CancelCauseFunc // ends the script's context, with its cause
	startedAt time.Time

	mu       sync.Mutex
	resumed  chan struct{} // guarded by mu: nil when running, closed on resume when paused
	memory   match.Bytes   // guarded by mu
	peak     match.Bytes   // guarded by mu
	children int64         // guarded by mu
	cpu      time.Duration // guarded by mu: the CPU time SetUsage gave
	scripted bool          // guarded by mu: SetUsage was called: cpu is the CPU time
}

// cpuTimeLocked is the instance's CPU time: what SetUsage gave, else the
// time since it started (the fake spends no CPU of its own).
func (in *workload) cpuTimeLocked() time.Duration {
	if in.scripted {
		return in.cpu
	}
	return time.Since(in.startedAt)
}

// SetUsage scripts the usage of a running instance, as a test wants it
// measured: from now on Stats and its Result say cpu (it is no longer
// the time since the start) and memory in use (the peak follows).
func (e *Executor) SetUsage(id string, cpu time.Duration, memory match.Bytes) error {
	in, err := e.instances.Get(id)
	if err != nil {
		return err
	}
	if in.Ended() {
		return fmt.Errorf("set usage of %s: instance has ended", id)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cpu, in.scripted = cpu, true
	in.memory = memory
	in.peak = max(in.peak, memory)
	return nil
}

// Causes of an instance's context ending.
var (
	errStopped = fmt.Errorf("stopped")
	errTimeout = fmt.Errorf("timed out")
)

// Start implements executor.Executor.
func (e *Executor) Start(ctx context.Context, spec executor.Spec) (string, error) {
	if err := e.instances.Err(); err != nil {
		return "", err
	}
	var v executor.ValidationError
	v.Include(spec.Validate())
	argv := spec.Argv()
	var steps []script.Step
	if len(argv) > 0 {
		var err error
		if steps, err = script.Parse(argv[1:]); err != nil {
			v.Add("command", "%v", err)
		}
	}
	if err := v.Err(); err != nil {
		return "", err
	}
	if e.cfg.StartDelay > 0 {
		t := time.NewTimer(e.cfg.StartDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		}
	}
	if e.cfg.StartError != nil {
		if err := e.cfg.StartError(spec); err != nil {
			return "", err
		}
	}
	runCtx, cancel := context.WithCancelCause(context.Background())
	in := &workload{spec: spec, steps: steps, cancel: cancel, startedAt: time.Now()}
	// The script ends at once: grace is not needed.
	in.Instance = instance.New(0, func(time.Duration) { cancel(errStopped) })
	id, err := e.instances.Add(in)
	if err != nil {
		cancel(nil)
		return "", err
	}
	if spec.Timeout > 0 {
		t := time.AfterFunc(spec.Timeout, func() { cancel(errTimeout) })
		context.AfterFunc(runCtx, func() { t.Stop() })
	}
	go in.run(runCtx)
	return id, nil
}

func (in *workload) run(ctx context.Context) {
	code, reason, msg := runSteps(ctx, in, in.steps, in.Stdout(), in.Stderr())
	in.mu.Lock()
	peak, cpu := in.peak, in.cpuTimeLocked()
	in.mu.Unlock()
	in.cancel(nil)
	in.Finish(executor.Result{
		ExitCode:   code,
		Reason:     reason,
		Error:      msg,
		StartedAt:  in.startedAt,
		FinishedAt: time.Now(),
		Usage:      executor.Usage{CPUTime: cpu, MemoryPeak: peak},
	})
}

// runSteps interprets steps as in's workload (or an Exec in it) would.
func runSteps(ctx context.Context, in *workload, steps []script.Step, stdout, stderr io.Writer) (code int, reason executor.Reason, msg string) {
	ended := func() (int, executor.Reason, string) {
		switch context.Cause(ctx) {
		case errTimeout:
			return -1, executor.ReasonTimedOut, ""
		default:
			return -1, executor.ReasonCancelled, ""
		}
	}
	fail := func(format string, args ...any) (int, executor.Reason, string) {
		fmt.Fprintf(stderr, "workload: "+format+"\n", args...)
		return 1, executor.ReasonExited, ""
	}
	for _, s := range steps {
		if !in.gate(ctx) {
			return ended()
		}
		switch s.Op {
		case script.Print:
			fmt.Fprintln(stdout, s.Text)
		case script.EPrint:
			fmt.Fprintln(stderr, s.Text)
		case script.Sleep, script.Spin: // the fake has no CPU to spend
			if !sleep(ctx, s.D) {
				return ended()
			}
			if s.Op == script.Spin {
				fmt.Fprintln(stdout, "spun 0")
			}
		case script.Tick:
			for i := 1; i <= s.N; i++ {
				if i > 1 && (!sleep(ctx, s.D) || !in.gate(ctx)) {
					return ended()
				}
				fmt.Fprintf(stdout, "tick %d\n", i)
			}
		case script.Exit:
			return s.N, executor.ReasonExited, ""
		case script.Alloc:
			in.mu.Lock()
			in.memory += match.Bytes(s.N) << 20
			in.peak = max(in.peak, in.memory)
			over := in.spec.Resources.Memory > 0 && in.memory > in.spec.Resources.Memory
			in.mu.Unlock()
			if over {
				return 137, executor.ReasonOOMKilled, ""
			}
			fmt.Fprintf(stdout, "allocated %d MiB\n", s.N)
		case script.Write:
			host, ro, ok := in.hostPath(s.Path)
			if !ok || ro {
				return fail("open %s: read-only file system", s.Path)
			}
			if err := os.WriteFile(host, []byte(s.Text), 0o644); err != nil {
				return fail("%v", err)
			}
		case script.Append, script.Fill:
			host, ro, ok := in.hostPath(s.Path)
			if !ok || ro {
				return fail("open %s: read-only file system", s.Path)
			}
			if s.Op == script.Append {
				if err := script.AppendLine(host, s.Text); err != nil {
					return fail("%v", err)
				}
				break
			}
			if err := script.FillFile(host, s.N); err != nil {
				return fail("fill: %v", err)
			}
			fmt.Fprintf(stdout, "filled %d MiB\n", s.N)
		case script.Cat:
			host, _, ok := in.hostPath(s.Path)
			if !ok {
				return fail("open %s: no such file or directory", s.Path)
			}
			b, err := os.ReadFile(host)
			if err != nil {
				return fail("%v", err)
			}
			stdout.Write(b)
		case script.Env:
			fmt.Fprintf(stdout, "%s=%s\n", s.Text, in.spec.Env[s.Text])
		case script.Pwd:
			wd := in.spec.WorkDir
			if wd == "" {
				wd = "/"
			}
			fmt.Fprintln(stdout, wd)
		case script.Spawn:
			in.mu.Lock()
			n := int64(s.N)
			if limit := in.spec.Resources.PIDs; limit > 0 {
				n = min(n, max(0, limit-1-in.children))
			}
			in.children += n
			in.mu.Unlock()
			fmt.Fprintf(stdout, "spawned %d\n", n)
			if n < int64(s.N) {
				fmt.Fprintln(stderr, "workload: spawn: resource temporarily unavailable")
			}
		}
	}
	if ctx.Err() != nil {
		return ended()
	}
	return 0, executor.ReasonExited, ""
}

// hostPath maps a guest path to a host path through the mounts.
func (in *workload) hostPath(p string) (host string, readOnly, ok bool) {
	p = path.Clean(p)
	for _, m := range in.spec.Mounts {
		t := path.Clean(m.Target)
		if rel, found := strings.CutPrefix(p, t+"/"); found && !strings.HasPrefix(rel, "../") {
			return filepath.Join(m.Source, filepath.FromSlash(rel)), m.ReadOnly, true
		}
	}
	return "", false, false
}

// gate waits while the instance is paused; false means ctx ended.
func (in *workload) gate(ctx context.Context) bool {
	in.mu.Lock()
	resumed := in.resumed
	in.mu.Unlock()
	if resumed != nil {
		select {
		case <-resumed:
		case <-ctx.Done():
		}
	}
	return ctx.Err() == nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait implements executor.Executor.
func (e *Executor) Wait(ctx context.Context, id string) (executor.Result, error) {
	return e.instances.Wait(ctx, id)
}

// Stop implements executor.Executor. The fake ends at once; grace is not
// needed.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	return e.instances.Stop(ctx, id, grace)
}

// Logs implements executor.Executor.
func (e *Executor) Logs(ctx context.Context, id string, opts executor.LogOptions, stdout, stderr io.Writer) error {
	return e.instances.Logs(ctx, id, opts, stdout, stderr)
}

// Remove implements executor.Executor. A ctx that is already done changes
// nothing.
func (e *Executor) Remove(ctx context.Context, id string) error {
	return e.instances.Remove(ctx, id)
}

// List implements executor.Lister.
func (e *Executor) List(ctx context.Context, labels map[string]string) ([]executor.Instance, error) {
	var out []executor.Instance
	for _, in := range e.instances.All() {
		if !hasLabels(in.spec.Labels, labels) {
			continue
		}
		state := executor.StateRunning
		if in.Ended() {
			state = executor.StateExited
		} else {
			in.mu.Lock()
			if in.resumed != nil {
				state = executor.StatePaused
			}
			in.mu.Unlock()
		}
		out = append(out, executor.Instance{
			ID:        in.ID(),
			State:     state,
			Labels:    maps.Clone(in.spec.Labels),
			StartedAt: in.startedAt,
			Ports:     slices.Clone(in.spec.Ports),
		})
	}
	slices.SortFunc(out, func(a, b executor.Instance) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Pause implements executor.Pauser: the script stops before its next step
// or tick.
func (e *Executor) Pause(ctx context.Context, id string) error {
	in, err := e.instances.Get(id)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.resumed == nil {
		in.resumed = make(chan struct{})
	}
	return nil
}

// Resume implements executor.Pauser.
func (e *Executor) Resume(ctx context.Context, id string) error {
	in, err := e.instances.Get(id)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.resumed != nil {
		close(in.resumed)
		in.resumed = nil
	}
	return nil
}

// Exec implements executor.Execer: cmd is a script (cmd[0] is a name, the
// rest are steps) run beside the workload, sharing its mounts and limits.
func (e *Executor) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	in, err := e.instances.Get(id)
	if err != nil {
		return 0, err
	}
	if in.Ended() {
		return 0, fmt.Errorf("exec in %s: instance is not running", id)
	}
	in.mu.Lock()
	paused := in.resumed != nil
	in.mu.Unlock()
	if paused {
		return 0, fmt.Errorf("exec in %s: instance is paused", id)
	}
	if len(cmd) == 0 {
		return 0, fmt.Errorf("exec in %s: empty command", id)
	}
	steps, err := script.Parse(cmd[1:])
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	code, _, _ := runSteps(ctx, in, steps, stdout, stderr)
	return code, ctx.Err()
}

// Stats implements executor.Statser.
func (e *Executor) Stats(ctx context.Context, id string) (executor.Usage, error) {
	in, err := e.instances.Get(id)
	if err != nil {
		return executor.Usage{}, err
	}
	if in.Ended() {
		res, err := e.instances.Wait(ctx, id)
		return res.Usage, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return executor.Usage{
		CPUTime:    in.cpuTimeLocked(),
		Memory:     in.memory,
		MemoryPeak: in.peak,
		PIDs:       1 + in.children,
	}, nil
}

var _ executor.ExecStreamer = (*Executor)(nil)

// ExecStream implements executor.ExecStreamer: it copies opts.Stdin to
// opts.Stdout (like cat), then runs cmd as a script, as Exec does; with a
// TTY stderr goes to opts.Stdout, and each size from opts.Resize is
// written there as "resize ROWSxCOLS\n" (Stdout must then be safe for
// concurrent writes).
func (e *Executor) ExecStream(ctx context.Context, id string, opts executor.ExecOptions) (int, error) {
	if _, err := e.instances.Get(id); err != nil {
		return 0, err
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if opts.TTY || stderr == nil {
		stderr = stdout
	}
	if opts.TTY && opts.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case sz := <-opts.Resize:
					fmt.Fprintf(stdout, "resize %dx%d\n", sz.Rows, sz.Cols)
				case <-done:
					return
				}
			}
		}()
	}
	if opts.Stdin != nil {
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(stdout, opts.Stdin)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				return 0, fmt.Errorf("exec in %s: stdin: %w", id, err)
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return e.Exec(ctx, id, opts.Cmd, stdout, stderr)
}
