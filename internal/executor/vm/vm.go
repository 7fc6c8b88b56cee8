// Package vm is the microVM executor: it boots the job's own kernel and
// initramfs in a QEMU microvm (-M microvm, Debian's qemu-system-x86) and
// runs the command as the guest's payload.
//
// # Usage
//
//	ex, err := vm.New(vm.Config{}) // TCG; vm.Config{Accel: "kvm"} to use KVM
//	...
//	id, err := ex.Start(ctx, executor.Spec{
//		VM:      &executor.VMImage{Kernel: "/jobs/a1/vmlinux", Initrd: "/jobs/a1/initramfs.cpio"},
//		Command: []string{"/bin/app", "--fast"},
//	})
//
// # The guest
//
// The job's initramfs has the dms guest init as /init (package
// vm/guestinit; build the archive with Initramfs). The executor passes the
// command, environment, working directory and mounts on the kernel command
// line; the guest init runs the command, tags its stdout and stderr on the
// serial console, reports the exit code there and reboots, which ends QEMU
// (package vm/guest has the protocol). The console's other lines are the
// kernel's boot log: they are not the job's logs, but the last of them
// explain a VM that failed before its payload started.
//
// VMImage.Rootfs, when given, is attached as the virtio block device
// /dev/vda (copy-on-write: the file is never written) and the payload runs
// chrooted in it. Mounts are shared over virtio-9p. Both need the guest
// kernel's virtio-mmio, virtio-blk/ext4 and 9p drivers: built in, or as
// modules the initramfs lists in /etc/dms/modules.
//
// # Size and limits
//
// Resources.CPU gives the vCPUs (rounded up to whole cores, at least one),
// Resources.Memory the guest's RAM (default Config.DefaultMemory). The
// guest kernel itself enforces what happens inside; an out-of-memory kill
// of the payload there is reported as ReasonOOMKilled. There is no network
// to the outside (Network must be "" or none, no Ports), no GPU and no
// privileged mode.
//
// # Subnet
//
// With Spec.Subnet the guest joins its deployment's subnet: Start calls
// Subnet.OpenGuest for one end of a unix datagram socket pair
// (link.GuestPair), which QEMU inherits (-netdev socket,fd=3)
// behind a virtio-net device with MAC link.GuestMAC(addr). The guest init
// loads virtio_net (with failover and net_failover, from
// /etc/dms/modules unless built in), renames the interface
// executor.SubnetInterface (dms0), gives it Subnet.Addr and MTU
// subnet.MTU, and writes /etc/resolv.conf (nameserver Subnet.DNS, search
// internal) in the root the payload runs in. The subnet is the guest's
// only network: the address's prefix is its one route.
//
// # Acceleration
//
// TCG (software emulation) is the default: it works everywhere, and on
// machines whose /dev/kvm is a nested PVM a stock kernel hangs under KVM.
// Config.Accel "kvm" opts in. Every Result says which one ran (Accel) and
// how long the boot took (Boot). An uncompressed kernel (vmlinux, booted
// through its PVH entry) starts about three times as fast under TCG as a
// compressed vmlinuz, which must decompress itself in emulation.
//
// Under TCG the executor tells the guest kernel the TSC rate
// (tsc_early_khz, measured on the host): calibrating it against the
// emulated PIT fails on a busy host, and microvm has no other timer to
// fall back on, so the boot would hang.
//
// # Other VMMs
//
// QEMU is reached through the backend interface (backend.go); a
// Firecracker backend would implement it (see docs/executors.md). None
// ships: Firecracker cannot be had on the machines dms is tested on.
//
// VMs are child processes of dms and end with it (a parent-death signal),
// so there is nothing to re-attach to after a restart: vm has no Lister.
// A VM's subnet link therefore never outlives the data path's end of it:
// after a node restart the allocation starts a new VM, which gets a new
// socket pair.
// It implements executor.Executor, Pauser, Statser, ExecStreamer and
// Execer.
//
// # Exec
//
// Every VM has a virtio-serial port whose host end is a unix socket in a
// private temporary directory; the guest init serves commands on it while
// the payload runs (ExecStream; package vm/guest has the frames). The
// guest kernel needs virtio_console, built in or a module the initramfs
// lists in /etc/dms/modules.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/instance"
	"github.com/dmsnet/dms/internal/executor/internal/logbuf"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/link"
)

