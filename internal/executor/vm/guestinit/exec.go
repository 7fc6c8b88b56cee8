//go:build linux && amd64

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// execAgent serves `dms deployment exec` on the virtio-serial port
// guest.ExecPort: it starts each session's command like the payload (in
// its root, with its environment and working directory) and relays its
// streams as frames.
type execAgent struct {
	root, dir string
	env       []string

	port *os.File
	wmu  sync.Mutex // one frame at a time on the port

	mu       sync.Mutex
	sessions map[uint32]*execSession
}

// execSession is one running command.
type execSession struct {
	stdin chan []byte // nil data: stdin closed
	tty   *os.File    // the terminal's master side, with a TTY
}

// serveExec finds the exec port and serves it until the guest ends. It
// loads the virtio modules of /etc/dms/modules first (the port needs
// virtio_console); without the port there is no exec, and the payload
// runs all the same.
func serveExec(root, dir string, env []string) {
	dev, err := setUp()
	if err != nil {
		bootLog("guestinit: exec: %v", err)
		return
	}
	// Blocking: a write waits for the host to connect, a read returns 0
	// while it is not.
	fd, err := syscall.Open(dev, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		bootLog("guestinit: exec: open %s: %v", dev, err)
		return
	}
	a := &execAgent{root: root, dir: dir, env: env, port: os.NewFile(uintptr(fd), dev), sessions: map[uint32]*execSession{}}
	for {
		if err := a.send(guest.Frame{Type: guest.FrameHello}); err != nil {
			bootLog("guestinit: exec: %v", err)
			return
		}
		r := bufio.NewReaderSize(a.port, 64<<10)
		for {
			f, err := guest.ReadFrame(r)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					bootLog("guestinit: exec: %v", err)
				}
				break
			}
			a.handle(f)
		}
		// The host went away: its sessions get no more input.
		a.mu.Lock()
		for id, s := range a.sessions {
			close(s.stdin)
			delete(a.sessions, id)
		}
		a.mu.Unlock()
	}
}

// setUp loads the modules and finds the port at the lowest priority, so
// as not to slow the payload's start on a one-vCPU guest.
func setUp() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
	defer unix.Setpriority(unix.PRIO_PROCESS, tid, 0)
	// virtio_net is net.go's business.
	virtio := func(name string) bool { return strings.HasPrefix(name, "virtio") && !subnetModules[name] }
	if err := loadModulesWith("/etc/dms/modules", virtio); err != nil {
		return "", err
	}
	return findPort(guest.ExecPort, 10*time.Second)
}

// bootLog writes a line the host keeps with the kernel's boot log.
func bootLog(format string, args ...any) {
	console.mu.Lock()
	defer console.mu.Unlock()
	fmt.Fprintf(console.f, format+"\n", args...)
}

// findPort waits for the virtio-serial port called name and returns its
// device.
func findPort(name string, timeout time.Duration) (string, error) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == name {
				dev := "/dev/" + filepath.Base(filepath.Dir(p))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port %s (does the kernel have virtio_console?)", name)
		}
	}
}

func (a *execAgent) send(f guest.Frame) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return guest.WriteFrame(a.port, f)
}

func (a *execAgent) handle(f guest.Frame) {
	a.mu.Lock()
	s := a.sessions[f.Session]
	a.mu.Unlock()
	switch f.Type {
	case guest.FrameOpen:
		if s != nil {
			return
		}
		req, err := guest.ParseOpen(f.Data)
		if err != nil {
			a.send(guest.Frame{Type: guest.FrameStderr, Session: f.Session, Data: []byte("guestinit: " + err.Error() + "\n")})
			a.send(guest.ExitFrame(f.Session, 126))
			return
		}
		a.start(f.Session, req)
	case guest.FrameStdin, guest.FrameStdinClose:
		if s == nil {
			return
		}
		if f.Type == guest.FrameStdinClose {
			a.mu.Lock()
			delete(a.sessions, f.Session)
			a.mu.Unlock()
			close(s.stdin)
			return
		}
		s.stdin <- f.Data
	case guest.FrameResize:
		if s != nil && s.tty != nil {
			rows, cols := guest.ParseResize(f.Data)
			setSize(s.tty, rows, cols)
		}
	}
}

