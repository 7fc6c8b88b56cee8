package actor

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/identity"
)

// Behavior handles one kind of message. Its result is JSON-encoded and sent
// back when the sender asked for a reply; an error is always sent back, as an
// *Error (a plain error becomes a handler-error). A panic is recovered and
// answered as handler-panic.
//
// m belongs to the runtime and is valid until the behavior returns: the
// runtime reuses it for later messages. A behavior that needs the message
// afterwards keeps a copy (*m; the payload's bytes are the message's own
// and may be kept). ctx ends when the behavior returns; work that outlives
// it may keep its values (context.WithoutCancel).
type Behavior func(ctx context.Context, m *Message) (any, error)

// Actor is an addressable unit with its own key, behaviors and mailbox.
type Actor struct {
	sys    *System
	key    *identity.Key
	handle Handle

	mu        sync.RWMutex
	behaviors map[string]Behavior // guarded by mu
	stopped   bool                // guarded by mu

	mbox    *mailbox
	workers sync.WaitGroup // the running workers (mailbox.start)
	once    sync.Once
}

// delivery is a message waiting in a mailbox with how to answer it.
// Deliveries are recycled once their behavior returned (deliveries); the
// context a behavior runs in is allocated for each message, because work
// the behavior starts may keep it (context.WithoutCancel keeps its values),
// and by the worker that runs it (begin), not by the link's reader that
// queues it: the reader is one goroutine for all of a link's envelopes.
type delivery struct {
	msg       Message
	ctx       *msgContext       // set by begin
	remote    trace.SpanContext // the envelope's sampled trace, or zero (setTrace)
	behavior  Behavior
	nonce     uint64
	wantReply bool
	answer    replier // sends the reply to the sender
}

func (d *delivery) reply(r *Reply) { d.answer.reply(r) }

// deliveries recycles deliveries: the message and its bookkeeping (two
// thirds of the ~450 bytes a delivery took with its context) are reused
// instead of allocated for every message.
var deliveries = sync.Pool{New: func() any { return new(delivery) }}

// newDelivery returns a zero delivery.
func newDelivery() *delivery { return deliveries.Get().(*delivery) }

// begin allocates the context d's behavior runs in: it ends at the
// envelope's expiry, and its remote parent is the envelope's sampled trace.
func (d *delivery) begin() {
	if d.remote.IsSampled() {
		d.ctx = newTracedContext(d.msg.Expiry, d.remote, d.msg.Trace)
		return
	}
	d.ctx = newMsgContext(d.msg.Expiry)
}

// finish ends d's context, if it began, once its behavior returned and
// recycles d.
func (d *delivery) finish() {
	if d.ctx != nil {
		d.ctx.cancel()
	}
	*d = delivery{}
	deliveries.Put(d)
}

// Handle returns the actor's address.
func (a *Actor) Handle() Handle { return a.handle }

// Key returns the actor's key.
func (a *Actor) Key() *identity.Key { return a.key }

// System returns the runtime the actor runs in.
func (a *Actor) System() *System { return a.sys }

// AddBehavior registers (or replaces) a behavior under name. The name is the
// UCAN command an invoker needs: "/public/hello", "/dms/node/peers/list".
func (a *Actor) AddBehavior(name string, b Behavior) {
	a.mu.Lock()
	a.behaviors[name] = b
	a.sys.routes.Add(1)
	a.mu.Unlock()
}

// RemoveBehavior unregisters a behavior.
func (a *Actor) RemoveBehavior(name string) {
	a.mu.Lock()
	delete(a.behaviors, name)
	a.sys.routes.Add(1)
	a.mu.Unlock()
}

func (a *Actor) behavior(name string) (Behavior, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	b, ok := a.behaviors[name]
	return b, ok && !a.stopped
}

// Behaviors lists the registered behavior names.
func (a *Actor) Behaviors() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.behaviors))
	for n := range a.behaviors {
		out = append(out, n)
	}
	return out
}