// Accelerators.
const (
	AccelTCG = "tcg"
	AccelKVM = "kvm"
)

// Config configures the microVM executor. The zero value uses TCG and
// qemu-system-x86_64 from PATH.
type Config struct {
	// QEMUPath is the QEMU binary (default: qemu-system-x86_64 in PATH).
	QEMUPath string
	// Accel is "tcg" (the default) or "kvm".
	Accel string
	// DefaultMemory is a VM's RAM when the spec gives none (default
	// 256 MiB).
	DefaultMemory match.Bytes
	// MaxCPUs caps the vCPUs of a VM (default: no cap).
	MaxCPUs int
	// KernelArgs are added to every VM's kernel command line.
	KernelArgs []string
	// LogLimit is the bytes of output kept per stream and instance
	// (default 8 MiB).
	LogLimit int
	Logger   *slog.Logger
}

// MinMemory is the least RAM a VM may be given.
const MinMemory = 64 << 20

// maxCmdline is the x86 kernel's command line limit (COMMAND_LINE_SIZE).
const maxCmdline = 2048

// Executor runs microVMs. Create it with New and Close it when done.
type Executor struct {
	cfg       Config
	log       *slog.Logger
	backend   backend
	instances *instance.Table[*process]
}

var (
	_ executor.Executor     = (*Executor)(nil)
	_ executor.Pauser       = (*Executor)(nil)
	_ executor.Statser      = (*Executor)(nil)
	_ executor.ExecStreamer = (*Executor)(nil)
	_ executor.Execer       = (*Executor)(nil)
	_ io.Closer             = (*Executor)(nil)
)

// New checks the configuration and returns the executor. QEMU is looked
// up when a VM starts, so a machine without it can still create the
// executor (Start then fails with ErrUnavailable).
func New(cfg Config) (*Executor, error) {
	if cfg.Accel == "" {
		cfg.Accel = AccelTCG
	}
	if cfg.Accel != AccelTCG && cfg.Accel != AccelKVM {
		return nil, fmt.Errorf("vm: accel %q is not tcg or kvm", cfg.Accel)
	}
	if cfg.QEMUPath == "" {
		cfg.QEMUPath = "qemu-system-x86_64"
	}
	if cfg.DefaultMemory == 0 {
		cfg.DefaultMemory = 256 << 20
	}
	if cfg.DefaultMemory < MinMemory {
		return nil, fmt.Errorf("vm: default memory %s is below %s", cfg.DefaultMemory, match.Bytes(MinMemory))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "executor", "executor", "vm"),
		backend:   qemu{path: cfg.QEMUPath, accel: cfg.Accel},
		instances: instance.NewTable[*process]("vm"),
	}, nil
}

// Close kills every VM (their Results say ReasonCancelled); Start then
// returns ErrUnavailable. The ended instances stay readable until Remove.
// A second Close does nothing and returns nil.
func (e *Executor) Close() error { return e.instances.Close(nil) }

// process is one VM: the VMM's child process and what its console said.
type process struct {
	*instance.Instance
	cmd     *exec.Cmd      // started before the instance is added
	boot    *logbuf.Buffer // the kernel's console lines, for diagnostics
	stderr  bytes.Buffer   // QEMU's own messages
	started time.Time

	sockDir, execSocket string     // exec's unix socket, in its own directory
	agentMu             sync.Mutex // guards agent
	agent               *execConn  // the connection to the guest's exec agent, nil before the first exec

	mu     sync.Mutex
	cause  executor.Reason // guarded by mu: why we ended it, "" if we did not
	paused bool            // guarded by mu
}

