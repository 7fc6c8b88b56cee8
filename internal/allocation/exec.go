package allocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
)

// Bounds of exec sessions (`dms deployment exec`).
const (
	// maxExecSessions is how many exec sessions one allocation runs at once.
	maxExecSessions = 4
	// maxExecBuffered is how much output a session holds for its reader;
	// the command's output blocks beyond it until the reader catches up.
	maxExecBuffered = 256 << 10
	// execIdle ends a session whose output nobody asked for this long
	// (the client went away).
	execIdle = 2 * time.Minute
	// maxExecArgs bounds the command line.
	maxExecArgs = 256
)

// ErrNoSession is returned for an exec session this allocation does not
// have (never started, ended and read, or ended for idleness).
var ErrNoSession = errors.New("no such exec session")

// execSessions are an allocation's running exec sessions.
type execSessions struct {
	mu sync.Mutex
	m  map[string]*execSession // guarded by mu
}

// execSession is one command run with ExecStream: its input pipe and its
// bounded output buffer.
type execSession struct {
	id     string
	cancel context.CancelFunc
	idle   *time.Timer
	stdin  *io.PipeWriter         // nil without stdin
	inMu   sync.Mutex             // serializes writes to stdin
	resize chan executor.TermSize // buffered 1: the latest size not yet applied

	mu      sync.Mutex
	stdout  []byte        // guarded by mu
	stderr  []byte        // guarded by mu
	changed chan struct{} // guarded by mu: closed and replaced at every change
	ended   bool          // guarded by mu
	code    int           // guarded by mu
	err     string        // guarded by mu
	closed  bool          // guarded by mu: cancelled; writes fail
}

func (s *execSession) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// write appends p to one stream, waiting while the buffer is full.
func (s *execSession) write(stderr bool, p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.stdout)+len(s.stderr) >= maxExecBuffered && !s.closed {
		ch := s.changed
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	if s.closed {
		return 0, errors.New("exec session closed")
	}
	if stderr {
		s.stderr = append(s.stderr, p...)
	} else {
		s.stdout = append(s.stdout, p...)
	}
	s.notifyLocked()
	return len(p), nil
}

type sessionWriter struct {
	s      *execSession
	stderr bool
}

func (w sessionWriter) Write(p []byte) (int, error) { return w.s.write(w.stderr, p) }

// take returns up to max bytes of buffered output, stdout first.
func (s *execSession) takeLocked(max int) deployproto.ExecOutput {
	var out deployproto.ExecOutput
	n := min(len(s.stdout), max)
	if n > 0 {
		out.Stdout = append([]byte(nil), s.stdout[:n]...)
		s.stdout = s.stdout[n:]
	}
	if k := min(len(s.stderr), max-n); k > 0 {
		out.Stderr = append([]byte(nil), s.stderr[:k]...)
		s.stderr = s.stderr[k:]
	}
	if n > 0 || len(out.Stderr) > 0 {
		s.notifyLocked() // room for the writers
	}
	if s.ended && len(s.stdout) == 0 && len(s.stderr) == 0 {
		out.Exited, out.ExitCode, out.Error = true, s.code, s.err
	}
	return out
}

func (s *execSession) finish(code int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended, s.code = true, code
	if err != nil {
		s.err = err.Error()
	}
	s.notifyLocked()
}

// close cancels the session's command and releases its writers.
func (s *execSession) close() {
	s.cancel()
	s.idle.Stop()
	if s.stdin != nil {
		s.stdin.CloseWithError(errors.New("exec session closed"))
	}
	s.mu.Lock()
	s.closed = true
	s.notifyLocked()
	s.mu.Unlock()
}

func (x *execSessions) get(id string) (*execSession, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.m[id]
	if s == nil {
		return nil, fmt.Errorf("%w %q", ErrNoSession, id)
	}
	return s, nil
}

func (x *execSessions) remove(s *execSession) {
	x.mu.Lock()
	if x.m[s.id] == s {
		delete(x.m, s.id)
	}
	x.mu.Unlock()
	s.close()
}