// Stop removes the actor from its runtime. Queued messages are answered
// with shutting-down; running behaviors finish.
func (a *Actor) Stop() { a.stopWait(context.Background()) }

func (a *Actor) stopWait(ctx context.Context) error {
	a.once.Do(func() {
		a.mu.Lock()
		a.stopped = true
		a.sys.routes.Add(1)
		a.mu.Unlock()
		a.sys.remove(a)
		left := a.mbox.close() // running workers return at their next look
		for _, d := range left {
			a.answerStopped(d)
		}
	})
	done := make(chan struct{})
	go func() { a.workers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue puts d in the mailbox without blocking. With hold non-nil d is
// held until hold is flushed, which queues it (or refuses it) then.
func (a *Actor) enqueue(d *delivery, hold *heldWakes) *Error {
	if hold != nil {
		hold.add(a, d)
		return nil
	}
	full, closed := a.mbox.put(d, false)
	if closed || full {
		return a.mailboxRefusal(closed)
	}
	return nil
}

// startWorker starts a worker; the mailbox calls it, under its lock,
// when deliveries wait and no worker looks for them (mailbox.signal).
// Nothing is started once the mailbox is closed, which happens before
// stopWait waits for the workers.
func (a *Actor) startWorker() {
	a.workers.Add(1)
	go a.work()
}

// work runs the actor's deliveries until the mailbox is empty or closed,
// then returns: workers start on demand (mailbox). It starts counted as
// running and searching (mailbox.signal).
func (a *Actor) work() {
	defer a.workers.Done()
	m := a.mbox
	m.mu.Lock()
	for m.n > 0 && !m.closed {
		d := m.pop()
		m.searching--
		m.signal() // more queued and nobody else looking: start one more
		m.mu.Unlock()
		a.run(d)
		m.mu.Lock()
		m.searching++
	}
	m.searching--
	m.running--
	m.mu.Unlock()
}

func (a *Actor) answerStopped(d *delivery) {
	d.reply(&Reply{InReplyTo: d.nonce, From: a.handle, Err: &Error{Code: CodeShuttingDown, Msg: "actor stopped"}})
	d.finish()
}

// run executes one behavior and answers; d is recycled afterwards.
func (a *Actor) run(d *delivery) {
	defer d.finish()
	d.begin()
	ctx := d.ctx
	span := a.sys.startSpan(d)
	var start time.Time
	if a.sys.timed {
		start = time.Now()
	}
	res, err := a.call(ctx, d)
	var took time.Duration
	if a.sys.timed {
		took = time.Since(start)
	}
	if err != nil {
		e := AsError(err)
		if span != nil {
			endSpan(span, e)
		}
		a.sys.stats.inc("refused_" + string(e.Code))
		a.sys.cfg.Observer.Handled(d.msg.Behavior, e.Code, took)
		d.reply(&Reply{InReplyTo: d.nonce, From: a.handle, Err: e})
		return
	}
	if span != nil {
		endSpan(span, nil)
	}
	a.sys.stats.handled.Add(1)
	a.sys.cfg.Observer.Handled(d.msg.Behavior, "", took)
	if !d.wantReply {
		return
	}
	payload, perr := encodePayload(res)
	if perr != nil {
		d.reply(&Reply{InReplyTo: d.nonce, From: a.handle, Err: &Error{Code: CodeHandler, Msg: perr.Error()}})
		return
	}
	d.reply(&Reply{InReplyTo: d.nonce, From: a.handle, Payload: payload})
}

func (a *Actor) call(ctx context.Context, d *delivery) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.sys.log.Error("behavior panicked", "behavior", d.msg.Behavior, "inbox", a.handle.Inbox, "panic", r, "stack", string(debug.Stack()))
			err = errorf(CodePanic, "%s: %v", d.msg.Behavior, r)
		}
	}()
	return d.behavior(ctx, &d.msg)
}