// validate checks spec for a microVM and returns the machine to boot.
func (e *Executor) validate(spec *executor.Spec) (machine, error) {
	var v executor.ValidationError
	v.Include(spec.Validate())
	var m machine
	if spec.VM == nil {
		if spec.Image != "" || spec.Module != nil {
			v.Add("vm", "required: the vm executor boots a kernel, not an image or a module")
		}
		return m, v.Err()
	}
	img := spec.VM
	checkFile := func(field, path string) {
		if path == "" {
			return
		}
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			v.Add(field, "%s is not a file on the host", path)
		}
	}
	checkFile("vm.kernel", img.Kernel)
	checkFile("vm.initrd", img.Initrd)
	checkFile("vm.rootfs", img.Rootfs)
	if img.Initrd == "" {
		v.Add("vm.initrd", "required: an initramfs with the dms guest init as /init")
	}
	if len(spec.Ports) > 0 {
		v.Add("ports", "the vm executor has no network")
	}
	if spec.Network != executor.NetworkDefault && spec.Network != executor.NetworkNone {
		v.Add("network", "the vm executor has only network none")
	}
	if len(spec.Resources.GPUs) > 0 {
		v.Add("resources.gpus", "the vm executor has no GPUs")
	}
	if spec.Privileged {
		v.Add("privileged", "not available in the vm executor")
	}

	m = machine{kernel: img.Kernel, initrd: img.Initrd, rootfs: img.Rootfs, cpus: 1, memory: e.cfg.DefaultMemory}
	if c := spec.Resources.CPU; c > 0 {
		m.cpus = int((c + 999) / 1000)
	}
	if e.cfg.MaxCPUs > 0 && m.cpus > e.cfg.MaxCPUs {
		v.Add("resources.cpu", "%d vCPUs is over this provider's limit of %d", m.cpus, e.cfg.MaxCPUs)
	}
	if mem := spec.Resources.Memory; mem > 0 {
		m.memory = mem
	}
	if m.memory < MinMemory {
		v.Add("resources.memory", "%s is below the %s a Linux guest needs", m.memory, match.Bytes(MinMemory))
	}
	m.memory = (m.memory + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB

	gs := guest.Spec{Args: spec.Argv(), Env: spec.EnvList(), Dir: spec.WorkDir}
	for i, mt := range spec.Mounts {
		if st, err := os.Stat(mt.Source); err != nil || !st.IsDir() {
			v.Add(fmt.Sprintf("mounts[%d].source", i), "%s is not a directory on the host", mt.Source)
		}
		tag := "dms" + strconv.Itoa(i)
		m.shares = append(m.shares, share{tag: tag, source: mt.Source, readOnly: mt.ReadOnly})
		gs.Mounts = append(gs.Mounts, guest.Mount{Tag: tag, Target: mt.Target, ReadOnly: mt.ReadOnly})
	}
	if img.Rootfs != "" {
		gs.Root = "/dev/vda"
	}
	if sn := spec.Subnet; sn != nil {
		switch {
		case !sn.Addr.IsValid() || !sn.Addr.Addr().Is4() || sn.Addr.Bits() > 30:
			v.Add("subnet.addr", "%s is not an IPv4 address with a prefix of at most 30 bits", sn.Addr)
		case sn.DNS.IsValid() && !sn.DNS.Is4():
			v.Add("subnet.dns", "%s is not an IPv4 address", sn.DNS)
		case sn.OpenGuest == nil:
			v.Add("subnet", "no OpenGuest hook: the vm executor needs the guest's end of the data path")
		default:
			mac := link.GuestMAC(sn.Addr.Addr()).String()
			m.net = &netdev{fd: 3, mac: mac} // the first of ExtraFiles
			gs.Net = &guest.Net{Name: executor.SubnetInterface, MAC: mac, Addr: sn.Addr.String(), MTU: subnet.MTU}
			if sn.DNS.IsValid() {
				gs.Net.DNS = sn.DNS.String()
			}
		}
	}
	param, err := guest.Encode(gs)
	if err != nil {
		v.Add("command", "%v", err)
	}
	args := []string{"console=ttyS0", "earlyprintk=ttyS0", "reboot=t", "panic=-1", "quiet"}
	if khz := tscKHz(); e.cfg.Accel == AccelTCG && khz > 0 {
		args = append(args, "tsc_early_khz="+strconv.FormatUint(khz, 10))
	}
	args = append(args, e.cfg.KernelArgs...)
	args = append(args, img.KernelArgs...)
	m.cmdline = strings.Join(append(args, param), " ")
	if len(m.cmdline) >= maxCmdline {
		v.Add("command", "with its environment and mounts it makes a kernel command line of %d bytes, over the limit of %d", len(m.cmdline), maxCmdline-1)
	}
	return m, v.Err()
}

