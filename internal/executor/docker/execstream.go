package docker

import (
	"context"
	"fmt"
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
)

// ExecStream implements executor.ExecStreamer with a docker exec attached
// to the caller's streams.
func (e *Executor) ExecStream(ctx context.Context, id string, opts executor.ExecOptions) (int, error) {
	t, err := e.get(ctx, id)
	if err != nil {
		return 0, err
	}
	if len(opts.Cmd) == 0 || opts.Cmd[0] == "" {
		return 0, fmt.Errorf("docker: exec in %s: empty command", t.id[:12])
	}
	create := client.ExecCreateOptions{
		AttachStdin:  opts.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		TTY:          opts.TTY,
		Cmd:          opts.Cmd,
	}
	size := client.ConsoleSize{}
	if opts.TTY && opts.Rows > 0 && opts.Cols > 0 {
		size = client.ConsoleSize{Height: uint(opts.Rows), Width: uint(opts.Cols)}
		create.ConsoleSize = size
	}
	created, err := e.cli.ExecCreate(ctx, t.id, create)
	if err != nil {
		return 0, e.classify("exec in "+t.id[:12], err)
	}
	att, err := e.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: opts.TTY, ConsoleSize: size})
	if err != nil {
		return 0, e.classify("exec in "+t.id[:12], err)
	}
	defer att.Close()
	if size.Height > 0 {
		// Engines before API 1.42 ignore the size given at create.
		e.cli.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: size.Height, Width: size.Width})
	}
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()
	if opts.TTY && opts.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case sz := <-opts.Resize:
					if sz.Rows > 0 && sz.Cols > 0 {
						e.cli.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: uint(sz.Rows), Width: uint(sz.Cols)})
					}
				case <-done:
					return
				}
			}
		}()
	}
	if opts.Stdin != nil {
		go func() {
			io.Copy(att.Conn, opts.Stdin)
			att.CloseWrite()
		}()
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if opts.TTY {
		_, err = io.Copy(stdout, att.Reader)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("docker: exec in %s: %w", t.id[:12], err)
	}
	return e.execExitCode(ctx, t.id, created.ID)
}

var _ executor.ExecStreamer = (*Executor)(nil)