// start runs a session's command.
func (a *execAgent) start(id uint32, req guest.ExecRequest) {
	cmd := exec.Command(req.Args[0], req.Args[1:]...)
	cmd.Env = a.env
	cmd.Dir = a.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if a.root != "/" {
		cmd.SysProcAttr.Chroot = a.root
		if cmd.Dir == "" {
			cmd.Dir = "/"
		}
		cmd.Path, cmd.Err = lookPathIn(a.root, req.Args[0], cmd.Env), nil
	}
	s := &execSession{stdin: make(chan []byte, 8)}
	var stdin io.WriteCloser
	var closeAfterStart []io.Closer
	if req.TTY {
		master, slave, err := openPTY(req.Rows, req.Cols)
		if err != nil {
			a.failed(id, err, 126)
			return
		}
		s.tty = master
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
		closeAfterStart = append(closeAfterStart, slave)
		stdin = eofOnClose{master}
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			a.failed(id, err, 126)
			return
		}
		cmd.Stdin = pr
		cmd.Stdout = &frameWriter{a: a, typ: guest.FrameStdout, session: id}
		cmd.Stderr = &frameWriter{a: a, typ: guest.FrameStderr, session: id}
		cmd.WaitDelay = time.Second // background children may keep the pipes open
		closeAfterStart = append(closeAfterStart, pr)
		stdin = pw
	}
	err := cmd.Start()
	for _, c := range closeAfterStart {
		c.Close()
	}
	if err != nil {
		stdin.Close()
		if s.tty != nil {
			s.tty.Close()
		}
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		a.failed(id, err, code)
		return
	}
	a.mu.Lock()
	a.sessions[id] = s
	a.mu.Unlock()
	go func() { // stdin, so that a command that does not read blocks only itself
		for b := range s.stdin {
			if _, err := stdin.Write(b); err != nil {
				break
			}
		}
		stdin.Close()
		for range s.stdin { // drain until the session is closed
		}
	}()
	go func() {
		if s.tty != nil {
			// EIO once the command and its children closed the terminal.
			io.Copy(&frameWriter{a: a, typ: guest.FrameStdout, session: id}, s.tty)
		}
		err := cmd.Wait()
		if s.tty != nil {
			s.tty.Close()
		}
		a.send(guest.ExitFrame(id, exitCode(err)))
	}()
}

func (a *execAgent) failed(id uint32, err error, code int) {
	a.send(guest.Frame{Type: guest.FrameStderr, Session: id, Data: []byte("guestinit: exec: " + err.Error() + "\n")})
	a.send(guest.ExitFrame(id, code))
}

// exitCode is a command's exit code as a shell reports it.
func exitCode(err error) int {
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return 0
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	return 127
}

// frameWriter sends what a command writes as frames of one type.
type frameWriter struct {
	a       *execAgent
	typ     byte
	session uint32
}

func (w *frameWriter) Write(p []byte) (int, error) {
	for n := 0; n < len(p); {
		chunk := p[n:min(len(p), n+guest.MaxFramePayload)]
		if err := w.a.send(guest.Frame{Type: w.typ, Session: w.session, Data: chunk}); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return len(p), nil
}

// eofOnClose is a terminal's input: closing it types the end-of-file
// character (Ctrl-D), as closing stdin on a terminal means.
type eofOnClose struct{ f *os.File }

func (e eofOnClose) Write(p []byte) (int, error) { return e.f.Write(p) }
func (e eofOnClose) Close() error {
	_, err := e.f.Write([]byte{4})
	return err
}

// openPTY opens a new terminal pair, sized rows×cols when both are set.
func openPTY(rows, cols int) (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("the terminal's number: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	setSize(master, rows, cols)
	return master, os.NewFile(uintptr(sfd), name), nil
}

func setSize(tty *os.File, rows, cols int) {
	if rows > 0 && cols > 0 {
		unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	}
}
