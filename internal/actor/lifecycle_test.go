package actor

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// An actor's life in its runtime: behaviors added and removed, children
// spawned and stopped, one-way broadcasts, hosts going away, and what a
// behavior sees of the message (trace, deadline, payload).

func TestActorBehaviorsAndStop(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	childKey := mustKey(t)
	child, err := b.sys.Spawn(childKey, "child-1", SpawnOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if child.Key() != childKey || child.System() != b.sys || child.Handle().Inbox != "child-1" || child.Handle().Host != b.sys.Self() {
		t.Fatalf("child = %+v, want its key, runtime and inbox on host %s", child.Handle(), b.sys.Self())
	}
	if _, err := b.sys.Spawn(mustKey(t), "child-1", SpawnOptions{}); err == nil {
		t.Fatal("a second actor on the same inbox was spawned")
	}
	child.AddBehavior("/test/b", echo)
	child.AddBehavior("/test/a", echo)
	names := child.Behaviors()
	slices.Sort(names)
	if !slices.Equal(names, []string{"/test/a", "/test/b"}) {
		t.Fatalf("Behaviors = %v", names)
	}
	ctx := ctxT(t)
	var out string
	if err := a.a.Invoke(ctx, child.Handle(), "/test/a", "hi", &out); err != nil || out != "hi" {
		t.Fatalf("Invoke the child = %q, %v", out, err)
	}
	child.RemoveBehavior("/test/a")
	if err := a.a.Invoke(ctx, child.Handle(), "/test/a", "hi", nil); !errors.Is(err, ErrUnknownBehavior) {
		t.Fatalf("Invoke a removed behavior = %v, want unknown-behavior", err)
	}
	if !b.sys.HasActor(childKey.DID()) {
		t.Fatal("HasActor(child) = false while it runs")
	}
	child.Stop()
	child.Stop() // idempotent
	if b.sys.HasActor(childKey.DID()) {
		t.Fatal("HasActor(child) = true after Stop")
	}
	if err := a.a.Invoke(ctx, child.Handle(), "/test/b", "hi", nil); !errors.Is(err, ErrNoSuchActor) {
		t.Fatalf("Invoke a stopped actor = %v, want no-such-actor", err)
	}
	// The root actor is untouched.
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/nope", nil, nil); !errors.Is(err, ErrUnknownBehavior) {
		t.Fatalf("root after the child stopped = %v", err)
	}
}

