package actor

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// msgContext is the context a behavior runs in: it ends at the envelope's
// expiry. Its timer is started only when someone asks for Done, so a
// behavior that never waits costs no timer (most one-way messages).
type msgContext struct {
	deadline time.Time
	// trace is the envelope's traceparent (valid, or ""): TraceFrom
	// answers it. span is the behavior's span: its server span, or the
	// remote parent (the delivery's remoteSpan); nil when untraced.
	// OpenTelemetry's span lookup (trace.SpanFromContext) is answered from
	// it, without a context.WithValue per message (trace.go).
	trace  string
	span   trace.Span
	remote remoteSpan // the trace's remote parent, when the envelope carried one (trace.go)

	mu    sync.Mutex
	done  chan struct{} // created by the first Done; guarded by mu
	err   error         // guarded by mu
	timer *time.Timer   // guarded by mu
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
		case c.err != nil:
			close(c.done)
		case d <= 0:
			c.err = context.DeadlineExceeded
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
	if c.err == nil {
		c.err = context.DeadlineExceeded
		close(c.done)
	}
}

func (c *msgContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
		if c.done != nil {
			close(c.done)
		}
	}
	return c.err
}

func (c *msgContext) Value(key any) any {
	switch key {
	case spanKey:
		if c.span != nil {
			return c.span
		}
	case traceKey{}:
		return c.trace
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
	if c.err == nil {
		c.err = context.Canceled
		if c.done != nil {
			close(c.done)
		}
	}
}
