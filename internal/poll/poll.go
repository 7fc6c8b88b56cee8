// Package poll waits for a condition by checking it again and again: at
// once, then after 10 ms, the pause doubling up to 100 ms, until it holds
// or a timeout passes. It is the one way tests and tools here wait for
// something they cannot be told about (a process that answers, peers that
// connect, a file that appears).
//
// Usage, in a test:
//
//	poll.Eventually(t, 5*time.Second, "b lists a as connected", func() bool {
//		return b.Connected(a.ID())
//	})
//
// and in code that has a context (the error names what was awaited):
//
//	err := poll.Until(ctx, 30*time.Second, "node1's API answers", func(ctx context.Context) (bool, error) {
//		_, err := client.Node(ctx)
//		return err == nil, nil
//	})
//
// cond returns an error to stop waiting at once; an error that only says
// its context ended (the timeout cut a call short) is not one, and shows
// in the timeout's message instead.
//
// # Time
//
// Every pause is a time.Timer, so inside a testing/synctest bubble the
// pauses and the timeout are virtual time and a pause ends only once
// every other goroutine of the bubble is durably blocked. The first check
// is not preceded by such a settling: a test that needs it calls
// synctest.Wait in cond.
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The pauses between two checks: the first, and the longest.
const (
	firstPause = 10 * time.Millisecond
	maxPause   = 100 * time.Millisecond
)

// TimeoutError is Until's error when cond did not hold within the timeout.
type TimeoutError struct {
	What    string
	Timeout time.Duration
	// Last is the last error cond returned that only said its context
	// ended, or nil.
	Last error
}

func (e *TimeoutError) Error() string {
	if e.Last != nil {
		return fmt.Sprintf("%s: not within %s (last error: %v)", e.What, e.Timeout, e.Last)
	}
	return fmt.Sprintf("%s: not within %s", e.What, e.Timeout)
}

// Until calls cond until it returns true, returns an error, ctx ends or
// timeout passes. cond's context ends at the timeout. The error is a
// *TimeoutError, cond's error or ctx's, each prefixed with what.
func Until(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pause := firstPause
	var last error
	for {
		ok, err := cond(tctx)
		switch {
		case err == nil && ok:
			return nil
		case err != nil && tctx.Err() == nil && !contextEnded(err):
			return fmt.Errorf("%s: %w", what, err)
		case err != nil:
			last = err
		}
		t := time.NewTimer(pause)
		select {
		case <-tctx.Done():
			t.Stop()
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return &TimeoutError{What: what, Timeout: timeout, Last: last}
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// contextEnded reports whether err only says a context ended.
func contextEnded(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// T is the part of testing.TB that Eventually uses (so that programs
// importing Until do not link the testing package).
type T interface {
	Helper()
	Fatal(args ...any)
}

// Eventually fails the test unless cond holds within timeout, checking it
// as Until does; the failure reads "<what>: not within <timeout>". Call it
// from the test's goroutine.
func Eventually(t T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Until(context.Background(), timeout, what, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}
