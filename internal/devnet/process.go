package devnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command is a node process to start.
type Command struct {
	Path string   // the dms binary
	Args []string // without the program name; must name the home with --home
	Env  []string
	Dir  string // working directory; empty: the caller's
	Log  string // file that receives stdout and stderr (appended, 0600)
}

// Process is a started node process. It runs in its own process group (so
// that a Ctrl-C in the terminal that started it does not reach it) and
// outlives the process that started it.
type Process struct {
	PID  int
	done chan struct{}
	err  error // set before done is closed
}

// Start starts c detached: its own process group, stdin from /dev/null,
// stdout and stderr to c.Log.
func Start(c Command) (*Process, error) {
	logf, err := os.OpenFile(c.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	p := &Process{PID: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Exited is closed when the process exits while the starter still runs.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Err is how the process ended; valid once Exited is closed.
func (p *Process) Err() error { return p.err }

// Alive reports whether pid is a live (not zombie) process started with
// --home home: a node of the devnet, not an unrelated process that reused
// the pid. Without /proc it falls back to asking whether pid exists.
func Alive(pid int, home string) bool {
	if pid <= 0 {
		return false
	}
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	proc := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	if s := stat[i+2]; s == 'Z' || s == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	return hasHome(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), home)
}

// hasHome reports whether the arguments name home with --home.
func hasHome(args []string, home string) bool {
	for i, a := range args {
		if a == "--home="+home || (a == "--home" && i+1 < len(args) && args[i+1] == home) {
			return true
		}
	}
	return false
}

// Proc identifies a node process to stop.
type Proc struct {
	PID  int
	Home string
}

// killGrace bounds the wait for processes to vanish after SIGKILL.
const killGrace = 5 * time.Second

// pollEvery is how often Stop looks whether processes are gone.
const pollEvery = 50 * time.Millisecond

// Stop stops the processes of procs that are alive: SIGTERM, then, for
// those still alive after timeout (or at once when ctx ends), SIGKILL to
// their process group. Each stopped process's group is then swept with
// SIGKILL, so that no child of a node outlives it. It returns the
// processes it found alive, and an error naming any still alive at the
// end. Processes already gone are skipped: Stop is idempotent.
func Stop(ctx context.Context, procs []Proc, timeout time.Duration) ([]Proc, error) {
	var live []Proc
	for _, p := range procs {
		if Alive(p.PID, p.Home) {
			live = append(live, p)
		}
	}
	for _, p := range live {
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
	}
	if left := waitGone(ctx, live, timeout); len(left) > 0 {
		for _, p := range left {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
		// Not bounded by ctx: once killed, the processes go in
		// milliseconds, and the caller needs to know they did.
		if left = waitGone(context.Background(), left, killGrace); len(left) > 0 {
			pids := make([]string, len(left))
			for i, p := range left {
				pids[i] = strconv.Itoa(p.PID)
			}
			return live, fmt.Errorf("process(es) %s still alive after SIGKILL", strings.Join(pids, ", "))
		}
	}
	for _, p := range live {
		// The group's leader is gone; what remains of the group are
		// children the node left behind.
		if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return live, fmt.Errorf("kill process group %d: %w", p.PID, err)
		}
	}
	return live, nil
}

// waitGone polls until none of procs is alive, the timeout passes or ctx
// ends, and returns those still alive.
func waitGone(ctx context.Context, procs []Proc, timeout time.Duration) []Proc {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var left []Proc
		for _, p := range procs {
			if Alive(p.PID, p.Home) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		procs = left
		select {
		case <-tick.C:
		case <-deadline.C:
			return left
		case <-ctx.Done():
			return left
		}
	}
}