// Start implements executor.Executor: it starts QEMU and returns; the
// guest boots in the background (Result.Boot says how long it took).
func (e *Executor) Start(ctx context.Context, spec executor.Spec) (string, error) {
	if err := e.instances.Err(); err != nil {
		return "", err
	}
	m, err := e.validate(&spec)
	if err != nil {
		return "", err
	}
	// exec's socket: a private directory, the path short enough for a
	// unix socket (108 bytes) even with a long TMPDIR.
	sockDir, err := os.MkdirTemp("", "dms-vm-")
	if err == nil && len(sockDir) > 90 {
		os.RemoveAll(sockDir)
		sockDir, err = os.MkdirTemp("/tmp", "dms-vm-")
	}
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	m.execSocket = filepath.Join(sockDir, "exec.sock")
	cmd, err := e.backend.command(m)
	if err != nil {
		os.RemoveAll(sockDir)
		return "", err
	}
	if m.net != nil {
		// QEMU inherits the guest's end of the data path; ours is closed
		// once QEMU holds it (or did not start).
		f, err := spec.Subnet.OpenGuest(ctx)
		if err == nil && f == nil {
			err = errors.New("OpenGuest returned no socket")
		}
		if err != nil {
			os.RemoveAll(sockDir)
			return "", fmt.Errorf("vm: subnet: %w", err)
		}
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
	}
	in := &process{cmd: cmd, boot: logbuf.New(64 << 10), sockDir: sockDir, execSocket: m.execSocket}
	started := false
	defer func() {
		if !started {
			os.RemoveAll(sockDir)
		}
	}()
	// end waits out the grace: not in the caller's goroutine.
	in.Instance = instance.New(e.cfg.LogLimit, func(grace time.Duration) { go in.end(executor.ReasonCancelled, grace) })
	cmd.Stdin = nil
	cmd.Stderr = &limitedWriter{w: &in.stderr, n: 64 << 10}
	console, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	// The VM ends with dms; it gets its own process group so signals to
	// dms's group (a terminal's ^C) do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}

	in.started = time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("vm: %w: %v (install Debian's qemu-system-x86)", executor.ErrUnavailable, err)
		}
		return "", fmt.Errorf("vm: start %s: %w", e.backend.name(), err)
	}
	// Only a started VM is added: Close may end it from now on.
	id, err := e.instances.Add(in)
	if err != nil { // closed while QEMU started
		cmd.Process.Kill()
		cmd.Wait()
		return "", err
	}
	if spec.Timeout > 0 {
		t := time.AfterFunc(spec.Timeout, func() { in.end(executor.ReasonTimedOut, 0) })
		go func() { <-in.Done(); t.Stop() }()
	}
	started = true
	go e.run(in, console)
	e.log.Debug("started", "instance", id, "accel", e.cfg.Accel, "cpus", m.cpus, "memory", m.memory)
	return id, nil
}

