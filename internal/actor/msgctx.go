package actor

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// msgContext is the context a behavior runs in: it ends at the envelope's
// expiry. Its timer is started only when someone asks for Done, so a
// behavior that never waits costs no timer (most one-way messages). It is
// allocated for every message (64 bytes, when untraced); the trace of a sampled envelope
// comes in the same allocation (tracedContext), so an untraced message
// does not carry its room.
type msgContext struct {
	deadline time.Time
	// tr is the envelope's sampled trace, nil when untraced: TraceFrom
	// and OpenTelemetry's span lookup (trace.SpanFromContext) are answered
	// from it, without a context.WithValue per message (trace.go).
	tr *msgTrace

	mu    sync.Mutex
	ended ctxEnd        // guarded by mu
	done  chan struct{} // created by the first Done; guarded by mu
	timer *time.Timer   // guarded by mu
}

// ctxEnd is why a msgContext ended (its Err), in a byte.
type ctxEnd uint8

const (
	notEnded ctxEnd = iota
	endCanceled
	endDeadline
)

func (e ctxEnd) err() error {
	switch e {
	case endCanceled:
		return context.Canceled
	case endDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// msgTrace is the trace of a behavior's context.
type msgTrace struct {
	// trace is the envelope's traceparent (valid and sampled). span is
	// the behavior's span: its server span, or the remote parent (remote).
	trace  string
	span   trace.Span
	remote remoteSpan // the trace's remote parent (trace.go)
}

// tracedContext is a msgContext with its trace, in one allocation.
type tracedContext struct {
	msgContext
	t msgTrace
}

// newTracedContext returns a context for a sampled envelope's trace sc
// (traceparent tp), ending at deadline.
func newTracedContext(deadline time.Time, sc trace.SpanContext, tp string) *msgContext {
	c := &tracedContext{}
	c.deadline = deadline
	c.t.remote.sc = sc
	c.t.trace = tp
	c.t.span = &c.t.remote
	c.tr = &c.t
	return &c.msgContext
}

var _ context.Context = (*msgContext)(nil)

func newMsgContext(deadline time.Time) *msgContext { return &msgContext{deadline: deadline} }

func (c *msgContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *msgContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		switch d := time.Until(c.deadline); {
		case c.ended != notEnded:
			close(c.done)
		case d <= 0:
			c.ended = endDeadline
			close(c.done)
		default:
			c.timer = time.AfterFunc(d, c.expire)
		}
	}
	return c.done
}

func (c *msgContext) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == notEnded {
		c.ended = endDeadline
		close(c.done)
	}
}

func (c *msgContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == notEnded && !time.Now().Before(c.deadline) {
		c.ended = endDeadline
		if c.done != nil {
			close(c.done)
		}
	}
	return c.ended.err()
}

func (c *msgContext) Value(key any) any {
	switch key {
	case spanKey:
		if c.tr != nil && c.tr.span != nil {
			return c.tr.span
		}
	case traceKey{}:
		if c.tr != nil {
			return c.tr.trace
		}
		return ""
	}
	return nil
}

// cancel ends the context once the behavior returned.
func (c *msgContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.ended == notEnded {
		c.ended = endCanceled
		if c.done != nil {
			close(c.done)
		}
	}
}
