// Package wasm is the WebAssembly executor: it runs WASI preview1 modules
// (for example Go programs built with GOOS=wasip1 GOARCH=wasm) in-process
// with wazero, pure Go and without cgo. It is the default executor, the one
// that runs anywhere: it needs neither Docker nor KVM.
//
// # Usage
//
//	ex, err := wasm.New(wasm.Config{CacheDir: filepath.Join(home, "wasm-cache")})
//	...
//	defer ex.Close()
//	id, err := ex.Start(ctx, executor.Spec{Module: moduleBytes, Command: []string{"hello", "--name", "x"}})
//
// The spec's Module holds the module's bytes (the orchestrator ships them
// from the submitting user); argv is Entrypoint ++ Command, argv[0] being
// the program's name. Env is the WASI environment (WorkDir becomes PWD,
// which Go and most WASI libcs use as their working directory).
// Stdout and stderr are the logs. The module sees no file but the Mounts,
// and has no network (Network must be "" or none; no Ports).
//
// # Limits
//
// Resources.Memory caps the module's linear memory, rounded up to 64 KiB
// pages, and never above Config.MaxMemoryPages; a module that tries to
// grow past it gets a failed memory.grow, and if it then fails the Result
// says ReasonOOMKilled. Spec.Timeout and Stop end the module through
// context cancellation (wazero checks it on function calls and loop
// iterations).
//
// A module runs on one goroutine locked to an OS thread of its own, so it
// uses at most one core, and Result.Usage.CPUTime is that thread's CPU
// time; Stats reads that thread's CPU clock while the module runs. Resources.CPU below one core is enforced by the kernel: the thread
// is moved into a cgroup of its own with a CFS quota (cpu.cfs_quota_us in
// cgroup v1, cpu.max in a threaded cgroup v2), under the process's own cpu
// cgroup or Config.CPUCgroup, for the module's run. Where no cgroup is
// usable (not root, no cpu controller) New says so in the log and modules
// run unlimited, unless Config.RequireCPULimit makes New fail.
//
// PIDs and Disk need no enforcement: a module spawns nothing and writes
// only into mounts. GPUs, Ports and Privileged are refused.
//
// # Cache
//
// Compiled modules are kept in memory, keyed by the module's SHA-256, so
// starting a module again skips compilation (the warm start); with
// Config.CacheDir the machine code also survives restarts on disk.
//
// Instances live in the dms process: they end when it ends, so the wasm
// executor has no Lister and nothing to re-attach to.
package wasm

import (
	"io/fs"

	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/instance"
	"github.com/dmsnet/dms/internal/match"
)

// PageSize is the size of a WebAssembly memory page.
const PageSize = 64 << 10

// Config configures the wasm executor. The zero value is usable.
type Config struct {
	// CacheDir, when set, keeps compiled machine code on disk so a module
	// compiles once per machine, not once per daemon start.
	CacheDir string
	// MaxMemoryPages caps the linear memory of every module, in 64 KiB
	// pages (default 16384: 1 GiB; at most 65536: 4 GiB).
	MaxMemoryPages uint32
	// MaxModules is how many compiled modules are kept in memory (default
	// 32); the least recently used is dropped first.
	MaxModules int
	// LogLimit is the bytes of output kept per stream and instance
	// (default 8 MiB); older output is dropped.
	LogLimit int
	// CPUCgroup is the cgroup directory (v1 cpu hierarchy, or v2) under
	// which modules limited to less than a core get a group each; empty
	// means this process's own cpu cgroup.
	CPUCgroup string
	// RequireCPULimit makes New fail when no cgroup can limit a module's
	// CPU; without it such a machine runs modules unlimited (one core at
	// most) and New logs a warning.
	RequireCPULimit bool
	Logger          *slog.Logger
}

// Executor runs WASI modules. Create it with New and Close it when done.
type Executor struct {
	cfg  Config
	log  *slog.Logger
	rt   wazero.Runtime
	wasi map[string]bool // names of the host functions of wasi_snapshot_preview1
	cpu  *cpuGroups      // nil: CPU not limited

	instances *instance.Table[*process]

	mu      sync.Mutex
	modules map[string]*list.Element // guarded by mu: by SHA-256 hex, values *module
	lru     *list.List               // guarded by mu: front is most recently used
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Statser  = (*Executor)(nil)
	_ io.Closer         = (*Executor)(nil)
)