// TestRouteChangesReachLinks checks that the route a link's reader caches
// (linkRoute) follows every change: a behavior replaced, and an actor
// stopped and spawned again on the same inbox with the same key.
func TestRouteChangesReachLinks(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	key := mustKey(t)
	spawn := func(answer string) *Actor {
		t.Helper()
		child, err := b.sys.Spawn(key, "child", SpawnOptions{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		child.AddBehavior("/test/who", func(context.Context, *Message) (any, error) { return answer, nil })
		return child
	}
	ctx := ctxT(t)
	ask := func(want string) {
		t.Helper()
		var out string
		if err := a.a.Invoke(ctx, Handle{DID: key.DID(), Host: b.sys.Self(), Inbox: "child"}, "/test/who", nil, &out); err != nil || out != want {
			t.Fatalf("Invoke = %q, %v, want %q", out, err, want)
		}
	}
	child := spawn("first")
	ask("first")
	ask("first")
	child.AddBehavior("/test/who", func(context.Context, *Message) (any, error) { return "replaced", nil })
	ask("replaced")
	child.Stop()
	spawn("spawned again")
	ask("spawned again")
}

func TestPublishIsOneWay(t *testing.T) {
	net := NewMemNetwork()
	pub, sub := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	got := make(chan string, 1)
	sub.a.AddBehavior("/test/news", func(ctx context.Context, m *Message) (any, error) {
		var s string
		if err := m.Decode(&s); err != nil {
			return nil, err
		}
		got <- s
		return "ignored", nil
	})
	if err := sub.a.Subscribe("news"); err != nil {
		t.Fatal(err)
	}
	if err := sub.a.Subscribe("news"); err != nil { // a second time is a no-op
		t.Fatal(err)
	}
	if err := pub.a.Publish(ctxT(t), "news", "/test/news", "extra"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "extra" {
			t.Fatalf("subscriber got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber got nothing within 5s")
	}
	if err := pub.a.Publish(ctxT(t), "news", "/test/news", make(chan int)); err == nil {
		t.Fatal("Publish of a value JSON cannot encode succeeded")
	}
}

// A broadcast that breaks a rule is answered (over a link to the
// publisher) with its typed error; one nobody here handles, or that does
// not decode, is dropped and counted.
func TestBroadcastRefusals(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{deny: map[string]string{"/test/secret": "untrusted-root: no"}}
	victim := newNode(t, net, auth, nil)
	victim.a.AddBehavior("/test/echo", echo)
	victim.a.AddBehavior("/test/secret", echo)
	if err := victim.a.Subscribe("jobs"); err != nil {
		t.Fatal(err)
	}
	key := mustKey(t)
	self, _ := key.DID().PeerID()
	pub := net.Host(self)
	links := make(chan Link, 1)
	pub.SetLinkHandler(func(l Link) { links <- l })
	var link Link
	next := func() *Reply {
		t.Helper()
		if link == nil {
			select {
			case link = <-links:
			case <-time.After(5 * time.Second):
				t.Fatal("the victim opened no link to answer")
			}
		}
		for {
			frame, err := link.Recv()
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			if _, replies, _ := DecodeFrame(frame); len(replies) > 0 {
				return replies[0]
			}
		}
	}
	nonce := uint64(time.Now().UnixNano())
	frame := func(mod func(*Envelope)) []byte {
		nonce++
		e := &Envelope{Nonce: nonce, Expiry: time.Now().Add(time.Minute), From: Handle{DID: key.DID(), Host: self, Inbox: "x"},
			Topic: "jobs", Behavior: "/test/echo", WantReply: true, Invocation: []byte("allow:/test/echo"), Payload: []byte(`"hi"`)}
		mod(e)
		return EncodeEnvelope(e)
	}
	ctx := ctxT(t)
	tests := []struct {
		name  string
		frame []byte
		want  Code
	}{
		{"answered", frame(func(*Envelope) {}), ""},
		{"published on another topic", frame(func(e *Envelope) { e.Topic = "other" }), CodeBadEnvelope},
		{"claimed host is not the publisher", frame(func(e *Envelope) { e.From.Host = victim.host.id }), CodeHostMismatch},
		{"denied", frame(func(e *Envelope) { e.Behavior = "/test/secret"; e.Invocation = []byte("allow:/test/secret") }), CodeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := pub.Publish(ctx, "jobs", tt.frame); err != nil {
				t.Fatal(err)
			}
			r := next()
			if tt.want == "" {
				if r.Err != nil || string(r.Payload) != `"hi"` {
					t.Fatalf("reply = %+v, want the echo", r)
				}
				return
			}
			if r.Err == nil || r.Err.Code != tt.want {
				t.Fatalf("reply = %+v, want %s", r.Err, tt.want)
			}
		})
	}
	t.Run("dropped and counted", func(t *testing.T) {
		if err := pub.Publish(ctx, "jobs", []byte{0xff, 0x01, 0x02}); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, "jobs", frame(func(e *Envelope) { e.Behavior = "/test/nobody"; e.Invocation = []byte("allow:/test/nobody") })); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 5*time.Second, "a bad frame and an unknown behavior counted", func() bool {
			s := victim.sys.Stats()
			return s["bad_frames"] == 1 && s["refused_unknown-behavior"] == 1
		})
	})
}

func TestUnreachableHost(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	b.a.AddBehavior("/test/echo", echo)
	ctx := ctxT(t)
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", "up", nil); err != nil {
		t.Fatal(err)
	}
	b.host.SetDown(true)
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", "down", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Invoke a host that is down = %v, want unreachable", err)
	}
	b.host.SetDown(false)
	var out string
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", "back", &out); err != nil || out != "back" {
		t.Fatalf("Invoke after the host came back = %q, %v", out, err)
	}
	ghost := Handle{DID: mustKey(t).DID(), Host: "12D3KooWnobody", Inbox: RootInbox}
	if err := a.a.Send(ctx, ghost, "/test/echo", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Send to a host nobody knows = %v, want unreachable", err)
	}
}

// An invoke waiting for a reply fails as soon as the link it went on
// closes (the host crashed), not at its deadline: the reply would have
// come on that link.
func TestInvokeFailsWhenItsLinkCloses(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	b.a.AddBehavior("/test/hang", func(ctx context.Context, m *Message) (any, error) {
		close(started)
		<-release
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // the deadline is not what ends it
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- a.a.Invoke(ctx, b.a.Handle(), "/test/hang", nil, nil) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the behavior never started")
	}
	b.host.SetDown(true)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Invoke whose link closed = %v, want unreachable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Invoke still waits after its link closed")
	}
	if got := a.sys.Stats()["invokes_link_lost"]; got != 1 {
		t.Errorf("invokes_link_lost = %d, want 1", got)
	}
}

