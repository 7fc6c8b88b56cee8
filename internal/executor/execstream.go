package executor

import (
	"context"
	"io"
)

// ExecStreamer is implemented by executors that can run an interactive
// command inside a running instance (`dms deployment exec`): docker and vm.
// Other executors refuse exec.
type ExecStreamer interface {
	// ExecStream runs opts.Cmd in the instance, feeding it opts.Stdin
	// (when not nil) until that ends, and writes its output to opts.Stdout
	// and opts.Stderr (with a TTY all output goes to Stdout). It returns
	// the command's exit code once it has ended, or ctx.Err() when ctx is
	// done first (the command is then left to end with its closed input).
	ExecStream(ctx context.Context, id string, opts ExecOptions) (exitCode int, err error)
}

// ExecOptions says what ExecStream runs and where its streams go.
type ExecOptions struct {
	Cmd    []string
	TTY    bool
	Rows   int // the terminal's size with TTY; 0: the backend's default
	Cols   int
	Stdin  io.Reader // nil: no input
	Stdout io.Writer
	Stderr io.Writer
	// Resize, with TTY, carries new terminal sizes while the command runs
	// (nil: the size stays).
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows, Cols int
}