// module is one compiled module in the cache.
type module struct {
	hash     string
	ready    chan struct{} // closed once compiled or err is set
	compiled wazero.CompiledModule
	err      error
}

// New creates the wasm executor.
func New(cfg Config) (*Executor, error) {
	if cfg.MaxMemoryPages == 0 {
		cfg.MaxMemoryPages = 16384
	}
	if cfg.MaxMemoryPages > 65536 {
		return nil, fmt.Errorf("wasm: MaxMemoryPages %d is over 65536 (4 GiB)", cfg.MaxMemoryPages)
	}
	if cfg.MaxModules <= 0 {
		cfg.MaxModules = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.MaxMemoryPages)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: cache dir: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	wasiHost, err := wasi_snapshot_preview1.NewBuilder(rt).Compile(ctx)
	if err == nil {
		_, err = rt.InstantiateModule(ctx, wasiHost, wazero.NewModuleConfig())
	}
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	wasi := map[string]bool{}
	for name := range wasiHost.ExportedFunctions() {
		wasi[name] = true
	}
	log := cfg.Logger.With("component", "executor", "executor", "wasm")
	cpu, err := newCPUGroups(cfg.CPUCgroup)
	switch {
	case err != nil && cfg.RequireCPULimit:
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: CPU limits: %w: %w", err, executor.ErrUnavailable)
	case err != nil:
		log.Warn("wasm modules run without CPU limits (one core at most)", "err", err)
	default:
		log.Debug("wasm CPU limits by cgroup", "cgroup", cpu.parent)
	}
	return &Executor{
		cfg:       cfg,
		log:       log,
		rt:        rt,
		cpu:       cpu,
		wasi:      wasi,
		instances: instance.NewTable[*process]("wasm"),
		modules:   map[string]*list.Element{},
		lru:       list.New(),
	}, nil
}

// Close ends every running instance (their Results say ReasonCancelled)
// and releases the runtime; Start then returns ErrUnavailable. The ended
// instances stay readable until Remove. A second Close does nothing and
// returns nil.
func (e *Executor) Close() error {
	return e.instances.Close(func() error {
		err := e.rt.Close(context.Background())
		if e.cpu != nil {
			err = errors.Join(err, e.cpu.close())
		}
		return err
	})
}

// process is one instance: a module instantiated in the runtime, run by a
// goroutine of its own.
type process struct {
	*instance.Instance
	mem    *memory
	cpu    *cpuGroup               // nil: not limited
	cancel context.CancelCauseFunc // ends the module's context, with its cause

	cpuMu   sync.Mutex
	tid     int           // guarded by cpuMu: the thread running the module; 0 before and after
	cpu0    time.Duration // guarded by cpuMu: tid's CPU time when the module began
	cpuUsed time.Duration // guarded by cpuMu: the module's CPU time, once it has ended
}

// cpuTime is the CPU time the module has used so far: its thread's CPU
// clock while it runs (0 where there is none).
func (in *process) cpuTime() time.Duration {
	in.cpuMu.Lock()
	defer in.cpuMu.Unlock()
	if in.tid == 0 {
		return in.cpuUsed
	}
	now, ok := threadCPUOf(in.tid)
	if !ok {
		return 0
	}
	return max(0, now-in.cpu0)
}

// Causes of an instance's context ending.
var (
	errStopped = errors.New("stopped")
	errTimeout = errors.New("timed out")
)