// What a behavior sees: the sender's trace, a deadline at the envelope's
// expiry, and a clear error for a payload of the wrong shape.
func TestMessageAsTheBehaviorSeesIt(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	type seen struct {
		Trace    string `json:"trace"`
		Deadline bool   `json:"deadline"`
		Issuer   string `json:"issuer"`
	}
	b.a.AddBehavior("/test/look", func(ctx context.Context, m *Message) (any, error) {
		_, ok := ctx.Deadline()
		return seen{Trace: m.Trace, Deadline: ok, Issuer: string(m.Issuer)}, nil
	})
	b.a.AddBehavior("/test/count", func(ctx context.Context, m *Message) (any, error) {
		var n int
		if err := m.Decode(&n); err != nil {
			return nil, err
		}
		return n + 1, nil
	})
	ctx := WithTrace(ctxT(t), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var s seen
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/look", nil, &s); err != nil {
		t.Fatal(err)
	}
	if s.Trace != TraceFrom(ctx) || !s.Deadline || s.Issuer != string(a.key.DID()) {
		t.Fatalf("the behavior saw %+v; want the trace, a deadline and the sender's DID", s)
	}
	tests := []struct {
		name    string
		payload any
		want    int
		wantErr *Error
	}{
		{"a number", 41, 42, nil},
		{"no payload", nil, 1, nil},
		{"a string", "forty-one", 0, ErrBadEnvelope},
		{"raw JSON", json.RawMessage(`{"n": 1}`), 0, ErrBadEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int
			err := a.a.Invoke(ctxT(t), b.a.Handle(), "/test/count", tt.payload, &n)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "payload of /test/count") {
					t.Fatalf("Invoke = %v, want %v naming the behavior", err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("Invoke = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

func TestNodeHandle(t *testing.T) {
	key := mustKey(t)
	host, _ := key.DID().PeerID()
	h, err := NodeHandle(host)
	if err != nil || h.DID != key.DID() || h.Host != host || h.Inbox != RootInbox || h.IsZero() {
		t.Fatalf("NodeHandle(%s) = %+v, %v; want the root actor of that node", host, h, err)
	}
	if _, err := NodeHandle("not-a-peer-id"); err == nil {
		t.Fatal("NodeHandle of garbage succeeded")
	}
	if !(Handle{}).IsZero() {
		t.Fatal("the zero Handle is not IsZero")
	}
}

func TestStatNamesAreSorted(t *testing.T) {
	got := StatNames(map[string]uint64{"sent": 1, "dispatched": 2, "refused_denied": 3, "received": 4})
	if want := []string{"dispatched", "received", "refused_denied", "sent"}; !slices.Equal(got, want) {
		t.Fatalf("StatNames = %v, want %v", got, want)
	}
}

// Idle peers are forgotten by the rate limiter and the replay guard; a
// forgotten peer starts again with a full bucket.
func TestHousekeepingForgetsIdlePeers(t *testing.T) {
	l := newPeerLimiter(1, 2)
	now := time.Now()
	if !l.allow("p", now) || !l.allow("p", now) || l.allow("p", now) {
		t.Fatal("a burst of 2 did not allow exactly 2")
	}
	l.sweep(now.Add(30 * time.Second))
	if l.count() != 1 {
		t.Fatal("a peer active 30 s ago was forgotten")
	}
	l.sweep(now.Add(2 * time.Minute))
	if l.count() != 0 {
		t.Fatal("a peer idle for 2 minutes is still tracked")
	}
	later := now.Add(2 * time.Minute)
	if !l.allow("p", later) || !l.allow("p", later) {
		t.Fatal("a forgotten peer did not start with a full bucket")
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&Error{Code: CodeDenied}, "denied"},
		{&Error{Code: CodeReplay, Msg: "nonce 7"}, "replay: nonce 7"},
		{AsError(errors.New("disk full")), "handler-error: disk full"},
		{AsError(&Error{Code: CodeTimeout, Msg: "slow"}), "timeout: slow"},
		{&FrameTooLargeError{Size: 10, Limit: 5}, "frame of 10 bytes exceeds the limit of 5"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
