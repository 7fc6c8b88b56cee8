package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
)

// execPoll is how long one output request waits for output.
const execPoll = 5 * time.Second

// Exec runs a command in a running allocation of a deployment and relays
// its streams: stdin (when req.Stdin) goes to the provider as it is read,
// output is written to stdout and stderr as it comes. It returns the
// command's exit code once it has ended; an allocation whose executor
// cannot exec, or that does not run, is refused with the provider's reason.
func (s *Service) Exec(ctx context.Context, id, alloc string, req deployproto.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return s.ExecResizable(ctx, id, alloc, req, stdin, stdout, stderr, nil)
}

// ExecResizable is Exec that also relays the terminal sizes resize carries
// (with req.TTY).
func (s *Service) ExecResizable(ctx context.Context, id, alloc string, req deployproto.ExecRequest, stdin io.Reader, stdout, stderr io.Writer, resize <-chan deployproto.TermSize) (int, error) {
	r, err := s.get(id)
	if err != nil {
		return 0, err
	}
	d := r.snapshot()
	a := d.Allocations[alloc]
	if a == nil {
		if _, known := r.specOf(d).Allocations[alloc]; !known {
			return 0, fmt.Errorf("deployment %s has no allocation %s: %w", d.ID, alloc, ErrNotFound)
		}
	}
	if a == nil || a.Handle.IsZero() {
		return 0, fmt.Errorf("exec in %s: the allocation is not placed (deployment %s)", alloc, d.State)
	}
	var started deployproto.ExecStarted
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = r.actor.Invoke(sctx, a.Handle, deployproto.BehaviorExec, req, &started)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", alloc, err)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ended := false
	defer func() {
		if ended {
			return
		}
		// The caller went away or the relay failed: end the session on the
		// provider now rather than when it idles out.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var ack struct{}
		r.actor.Invoke(cctx, a.Handle, deployproto.BehaviorExecInput, deployproto.ExecInput{Session: started.Session, Close: true}, &ack)
	}()
	inErr := make(chan error, 1)
	if req.Stdin && stdin != nil {
		go func() { inErr <- r.execInput(ctx, a.Handle, started.Session, stdin) }()
	}
	if req.TTY && resize != nil {
		go r.execResize(ctx, a.Handle, started.Session, resize)
	}
	for {
		var out deployproto.ExecOutput
		cctx, cancel := context.WithTimeout(ctx, execPoll+10*time.Second)
		err := r.actor.Invoke(cctx, a.Handle, deployproto.BehaviorExecOutput, deployproto.ExecOutputRequest{Session: started.Session, Wait: execPoll}, &out)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("exec in %s: output: %w", alloc, err)
		}
		if len(out.Stdout) > 0 {
			if _, err := stdout.Write(out.Stdout); err != nil {
				return 0, fmt.Errorf("exec in %s: %w", alloc, err)
			}
		}
		if len(out.Stderr) > 0 {
			if _, err := stderr.Write(out.Stderr); err != nil {
				return 0, fmt.Errorf("exec in %s: %w", alloc, err)
			}
		}
		if out.Exited {
			ended = true
			if out.Error != "" {
				return 0, fmt.Errorf("exec in %s: %s", alloc, out.Error)
			}
			return out.ExitCode, nil
		}
		select {
		case err := <-inErr:
			if err != nil {
				return 0, fmt.Errorf("exec in %s: %w", alloc, err)
			}
		default:
		}
	}
}

// execResize relays terminal sizes to a session until ctx ends.
func (r *run) execResize(ctx context.Context, to actor.Handle, session string, resize <-chan deployproto.TermSize) {
	for {
		select {
		case sz, ok := <-resize:
			if !ok {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var ack struct{}
			r.actor.Invoke(cctx, to, deployproto.BehaviorExecInput, deployproto.ExecInput{Session: session, Rows: sz.Rows, Cols: sz.Cols}, &ack)
			cancel()
		case <-ctx.Done():
			return
		}
	}
}

// execInput sends stdin to a session in chunks, then its end.
func (r *run) execInput(ctx context.Context, to actor.Handle, session string, stdin io.Reader) error {
	buf := make([]byte, deployproto.ExecChunk)
	for {
		n, rerr := stdin.Read(buf)
		in := deployproto.ExecInput{Session: session, Data: buf[:n], EOF: rerr != nil}
		if n > 0 || in.EOF {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var ack struct{}
			err := r.actor.Invoke(cctx, to, deployproto.BehaviorExecInput, in, &ack)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("stdin: %w", err)
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return fmt.Errorf("stdin: %w", rerr)
		}
	}
}