// run reads the console until QEMU exits and records the Result.
func (e *Executor) run(in *process, console io.Reader) {
	st := readConsole(console, in.Stdout(), in.Stderr(), in.boot.Stdout(), in.started)
	werr := in.cmd.Wait()
	in.closeExec()
	os.RemoveAll(in.sockDir)
	res := executor.Result{
		ExitCode:   -1,
		StartedAt:  in.started,
		FinishedAt: time.Now(),
		Accel:      e.cfg.Accel,
		Boot:       st.boot,
	}
	if ps := in.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.Usage.CPUTime = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			res.Usage.MemoryPeak = match.Bytes(ru.Maxrss) << 10
		}
	}
	in.mu.Lock()
	cause := in.cause
	in.mu.Unlock()
	switch {
	case cause != "":
		res.Reason = cause
		if st.exited {
			res.ExitCode = st.code // it ended while being stopped
		}
	case st.exited:
		res.ExitCode, res.Reason = st.code, executor.ReasonExited
		if st.oom {
			res.Reason = executor.ReasonOOMKilled
		}
	default:
		res.Reason = executor.ReasonFailed
		res.Error = e.diagnose(in, st, werr)
	}
	in.boot.Close()
	in.Finish(res)
	e.log.Debug("ended", "instance", in.ID(), "reason", res.Reason, "exit_code", res.ExitCode, "boot", res.Boot)
}

// diagnose explains a VM that ended without an exit code.
func (e *Executor) diagnose(in *process, st consoleState, werr error) string {
	var why []string
	switch {
	case st.fail != "":
		why = append(why, "guest init: "+st.fail)
	case !st.started:
		why = append(why, "the payload never started")
	default:
		why = append(why, "the guest ended without reporting an exit code")
	}
	if werr != nil {
		why = append(why, e.backend.name()+": "+werr.Error())
	}
	if s := strings.TrimSpace(in.stderr.String()); s != "" {
		why = append(why, e.backend.name()+" said: "+s)
	}
	if !st.started {
		for _, l := range strings.Split(in.boot.Tail(0, 200), "\n") {
			if i := strings.Index(l, "Kernel panic"); i >= 0 {
				why = append(why, "the guest kernel said: "+l[i:])
				break
			}
		}
	}
	if tail := strings.TrimSpace(in.boot.Tail(0, 12)); tail != "" && !st.started {
		why = append(why, "last console lines: "+strings.Join(strings.Fields(strings.ReplaceAll(tail, "\n", " | ")), " "))
	}
	return strings.Join(why, "; ")
}

// consoleState is what the console said.
type consoleState struct {
	started bool
	boot    time.Duration
	exited  bool
	code    int
	oom     bool
	fail    string
}

// readConsole splits the serial console into the payload's streams and
// the boot log, until EOF.
func readConsole(r io.Reader, stdout, stderr, bootLog io.Writer, began time.Time) consoleState {
	var st consoleState
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > 0 {
			handleLine(bytes.TrimSuffix(line, []byte("\n")), &st, stdout, stderr, bootLog, began)
		}
		line = line[:0]
		if err != nil {
			return st
		}
	}
}

func handleLine(l []byte, st *consoleState, stdout, stderr, bootLog io.Writer, began time.Time) {
	// A kernel message may have been printed on the same line before ours.
	i := bytes.Index(l, []byte(guest.Prefix))
	if i < 0 {
		bootLog.Write(append(bytes.TrimSuffix(l, []byte("\r")), '\n'))
		return
	}
	if i > 0 {
		bootLog.Write(append(l[:i:i], '\n'))
	}
	msg := l[i+len(guest.Prefix):]
	switch {
	case bytes.HasPrefix(msg, []byte(guest.Stdout)):
		stdout.Write(append(msg[len(guest.Stdout):], '\n'))
	case bytes.HasPrefix(msg, []byte(guest.Stderr)):
		stderr.Write(append(msg[len(guest.Stderr):], '\n'))
	case bytes.HasPrefix(msg, []byte(guest.StdoutNoEOL)):
		stdout.Write(msg[len(guest.StdoutNoEOL):])
	case bytes.HasPrefix(msg, []byte(guest.StderrNoEOL)):
		stderr.Write(msg[len(guest.StderrNoEOL):])
	case string(msg) == guest.Start:
		st.started, st.boot = true, time.Since(began)
	case bytes.HasPrefix(msg, []byte(guest.Exit)):
		v := string(msg[len(guest.Exit):])
		v, st.oom = strings.CutSuffix(v, guest.OOMSuffix)
		if code, err := strconv.Atoi(v); err == nil {
			st.exited, st.code = true, code
		}
	case bytes.HasPrefix(msg, []byte(guest.Fail)):
		st.fail = string(msg[len(guest.Fail):])
	}
}

