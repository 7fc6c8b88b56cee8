package actor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/poll"
)

// testAuth authorizes everything except the commands in deny, and counts
// verifications.
type testAuth struct {
	AllowAll
	mu    sync.Mutex
	deny  map[string]string // cmd → reason
	calls atomic.Int64
}

func (t *testAuth) Authorize(inv []byte, req AuthRequest) (Grant, error) {
	t.calls.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if why, ok := t.deny[req.Cmd]; ok {
		return nil, fmt.Errorf("denied: %s", why)
	}
	if !bytes.HasPrefix(inv, []byte("allow:")) || string(inv[6:]) != req.Cmd {
		return nil, fmt.Errorf("denied: malformed: invocation is not for %s", req.Cmd)
	}
	return allowGrant{}, nil
}

type node struct {
	sys  *System
	a    *Actor
	host *MemHost
	key  *identity.Key
}

func newNode(t *testing.T, net *MemNetwork, auth Authorizer, mod func(*Config)) *node {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := key.DID().PeerID()
	host := net.Host(id)
	cfg := Config{Transport: host, Auth: auth, Issuer: AllowAll{}}
	if mod != nil {
		mod(&cfg)
	}
	sys, err := NewSystem(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := sys.Spawn(key, RootInbox, SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sys.Close(ctx)
	})
	return &node{sys: sys, a: a, host: host, key: key}
}

func echo(ctx context.Context, m *Message) (any, error) { return m.Payload, nil }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInvokeAndSend(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{}
	a, b := newNode(t, net, auth, nil), newNode(t, net, auth, nil)
	got := make(chan string, 10)
	b.a.AddBehavior("/test/echo", echo)
	b.a.AddBehavior("/test/note", func(ctx context.Context, m *Message) (any, error) {
		var s string
		m.Decode(&s)
		got <- s
		return nil, nil
	})
	ctx := ctxT(t)
	for i := range 50 {
		var out string
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", fmt.Sprint(i), &out); err != nil || out != fmt.Sprint(i) {
			t.Fatalf("Invoke #%d = %q, %v", i, out, err)
		}
	}
	if err := a.a.Send(ctx, b.a.Handle(), "/test/note", "one-way"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "one-way" {
		t.Fatalf("Send delivered %q", s)
	}
	// One session per (sender, receiver, behavior) on the link: the
	// invocation is verified twice, not 51 times.
	if n := auth.calls.Load(); n != 2 {
		t.Fatalf("Authorize called %d times, want 2 (one per session)", n)
	}
	// Local delivery works the same way.
	var out string
	if err := b.a.Invoke(ctx, b.a.Handle(), "/test/echo", "self", &out); err != nil || out != "self" {
		t.Fatalf("local Invoke = %q, %v", out, err)
	}
}

func TestTypedRefusals(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{deny: map[string]string{"/test/secret": "untrusted-root: nobody trusts you"}}
	a := newNode(t, net, auth, nil)
	b := newNode(t, net, auth, func(c *Config) { c.MaxEnvelope = 64 << 10 })
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	b.a.AddBehavior("/test/echo", echo)
	b.a.AddBehavior("/test/secret", echo)
	b.a.AddBehavior("/test/fail", func(context.Context, *Message) (any, error) { return nil, errors.New("disk on fire") })
	b.a.AddBehavior("/test/panic", func(context.Context, *Message) (any, error) { panic("boom") })
	slow, err := b.sys.Spawn(mustKey(t), "slow", SpawnOptions{Workers: 1, Mailbox: 1})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{}, 1)
	slow.AddBehavior("/test/block", func(ctx context.Context, m *Message) (any, error) {
		running <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, nil
	})
	ctx := ctxT(t)
	// Fill the slow actor: one running, one queued; the third is refused.
	for i := range 2 {
		if err := a.a.Send(ctx, slow.Handle(), "/test/block", nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-running
		}
	}
	poll.Eventually(t, 5*time.Second, "b dispatched both", func() bool { return b.sys.Stats()["dispatched"] >= 2 })

	tests := []struct {
		name     string
		to       Handle
		behavior string
		payload  any
		want     *Error
		wantMsg  string
	}{
		{"unknown behavior", b.a.Handle(), "/test/nope", nil, ErrUnknownBehavior, "root has no behavior /test/nope"},
		{"denied", b.a.Handle(), "/test/secret", nil, ErrDenied, "untrusted-root: nobody trusts you"},
		{"handler error", b.a.Handle(), "/test/fail", nil, ErrHandler, "disk on fire"},
		{"handler panic", b.a.Handle(), "/test/panic", nil, ErrPanic, "/test/panic: boom"},
		{"no such actor", Handle{DID: b.key.DID(), Host: b.host.id, Inbox: "ghost"}, "/test/echo", nil, ErrNoSuchActor, "ghost"},
		{"wrong actor DID", Handle{DID: a.key.DID(), Host: b.host.id, Inbox: RootInbox}, "/test/echo", nil, ErrNoSuchActor, ""},
		{"mailbox full", slow.Handle(), "/test/block", nil, ErrMailboxFull, "mailbox of slow"},
		{"too large", b.a.Handle(), "/test/echo", strings.Repeat("x", 100<<10), ErrTooLarge, "exceeds the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.a.Invoke(ctx, tt.to, tt.behavior, tt.payload, nil)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Invoke = %v, want %v containing %q", err, tt.want, tt.wantMsg)
			}
		})
	}
	// The node keeps serving after all of that.
	var out string
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", "still here", &out); err != nil || out != "still here" {
		t.Fatalf("after refusals: %q, %v", out, err)
	}
	// Refusals of one-way Sends come back and are counted at the sender.
	if err := a.a.Send(ctx, b.a.Handle(), "/test/secret", nil); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "a counts the refused Send", func() bool { return a.sys.Stats()["send_refused_denied"] == 1 })
}