// validate checks spec for this executor and returns the memory limit in
// pages.
func (e *Executor) validate(spec *executor.Spec) (uint32, error) {
	var v executor.ValidationError
	v.Include(spec.Validate())
	if spec.Module == nil && (spec.Image != "" || spec.VM != nil) {
		v.Add("module", "required: the wasm executor runs a WebAssembly module, not an image or a VM")
	}
	pages := e.cfg.MaxMemoryPages
	if m := uint64(spec.Resources.Memory); m > 0 {
		if max := uint64(pages) * PageSize; m > max {
			v.Add("resources.memory", "%s is over this provider's wasm limit of %s", match.Bytes(m), match.Bytes(max))
		} else {
			pages = uint32((m + PageSize - 1) / PageSize)
		}
	}
	if len(spec.Resources.GPUs) > 0 {
		v.Add("resources.gpus", "the wasm executor has no GPUs")
	}
	if len(spec.Ports) > 0 {
		v.Add("ports", "the wasm executor has no network")
	}
	if spec.Network != executor.NetworkDefault && spec.Network != executor.NetworkNone {
		v.Add("network", "the wasm executor has only network none")
	}
	if spec.Subnet != nil {
		v.Add("subnet", "the wasm executor has no sockets (WASI preview 1): it cannot join a subnet")
	}
	if spec.Privileged {
		v.Add("privileged", "not available in the wasm executor")
	}
	for i, m := range spec.Mounts {
		if st, err := os.Stat(m.Source); err != nil || !st.IsDir() {
			v.Add(fmt.Sprintf("mounts[%d].source", i), "%s is not a directory on the host", m.Source)
		}
	}
	return pages, v.Err()
}

// Start implements executor.Executor. It compiles the module unless it is
// cached, checks its imports and memory against the spec, then starts it
// in a goroutine.
func (e *Executor) Start(ctx context.Context, spec executor.Spec) (string, error) {
	if err := e.instances.Err(); err != nil {
		return "", err
	}
	pages, err := e.validate(&spec)
	if err != nil {
		return "", err
	}
	compiled, err := e.compile(ctx, spec.Module)
	if err != nil {
		return "", err
	}
	if err := e.checkModule(compiled, pages); err != nil {
		return "", err
	}

	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous: any number of instances of one module
		WithArgs(spec.Argv()...).
		WithSysWalltime().WithSysNanotime().
		WithRandSource(rand.Reader).
		WithStartFunctions("_start")
	for _, kv := range spec.EnvList() {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	if spec.WorkDir != "" {
		mc = mc.WithEnv("PWD", spec.WorkDir)
	}
	fs := wazero.NewFSConfig()
	for _, m := range spec.Mounts {
		if m.ReadOnly {
			fs = fs.(sysfs.FSConfig).WithSysFSMount(readOnlyFS{&sysfs.ReadFS{FS: sysfs.DirFS(m.Source)}}, m.Target)
		} else {
			fs = fs.WithDirMount(m.Source, m.Target)
		}
	}
	mc = mc.WithFSConfig(fs)

	var group *cpuGroup
	if c := spec.Resources.CPU; c > 0 && c < 1000 && e.cpu != nil {
		var name [8]byte
		rand.Read(name[:])
		if group, err = e.cpu.group(hex.EncodeToString(name[:]), c); err != nil {
			return "", fmt.Errorf("wasm: CPU limit: %w: %w", err, executor.ErrUnavailable)
		}
	}
	runCtx, cancel := context.WithCancelCause(context.Background())
	in := &process{mem: &memory{limit: uint64(pages) * PageSize}, cpu: group, cancel: cancel}
	// A module cannot catch a signal, so grace is not used: Stop closes it
	// at once.
	in.Instance = instance.New(e.cfg.LogLimit, func(time.Duration) { cancel(errStopped) })
	mc = mc.WithStdout(in.Stdout()).WithStderr(in.Stderr()).WithStdin(eofReader{})
	id, err := e.instances.Add(in)
	if err != nil {
		cancel(nil)
		if group != nil {
			group.remove()
		}
		return "", err
	}
	// Sleeping in poll_oneoff must end with the context too: wazero only
	// checks it between calls.
	mc = mc.WithNanosleep(func(ns int64) {
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-runCtx.Done():
		}
	})
	if spec.Timeout > 0 {
		t := time.AfterFunc(spec.Timeout, func() { cancel(errTimeout) })
		context.AfterFunc(runCtx, func() { t.Stop() })
	}
	started := time.Now()
	go e.run(experimental.WithMemoryAllocator(runCtx, in.mem), in, compiled, mc, started)
	e.log.Debug("started", "instance", id, "memory_pages", pages, "cpu", spec.Resources.CPU, "cpu_limited", group != nil)
	return id, nil
}