// end stops the VM for reason (unless it already ended or is ending),
// SIGTERM first, SIGKILL after grace.
func (in *process) end(reason executor.Reason, grace time.Duration) {
	if in.Ended() {
		return
	}
	in.mu.Lock()
	if in.cause == "" {
		in.cause = reason
	}
	paused := in.paused
	in.mu.Unlock()
	p := in.cmd.Process
	if paused {
		p.Signal(syscall.SIGCONT) // a stopped QEMU cannot handle SIGTERM
	}
	if grace > 0 {
		p.Signal(syscall.SIGTERM)
		select {
		case <-in.Done():
			return
		case <-time.After(grace):
		}
	}
	p.Kill()
}

// Wait implements executor.Executor.
func (e *Executor) Wait(ctx context.Context, id string) (executor.Result, error) {
	return e.instances.Wait(ctx, id)
}

// Stop implements executor.Executor. QEMU ends at once on SIGTERM; the
// guest gets no shutdown.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	return e.instances.Stop(ctx, id, grace)
}

// Logs implements executor.Executor. The boot log is not part of it.
func (e *Executor) Logs(ctx context.Context, id string, opts executor.LogOptions, stdout, stderr io.Writer) error {
	return e.instances.Logs(ctx, id, opts, stdout, stderr)
}

// Remove implements executor.Executor. A ctx that is already done changes
// nothing.
func (e *Executor) Remove(ctx context.Context, id string) error {
	return e.instances.Remove(ctx, id)
}

// Pause implements executor.Pauser: QEMU is stopped (SIGSTOP).
func (e *Executor) Pause(ctx context.Context, id string) error {
	return e.signal(id, syscall.SIGSTOP, true)
}

// Resume implements executor.Pauser.
func (e *Executor) Resume(ctx context.Context, id string) error {
	return e.signal(id, syscall.SIGCONT, false)
}

func (e *Executor) signal(id string, sig syscall.Signal, paused bool) error {
	in, err := e.instances.Get(id)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.Ended() {
		return fmt.Errorf("vm: %s is not running", id)
	}
	if err := in.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("vm: %s: %w", id, err)
	}
	in.paused = paused
	return nil
}

// Stats implements executor.Statser: the QEMU process's CPU time (all its
// threads: vCPUs, I/O; from its CPU clock, else /proc/<pid>/stat) and
// resident memory (the guest's RAM as far as it has touched it).
func (e *Executor) Stats(ctx context.Context, id string) (executor.Usage, error) {
	in, err := e.instances.Get(id)
	if err != nil {
		return executor.Usage{}, err
	}
	return procUsage(in.cmd.Process.Pid)
}

// procUsage reads a process's usage from /proc.
func procUsage(pid int) (executor.Usage, error) {
	var u executor.Usage
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return u, fmt.Errorf("vm: stats: %w", err)
	}
	// Fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) > 13 {
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		u.CPUTime = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	}
	if cpu, ok := processCPU(pid); ok {
		u.CPUTime = cpu // exact, where stat has 10ms ticks
	}
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kib, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			u.Memory = match.Bytes(kib << 10)
		case "VmHWM":
			u.MemoryPeak = match.Bytes(kib << 10)
		case "Threads":
			u.PIDs = int64(kib)
		}
	}
	return u, nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