// Send delivers v to behavior at to, without waiting for an answer. Local
// failures (unreachable, too large) are returned; refusals by the receiver
// come back asynchronously and are counted (send_refused_<code>) and logged.
func (a *Actor) Send(ctx context.Context, to Handle, behavior string, v any) error {
	payload, err := encodePayload(v)
	if err != nil {
		return err
	}
	now := a.sys.cfg.Now()
	env := a.envelope(ctx, to, behavior, payload, now) // on the stack: send copies what it keeps
	return a.sys.send(ctx, a, &env, now)
}

// Invoke delivers v to behavior at to and waits for the reply, which it
// decodes into reply (may be nil). The deadline is ctx's, else the
// configured default. A refusal or failure is returned as an *Error.
func (a *Actor) Invoke(ctx context.Context, to Handle, behavior string, v any, reply any) error {
	r, err := a.InvokeRaw(ctx, to, behavior, v)
	if err != nil {
		return err
	}
	return r.Decode(reply)
}

// InvokeRaw is Invoke returning the raw reply.
func (a *Actor) InvokeRaw(ctx context.Context, to Handle, behavior string, v any) (*Reply, error) {
	payload, err := encodePayload(v)
	if err != nil {
		return nil, err
	}
	now := a.sys.cfg.Now()
	env := a.envelope(ctx, to, behavior, payload, now)
	env.Nonce = a.sys.nextNonce()
	env.WantReply = true
	return a.sys.invoke(ctx, a, &env, now)
}

// envelope builds an envelope sent at now (one clock reading serves the
// expiry and the sending link's session renewal), without its nonce: the
// caller takes one (System.send takes a one-way envelope's on its link,
// so a Send takes one nonce, not two).
func (a *Actor) envelope(ctx context.Context, to Handle, behavior string, payload []byte, now time.Time) Envelope {
	return Envelope{
		Expiry:   a.sys.expiryAt(ctx, now),
		To:       to,
		From:     a.handle,
		Behavior: behavior,
		Trace:    envelopeTrace(ctx),
		Payload:  payload,
	}
}

// Subscribe makes the actor receive broadcasts on topic, dispatched to its
// behaviors by name.
func (a *Actor) Subscribe(topic string) error { return a.sys.subscribe(a, topic) }

// Publish broadcasts v to behavior on every other host's actors subscribed
// to topic. It does not wait for answers.
func (a *Actor) Publish(ctx context.Context, topic, behavior string, v any) error {
	return a.Broadcast(ctx, topic, behavior, v, nil)
}

// Broadcast publishes like Publish and, when collect is not nil, calls it
// with every reply until ctx is done (the envelope expires at ctx's
// deadline). Collect runs on runtime goroutines and must not block.
func (a *Actor) Broadcast(ctx context.Context, topic, behavior string, v any, collect func(*Reply)) error {
	payload, err := encodePayload(v)
	if err != nil {
		return err
	}
	env := a.envelope(ctx, Handle{}, behavior, payload, a.sys.cfg.Now())
	env.Nonce = a.sys.nextNonce()
	env.Topic = topic
	env.WantReply = collect != nil
	return a.sys.publish(ctx, a, &env, collect)
}

// traceKey carries a W3C traceparent in a context.
type traceKey struct{}

// WithTrace returns ctx carrying a W3C traceparent, sent with envelopes
// (unless ctx also holds an OpenTelemetry span, whose traceparent is sent).
func WithTrace(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceKey{}, traceparent)
}

// TraceFrom returns the traceparent ctx carries, if any: WithTrace's, or
// in a behavior, the one its envelope carried.
func TraceFrom(ctx context.Context) string {
	s, _ := ctx.Value(traceKey{}).(string)
	return s
}

// untilExpiry is the time left before t, at least a millisecond.
func untilExpiry(now, t time.Time) time.Duration {
	if d := t.Sub(now); d > time.Millisecond {
		return d
	}
	return time.Millisecond
}