func (e *Executor) run(ctx context.Context, in *process, compiled wazero.CompiledModule, mc wazero.ModuleConfig, started time.Time) {
	// The module runs on this thread alone: its CPU time is the thread's,
	// and a CPU limit moves just this thread into the instance's cgroup.
	runtime.LockOSThread()
	var mod api.Module
	var err error
	if in.cpu != nil {
		if err = in.cpu.enter(); err != nil {
			err = fmt.Errorf("wasm: CPU limit: %w", err)
		}
	}
	cpu0 := threadCPU()
	in.cpuMu.Lock()
	in.tid, in.cpu0 = threadID(), cpu0
	in.cpuMu.Unlock()
	if err == nil {
		mod, err = e.rt.InstantiateModule(ctx, compiled, mc)
	}
	if mod != nil {
		mod.Close(context.Background())
	}
	cpuTime := threadCPU() - cpu0
	in.cpuMu.Lock() // before the thread is let go: Stats reads its clock
	in.tid, in.cpuUsed = 0, max(cpuTime, 0)
	in.cpuMu.Unlock()
	if in.cpu != nil {
		throttled := in.cpu.throttled()
		if lerr := in.cpu.leave(); lerr != nil {
			// The thread stays locked and so ends with this goroutine,
			// taking the cgroup membership with it.
			e.log.Warn("wasm: thread left in its CPU cgroup", "instance", in.ID(), "err", lerr)
		} else {
			runtime.UnlockOSThread()
			if rerr := in.cpu.remove(); rerr != nil {
				e.log.Warn("wasm: remove CPU cgroup", "instance", in.ID(), "err", rerr)
			}
		}
		e.log.Debug("cpu", "instance", in.ID(), "cpu_time", cpuTime, "throttled", throttled)
	} else {
		runtime.UnlockOSThread()
	}
	if cpuTime <= 0 {
		cpuTime = time.Since(started) // no thread clock: an upper bound
	}
	// No code of the instance runs any more: its memory can go.
	in.mem.release()
	res := executor.Result{
		StartedAt:  started,
		FinishedAt: time.Now(),
		Usage: executor.Usage{
			CPUTime:    cpuTime,
			MemoryPeak: match.Bytes(in.mem.peak.Load()),
		},
	}
	var exit *sys.ExitError
	cause := context.Cause(ctx)
	switch {
	case cause == errTimeout:
		res.ExitCode, res.Reason = -1, executor.ReasonTimedOut
	case cause == errStopped:
		res.ExitCode, res.Reason = -1, executor.ReasonCancelled
	case err == nil:
		res.ExitCode, res.Reason = 0, executor.ReasonExited
	case errors.As(err, &exit):
		res.ExitCode, res.Reason = int(exit.ExitCode()), executor.ReasonExited
		if res.ExitCode != 0 && in.mem.refused.Load() {
			res.Reason = executor.ReasonOOMKilled
		}
	default:
		res.ExitCode, res.Reason, res.Error = -1, executor.ReasonFailed, err.Error()
		if in.mem.refused.Load() {
			res.Reason = executor.ReasonOOMKilled
		}
	}
	in.cancel(nil)
	in.Finish(res)
	e.log.Debug("ended", "instance", in.ID(), "reason", res.Reason, "exit_code", res.ExitCode)
}

