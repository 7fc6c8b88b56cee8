package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of a command stopped by a signal: 128 + the signal's number,
// as a shell reports a process killed by it.
const (
	exitSIGINT  = 128 + int(syscall.SIGINT)  // 130
	exitSIGTERM = 128 + int(syscall.SIGTERM) // 143
)

// interrupted is the cause of a context cancelled by a signal.
type interrupted struct{ sig os.Signal }

func (e interrupted) Error() string { return "interrupted by " + signalName(e.sig) }

// code is the exit code for the signal.
func (e interrupted) code() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitSIGINT
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// SignalContext returns a context that is cancelled when the process gets
// SIGINT or SIGTERM, with a cause that Main turns into the exit code 130 or
// 143. Only the first signal is caught: after it the signals have their
// default effect again, so a second Ctrl-C ends a command that is slow to
// wind down at once. stop releases the signal handler.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(interrupted{sig: s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}

// interruption returns the signal that cancelled ctx, if one did.
func interruption(ctx context.Context) (interrupted, bool) {
	var in interrupted
	if ctx == nil || ctx.Err() == nil {
		return in, false
	}
	ok := errors.As(context.Cause(ctx), &in)
	return in, ok
}

// interruptedError is what a command returns when a signal stopped it; its
// message says what became of the work, e.g. "nothing was submitted".
func interruptedError(ctx context.Context, format string, args ...any) error {
	in, ok := interruption(ctx)
	if !ok {
		return fmt.Errorf(format, args...)
	}
	return fmt.Errorf("%s: %s", in.Error(), fmt.Sprintf(format, args...))
}