// attacker returns a raw link from a fresh host to victim, for crafting
// frames, and a function reading the next reply from it.
func attacker(t *testing.T, net *MemNetwork, victim *node) (Link, string, func() *Reply) {
	t.Helper()
	key := mustKey(t)
	id, _ := key.DID().PeerID()
	h := net.Host(id)
	h.SetLinkHandler(func(Link) {})
	l, err := h.Link(ctxT(t), victim.host.id)
	if err != nil {
		t.Fatal(err)
	}
	next := func() *Reply {
		for {
			frame, err := l.Recv()
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			recs, err := decodeFrame(frame)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.reply != nil {
					return r.reply
				}
			}
		}
	}
	return l, id, next
}

// testClock is a node's clock that a test can stop: while it stands
// still, a peer's rate bucket does not refill, so a flood's refusals do
// not depend on how fast a loaded machine sends it.
type testClock struct{ frozen atomic.Pointer[time.Time] }

func (c *testClock) Now() time.Time {
	if t := c.frozen.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// freeze stops the clock until the returned function starts it again.
func (c *testClock) freeze() (resume func()) {
	t := time.Now()
	c.frozen.Store(&t)
	return func() { c.frozen.Store(nil) }
}

func TestAttacks(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{}
	clock := &testClock{}
	victim := newNode(t, net, auth, func(c *Config) { c.PeerRate = 50; c.PeerBurst = 50; c.Now = clock.Now })
	victim.a.AddBehavior("/test/echo", echo)
	l, self, next := attacker(t, net, victim)
	ctx := ctxT(t)
	now := time.Now()
	env := func(mod func(*Envelope)) []byte {
		e := &Envelope{Nonce: uint64(now.UnixNano()), Expiry: now.Add(time.Minute), To: victim.a.Handle(),
			From: Handle{DID: mustKey(t).DID(), Host: self, Inbox: "x"}, Behavior: "/test/echo", WantReply: true,
			Invocation: []byte("allow:/test/echo"), Payload: []byte(`"hi"`)}
		mod(e)
		return appendEnvelope(nil, e)
	}
	send := func(frame []byte) *Reply {
		if err := l.Send(ctx, frame); err != nil {
			t.Fatal(err)
		}
		return next()
	}
	good := env(func(*Envelope) {})
	if r := send(good); r.Err != nil {
		t.Fatalf("good envelope refused: %v", r.Err)
	}
	tests := []struct {
		name  string
		frame []byte
		want  Code
	}{
		{"replayed envelope", good, CodeReplay},
		{"claimed host is not the transport peer", env(func(e *Envelope) { e.Nonce++; e.From.Host = victim.host.id }), CodeHostMismatch},
		{"expired envelope", env(func(e *Envelope) { e.Nonce += 2; e.Expiry = now.Add(-time.Second) }), CodeExpired},
		{"expiry too far ahead", env(func(e *Envelope) { e.Nonce += 3; e.Expiry = now.Add(24 * time.Hour) }), CodeBadEnvelope},
		{"forged invocation", env(func(e *Envelope) { e.Nonce += 4; e.Invocation = []byte("allow:/test/other") }), CodeDenied},
		{"no invocation", env(func(e *Envelope) { e.Nonce += 5; e.Invocation = nil }), CodeDenied},
		{"session never defined", env(func(e *Envelope) { e.Nonce += 6; e.Invocation = nil; e.Session = 7 }), CodeBadEnvelope},
		{"oversized frame", append(env(func(e *Envelope) { e.Nonce += 7 }), make([]byte, 9<<20)...), CodeTooLarge},
		{"garbage", append(env(func(e *Envelope) { e.Nonce += 8 })[:40], 0xff, 0xff), CodeBadEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.frame)
			if r.Err == nil || r.Err.Code != tt.want {
				t.Fatalf("reply = %+v, want %s", r.Err, tt.want)
			}
		})
	}
	t.Run("flood from one peer", func(t *testing.T) {
		// 50/s with a burst of 50: a flood of 300 is mostly refused, the
		// refusals answered are capped, and another peer is still served.
		// The victim's clock stands still meanwhile (under -race on a
		// loaded machine the flood took seconds and the bucket refilled).
		defer clock.freeze()()
		for i := range 300 {
			if err := l.Send(ctx, env(func(e *Envelope) { e.Nonce += uint64(100 + i); e.WantReply = false })); err != nil {
				t.Fatal(err)
			}
		}
		poll.Eventually(t, 5*time.Second, "200 envelopes refused as rate-limited", func() bool { return victim.sys.Stats()["refused_rate-limited"] >= 200 })
		other := newNode(t, net, auth, nil)
		var out string
		// A budget of its own: under -race on a loaded machine the cases
		// above can take most of the test's (ctx, 10 s from its start).
		if err := other.a.Invoke(ctxT(t), victim.a.Handle(), "/test/echo", "ok", &out); err != nil || out != "ok" {
			t.Fatalf("another peer during the flood: %q, %v", out, err)
		}
	})
}