// handleExec answers BehaviorExec: it starts the command in the running
// instance and returns its session.
func (a *alloc) handleExec(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.ExecRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return nil, fmt.Errorf("exec in %s: empty command", a.id())
	}
	if len(req.Cmd) > maxExecArgs {
		return nil, fmt.Errorf("exec in %s: %d arguments, the most is %d", a.id(), len(req.Cmd), maxExecArgs)
	}
	rec := a.record()
	es, ok := a.ex.(executor.ExecStreamer)
	if !ok {
		return nil, fmt.Errorf("exec is not supported by executor %s", rec.Spec.Executor)
	}
	switch rec.State {
	case deployproto.AllocRunning, deployproto.AllocHealthy, deployproto.AllocUnhealthy:
	default:
		return nil, fmt.Errorf("the allocation is %s, not running: exec needs it running", rec.State)
	}
	if rec.InstanceID == "" {
		return nil, errors.New("the allocation has no running instance")
	}
	var idb [16]byte
	rand.Read(idb[:])
	sctx, cancel := context.WithCancel(a.life)
	s := &execSession{id: hex.EncodeToString(idb[:]), cancel: cancel, changed: make(chan struct{}), resize: make(chan executor.TermSize, 1)}
	opts := executor.ExecOptions{
		Cmd: req.Cmd, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols,
		Stdout: sessionWriter{s: s}, Stderr: sessionWriter{s: s, stderr: true},
	}
	if req.TTY {
		opts.Resize = s.resize
	}
	var stdinR *io.PipeReader
	if req.Stdin {
		stdinR, s.stdin = io.Pipe()
		opts.Stdin = stdinR
	}
	a.execs.mu.Lock()
	if a.execs.m == nil {
		a.execs.m = map[string]*execSession{}
	}
	if len(a.execs.m) >= maxExecSessions {
		a.execs.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("exec in %s: %d sessions already run, the most is %d", a.id(), len(a.execs.m), maxExecSessions)
	}
	a.execs.m[s.id] = s
	s.idle = time.AfterFunc(execIdle, func() { a.execs.remove(s) })
	a.execs.mu.Unlock()
	if !a.m.goTracked(func() {
		code, err := es.ExecStream(sctx, rec.InstanceID, opts)
		if stdinR != nil {
			stdinR.Close()
		}
		s.finish(code, err)
	}) {
		a.execs.remove(s)
		return nil, fmt.Errorf("exec in %s: %w", a.id(), ErrClosed)
	}
	a.m.log.Info("exec", "allocation_id", a.id(), "session", s.id, "cmd", req.Cmd[0], "tty", req.TTY)
	return deployproto.ExecStarted{Session: s.id}, nil
}

// handleExecInput answers BehaviorExecInput: it feeds the session's stdin.
func (a *alloc) handleExecInput(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.ExecInput
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	if len(req.Data) > deployproto.ExecChunk {
		return nil, fmt.Errorf("exec input of %d bytes: the most is %d", len(req.Data), deployproto.ExecChunk)
	}
	s, err := a.execs.get(req.Session)
	if err != nil {
		return nil, err
	}
	if req.Close {
		a.execs.remove(s)
		return struct{}{}, nil
	}
	if req.Rows < 0 || req.Cols < 0 || req.Rows > 10000 || req.Cols > 10000 {
		return nil, fmt.Errorf("exec resize %dx%d: want a terminal size from 1 to 10000", req.Rows, req.Cols)
	}
	if req.Rows > 0 && req.Cols > 0 {
		latest(s.resize, executor.TermSize{Rows: req.Rows, Cols: req.Cols})
		if len(req.Data) == 0 && !req.EOF {
			return struct{}{}, nil
		}
	}
	if s.stdin == nil {
		return nil, fmt.Errorf("exec session %s was started without stdin", s.id)
	}
	done := make(chan error, 1)
	go func() {
		s.inMu.Lock()
		defer s.inMu.Unlock()
		var err error
		if len(req.Data) > 0 {
			_, err = s.stdin.Write(req.Data)
		}
		if req.EOF && err == nil {
			err = s.stdin.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return nil, fmt.Errorf("exec stdin: %w", err)
		}
		return struct{}{}, nil // input after the command stopped reading is dropped
	case <-ctx.Done():
		return nil, errors.New("exec stdin: the command does not read its input")
	}
}

// handleExecOutput answers BehaviorExecOutput: the output buffered so far,
// or the first written within Wait; once the command ended and everything
// was read, its exit code (and the session is gone).
func (a *alloc) handleExecOutput(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.ExecOutputRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	s, err := a.execs.get(req.Session)
	if err != nil {
		return nil, err
	}
	s.idle.Reset(execIdle)
	wait := max(req.Wait, 0)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		wait = min(wait, left-min(time.Second, left/10))
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	for {
		s.mu.Lock()
		out := s.takeLocked(deployproto.ExecChunk)
		changed := s.changed
		s.mu.Unlock()
		if out.Exited {
			a.execs.remove(s)
		}
		if out.Exited || len(out.Stdout) > 0 || len(out.Stderr) > 0 {
			return out, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		}
	}
}

// latest puts v in ch (buffered 1), replacing a value not yet taken.
func latest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
