package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
	"github.com/dmsnet/dms/internal/poll"
)

// execReady bounds the wait for the guest's exec agent (a VM still
// booting, or a guest kernel without virtio_console).
const execReady = 60 * time.Second

// ExecStream implements executor.ExecStreamer: the command runs in the
// guest beside the payload, started by the guest init (same root,
// environment and working directory). A VM accepts commands once its
// guest init runs and until the payload ends. Sessions share the VM's one
// exec connection: a caller whose Stdout does not keep up slows the
// others' output.
func (e *Executor) ExecStream(ctx context.Context, id string, opts executor.ExecOptions) (int, error) {
	in, err := e.instances.Get(id)
	if err != nil {
		return 0, err
	}
	if len(opts.Cmd) == 0 || opts.Cmd[0] == "" {
		return 0, fmt.Errorf("vm: exec in %s: empty command", id)
	}
	if in.Ended() {
		return 0, fmt.Errorf("vm: %s is not running", id)
	}
	c, err := in.execConn(ctx)
	if err != nil {
		return 0, err
	}
	ready, cancel := context.WithTimeout(ctx, execReady)
	defer cancel()
	select {
	case <-c.ready:
	case <-c.done:
		return 0, fmt.Errorf("vm: exec in %s: %w", id, c.err)
	case <-in.Done():
		return 0, fmt.Errorf("vm: %s is not running", id)
	case <-ready.Done():
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("vm: exec in %s: the guest's exec agent did not answer within %v (a guest kernel without virtio_console?)", id, execReady)
	}

	s := &execSession{stdout: opts.Stdout, stderr: opts.Stderr, exit: make(chan int, 1)}
	if s.stdout == nil {
		s.stdout = io.Discard
	}
	if s.stderr == nil {
		s.stderr = io.Discard
	}
	if opts.TTY {
		s.stderr = s.stdout
	}
	req := guest.ExecRequest{Args: opts.Cmd, TTY: opts.TTY}
	if opts.TTY && opts.Rows > 0 && opts.Cols > 0 {
		req.Rows, req.Cols = opts.Rows, opts.Cols
	}
	sid, err := c.open(s, req)
	if err != nil {
		return 0, fmt.Errorf("vm: exec in %s: %w", id, err)
	}
	var closeOnce sync.Once
	closeStdin := func() {
		closeOnce.Do(func() { c.send(guest.Frame{Type: guest.FrameStdinClose, Session: sid}) })
	}
	defer c.forget(sid, s)
	// Not waited for: a paused VM's socket may be full.
	defer func() { go closeStdin() }()

	done := make(chan struct{})
	defer close(done)
	if opts.Stdin != nil {
		go func() {
			buf := make([]byte, guest.MaxFramePayload)
			for {
				n, err := opts.Stdin.Read(buf)
				if n > 0 {
					select {
					case <-done:
						return
					default:
					}
					if c.send(guest.Frame{Type: guest.FrameStdin, Session: sid, Data: buf[:n]}) != nil {
						return
					}
				}
				if err != nil {
					break
				}
			}
			closeStdin()
		}()
	} else {
		closeStdin()
	}
	if opts.TTY && opts.Resize != nil {
		go func() {
			for {
				select {
				case sz := <-opts.Resize:
					if sz.Rows > 0 && sz.Cols > 0 {
						c.send(guest.ResizeFrame(sid, sz.Rows, sz.Cols))
					}
				case <-done:
					return
				}
			}
		}()
	}
	select {
	case code := <-s.exit:
		return code, nil
	case <-c.done:
		if in.Ended() {
			return 0, fmt.Errorf("vm: exec in %s: the VM ended", id)
		}
		return 0, fmt.Errorf("vm: exec in %s: %w", id, c.err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Exec implements executor.Execer (exec health checks) with ExecStream:
// no input, no terminal.
func (e *Executor) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	return e.ExecStream(ctx, id, executor.ExecOptions{Cmd: cmd, Stdout: stdout, Stderr: stderr})
}

// execConn returns the VM's connection to its exec agent, dialing it
// when there is none.
func (in *process) execConn(ctx context.Context) (*execConn, error) {
	in.agentMu.Lock()
	defer in.agentMu.Unlock()
	if in.agent != nil {
		select {
		case <-in.agent.done:
			in.agent = nil
		default:
			return in.agent, nil
		}
	}
	var conn net.Conn
	// QEMU creates the socket as it starts.
	err := poll.Until(ctx, 10*time.Second, "the VM's exec socket", func(ctx context.Context) (bool, error) {
		if in.Ended() {
			return false, fmt.Errorf("vm: %s is not running", in.ID())
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", in.execSocket)
		conn = c
		return err == nil, nil
	})
	if err != nil {
		return nil, err
	}
	in.agent = newExecConn(conn)
	return in.agent, nil
}

// closeExec closes the exec connection, if any (the VM ended).
func (in *process) closeExec() {
	in.agentMu.Lock()
	defer in.agentMu.Unlock()
	if in.agent != nil {
		in.agent.conn.Close()
	}
}

// execConn is one connection to a guest's exec agent, shared by the
// VM's sessions.
type execConn struct {
	conn  net.Conn
	wmu   sync.Mutex    // one frame at a time
	ready chan struct{} // closed at the agent's first hello
	done  chan struct{} // closed when the connection ended; then err says why
	err   error

	mu       sync.Mutex
	next     uint32
	sessions map[uint32]*execSession
}

// execSession is one command's side of the host.
type execSession struct {
	mu             sync.Mutex // held while writing output; closed says not to
	closed         bool
	stdout, stderr io.Writer
	exit           chan int
}

func newExecConn(conn net.Conn) *execConn {
	c := &execConn{conn: conn, ready: make(chan struct{}), done: make(chan struct{}), sessions: map[uint32]*execSession{}}
	go c.read()
	return c
}

func (c *execConn) read() {
	var readyOnce sync.Once
	for {
		f, err := guest.ReadFrame(c.conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = errors.New("the guest closed the exec connection")
			}
			c.err = err
			c.conn.Close()
			close(c.done)
			return
		}
		if f.Type == guest.FrameHello {
			readyOnce.Do(func() { close(c.ready) })
			continue
		}
		c.mu.Lock()
		s := c.sessions[f.Session]
		if f.Type == guest.FrameExit {
			delete(c.sessions, f.Session)
		}
		c.mu.Unlock()
		if s == nil {
			continue
		}
		switch f.Type {
		case guest.FrameStdout, guest.FrameStderr:
			s.mu.Lock()
			if !s.closed {
				w := s.stdout
				if f.Type == guest.FrameStderr {
					w = s.stderr
				}
				w.Write(f.Data)
			}
			s.mu.Unlock()
		case guest.FrameExit:
			s.exit <- guest.ParseExit(f.Data)
		}
	}
}

func (c *execConn) send(f guest.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return guest.WriteFrame(c.conn, f)
}

// open registers s and starts its command.
func (c *execConn) open(s *execSession, req guest.ExecRequest) (uint32, error) {
	c.mu.Lock()
	c.next++
	id := c.next
	c.sessions[id] = s
	c.mu.Unlock()
	f, err := guest.OpenFrame(id, req)
	if err == nil {
		err = c.send(f)
	}
	if err != nil {
		c.forget(id, s)
		return 0, err
	}
	return id, nil
}

// forget drops a session: nothing is written to its streams from now on.
func (c *execConn) forget(id uint32, s *execSession) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