// compile returns the compiled module for bin, from the cache when it is
// there. Concurrent starts of one new module compile it once.
func (e *Executor) compile(ctx context.Context, bin []byte) (wazero.CompiledModule, error) {
	sum := sha256.Sum256(bin)
	hash := hex.EncodeToString(sum[:])
	e.mu.Lock()
	if el, ok := e.modules[hash]; ok {
		e.lru.MoveToFront(el)
		m := el.Value.(*module)
		e.mu.Unlock()
		select {
		case <-m.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if m.err != nil {
			return nil, m.err
		}
		return m.compiled, nil
	}
	m := &module{hash: hash, ready: make(chan struct{})}
	e.modules[hash] = e.lru.PushFront(m)
	var evicted []*module
	for e.lru.Len() > e.cfg.MaxModules {
		old := e.lru.Remove(e.lru.Back()).(*module)
		delete(e.modules, old.hash)
		evicted = append(evicted, old)
	}
	e.mu.Unlock()
	for _, old := range evicted {
		go func() {
			<-old.ready
			if old.compiled != nil {
				old.compiled.Close(context.Background())
			}
		}()
	}

	began := time.Now()
	// Compile with a context of its own: other starts may be waiting on
	// this compilation after ctx is gone.
	m.compiled, m.err = e.rt.CompileModule(context.WithoutCancel(ctx), bin)
	if m.err != nil {
		m.err = fmt.Errorf("wasm: compile module %s: %v: %w", hash[:12], m.err, executor.ErrImage)
		e.mu.Lock()
		if el, ok := e.modules[hash]; ok && el.Value == m {
			e.lru.Remove(el)
			delete(e.modules, hash)
		}
		e.mu.Unlock()
	}
	close(m.ready)
	e.log.Debug("compiled", "module", hash[:12], "took", time.Since(began), "err", m.err)
	return m.compiled, m.err
}

// checkModule refuses a module that imports what the executor does not
// provide or whose memory cannot fit in pages.
func (e *Executor) checkModule(c wazero.CompiledModule, pages uint32) error {
	var v executor.ValidationError
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName || !e.wasi[name] {
			v.Add("module", "imports %s.%s, which the wasm executor does not provide (only WASI preview1)", mod, name)
		}
	}
	if _, ok := c.ExportedFunctions()["_start"]; !ok {
		v.Add("module", "exports no _start function: not a WASI command module")
	}
	mems := c.ImportedMemories()
	for _, m := range c.ExportedMemories() {
		mems = append(mems, m)
	}
	for _, m := range mems {
		if m.Min() > pages {
			v.Add("resources.memory", "the module needs at least %s of memory, over the limit of %s",
				match.Bytes(uint64(m.Min())*PageSize), match.Bytes(uint64(pages)*PageSize))
		}
	}
	return v.Err()
}

// Wait implements executor.Executor.
func (e *Executor) Wait(ctx context.Context, id string) (executor.Result, error) {
	return e.instances.Wait(ctx, id)
}

// Stop implements executor.Executor. A module cannot catch a signal, so
// grace is not used: the module is closed at once.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	return e.instances.Stop(ctx, id, grace)
}

// Logs implements executor.Executor.
func (e *Executor) Logs(ctx context.Context, id string, opts executor.LogOptions, stdout, stderr io.Writer) error {
	return e.instances.Logs(ctx, id, opts, stdout, stderr)
}

// Stats implements executor.Statser: the CPU time of the module's thread
// (its CPU clock, exact and cheap) and the size of its linear memory. An
// ended instance's usage is its Result's.
func (e *Executor) Stats(ctx context.Context, id string) (executor.Usage, error) {
	in, err := e.instances.Get(id)
	if err != nil {
		return executor.Usage{}, err
	}
	if in.Ended() {
		res, err := e.instances.Wait(ctx, id)
		return res.Usage, err
	}
	return executor.Usage{
		CPUTime:    in.cpuTime(),
		Memory:     match.Bytes(in.mem.size.Load()),
		MemoryPeak: match.Bytes(in.mem.peak.Load()),
		PIDs:       1,
	}, nil
}

// Remove implements executor.Executor. A ctx that is already done changes
// nothing.
func (e *Executor) Remove(ctx context.Context, id string) error {
	return e.instances.Remove(ctx, id)
}

// eofReader is an empty stdin.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// readOnlyFS is wazero's read-only directory, but a file opened for
// writing fails with EROFS ("read-only file system", as in a container or
// a VM) rather than ENOSYS.
type readOnlyFS struct{ *sysfs.ReadFS }

func (r readOnlyFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_WRONLY | experimentalsys.O_RDWR) {
	case experimentalsys.O_WRONLY, experimentalsys.O_RDWR:
		if flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.EISDIR
		}
		return nil, experimentalsys.EROFS
	}
	return r.ReadFS.OpenFile(path, flag, perm)
}