func TestSessionMismatchRefused(t *testing.T) {
	net := NewMemNetwork()
	victim := newNode(t, net, &testAuth{}, nil)
	victim.a.AddBehavior("/test/echo", echo)
	victim.a.AddBehavior("/test/admin", echo)
	l, self, next := attacker(t, net, victim)
	from := Handle{DID: mustKey(t).DID(), Host: self, Inbox: "x"}
	now := time.Now()
	// A session granted for /test/echo may not carry /test/admin.
	frame := appendSession(nil, session{id: 1, iss: from.DID, aud: victim.key.DID(), cmd: "/test/echo", inv: []byte("allow:/test/echo")})
	frame = appendEnvelope(frame, &Envelope{Nonce: 1, Expiry: now.Add(time.Minute), To: victim.a.Handle(), From: from, Behavior: "/test/admin", Session: 1, WantReply: true})
	if err := l.Send(ctxT(t), frame); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.Err == nil || r.Err.Code != CodeBadEnvelope {
		t.Fatalf("reply = %+v, want bad-envelope", r.Err)
	}
}

func TestBroadcast(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{}
	nodes := []*node{newNode(t, net, auth, nil), newNode(t, net, auth, nil), newNode(t, net, auth, nil)}
	for i, n := range nodes[1:] {
		i := i
		n.a.AddBehavior("/test/bid", func(ctx context.Context, m *Message) (any, error) { return i + 1, nil })
		if err := n.a.Subscribe("jobs"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[int]string{}
	err := nodes[0].a.Broadcast(ctx, "jobs", "/test/bid", "req", func(r *Reply) {
		var v int
		if err := r.Decode(&v); err == nil {
			mu.Lock()
			got[v] = r.From.Host
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "two replies", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	if got[1] != nodes[1].host.id || got[2] != nodes[2].host.id {
		t.Fatalf("replies = %v", got)
	}
}

func TestCloseAnswersPendingAndFinishesHandlers(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	started, finished := make(chan struct{}), make(chan struct{})
	b.a.AddBehavior("/test/slow", func(ctx context.Context, m *Message) (any, error) {
		close(started)
		time.Sleep(50 * time.Millisecond) // the in-flight work Close must wait for
		close(finished)
		return "done", nil
	})
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { res <- a.a.Invoke(ctx, b.a.Handle(), "/test/slow", nil, nil) }()
	<-started
	if err := b.sys.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before the running behavior finished")
	}
	if err := <-res; err != nil {
		t.Fatalf("in-flight Invoke = %v, want its answer", err)
	}
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/slow", nil, nil); !errors.Is(err, ErrShuttingDown) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Invoke after Close = %v, want shutting-down or unreachable", err)
	}
}

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard(time.Minute)
	d := Handle{DID: "did:key:zX", Host: "h"}
	now := time.Now()
	steps := []struct {
		nonce uint64
		want  bool
	}{
		{1000, true}, {1000, false}, {999, true}, {999, false}, {1001, true},
		{1001 + replayWindowBits, true}, {1001, false}, // fell out of the window: refused
		{1000 + replayWindowBits, true}, {1000 + replayWindowBits, false},
	}
	for i, s := range steps {
		if got := g.check(d, s.nonce, now); got != s.want {
			t.Fatalf("step %d: check(%d) = %v, want %v", i, s.nonce, got, s.want)
		}
	}
	g.sweep(now.Add(2 * time.Minute))
	if len(g.senders) != 0 {
		t.Fatal("idle sender not swept")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	e := &Envelope{Nonce: 42, Expiry: time.Unix(0, 1234567890), To: Handle{DID: "did:key:zA", Host: "h1", Inbox: "root"},
		From: Handle{DID: "did:key:zB", Host: "h2", Inbox: "o"}, Behavior: "/x", Topic: "t", WantReply: true,
		Invocation: []byte("inv"), Session: 3, Trace: "00-abc", Payload: []byte(`{"a":1}`)}
	frame := appendSession(nil, session{id: 3, iss: "did:key:zB", aud: "did:key:zA", cmd: "/x", inv: []byte("inv")})
	frame = appendEnvelope(frame, e)
	frame = appendReply(frame, &Reply{InReplyTo: 42, From: e.To, Err: &Error{Code: CodeDenied, Msg: "no"}, Payload: []byte("p")})
	recs, err := decodeFrame(frame)
	if err != nil || len(recs) != 3 {
		t.Fatalf("decodeFrame = %d records, %v", len(recs), err)
	}
	if got := recs[1].env; fmt.Sprint(got) != fmt.Sprint(e) {
		t.Fatalf("envelope round trip:\n got %+v\nwant %+v", got, e)
	}
	if s := recs[0].session; s.id != 3 || s.cmd != "/x" || string(s.inv) != "inv" {
		t.Fatalf("session = %+v", s)
	}
	if r := recs[2].reply; r.InReplyTo != 42 || r.Err.Code != CodeDenied || string(r.Payload) != "p" {
		t.Fatalf("reply = %+v", r)
	}
	if n, ok := headNonce(frame[len(appendSession(nil, session{id: 3, iss: "did:key:zB", aud: "did:key:zA", cmd: "/x", inv: []byte("inv")})):][:30]); !ok || n != 42 {
		t.Fatalf("headNonce = %d %v", n, ok)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	e := &Envelope{Nonce: 1, Expiry: time.Unix(5, 0), Behavior: "/x", Payload: []byte("{}")}
	f.Add(appendEnvelope(nil, e))
	f.Add(appendSession(nil, session{id: 1, cmd: "/x", inv: []byte("i")}))
	f.Add(appendReply(nil, &Reply{InReplyTo: 1, Err: &Error{Code: CodeDenied}}))
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	// The session form: alone, after the session it names, with no session.
	se := &Envelope{Nonce: 2, Expiry: time.Unix(5, 0), Session: 1, WantReply: true,
		To: Handle{Inbox: RootInbox}, From: Handle{Inbox: "o"}, Trace: "00-ab", Payload: []byte(`"p"`)}
	f.Add(appendEnvelopeForm(nil, se, true))
	f.Add(appendEnvelopeForm(appendSession(nil, session{id: 1, cmd: "/x", inv: []byte("i")}), se, true))
	f.Add(appendEnvelopeForm(nil, &Envelope{Nonce: 3}, true))
	f.Fuzz(func(t *testing.T, frame []byte) {
		headNonce(frame)
		recs, err := decodeFrameWith(frame, newInterner(), true)
		// Off a link, a frame decodes the same until an envelope in the
		// session form, which is refused.
		plain, perr := decodeFrame(frame)
		sessionForm := slices.IndexFunc(recs, func(r record) bool { return r.sessionForm })
		switch {
		case sessionForm >= 0:
			if !errors.Is(perr, errNeedsLink) || len(plain) != sessionForm {
				t.Fatalf("off a link: %d records, %v; want %d and %v", len(plain), perr, sessionForm, errNeedsLink)
			}
		case (err == nil) != (perr == nil) || len(plain) != len(recs):
			t.Fatalf("off a link: %d records, %v; on a link: %d, %v", len(plain), perr, len(recs), err)
		}
		if err != nil {
			return
		}
		// What decodes must re-encode, in the same form, to a frame that
		// decodes to the same records.
		var out []byte
		for _, r := range recs {
			switch {
			case r.env != nil:
				out = appendEnvelopeForm(out, r.env, r.sessionForm)
			case r.reply != nil:
				out = appendReply(out, r.reply)
			case r.session != nil:
				out = appendSession(out, *r.session)
			}
		}
		again, err := decodeFrameWith(out, nil, true)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, recs) {
			t.Fatalf("re-encoded frame decodes to\n %+v\nwant\n %+v", again, recs)
		}
	})
}

func mustKey(t testing.TB) *identity.Key {
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
