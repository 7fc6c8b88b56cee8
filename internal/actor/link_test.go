package actor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/poll"
)

// A link dialed by one side and used at once by the other (which finds it
// through the transport before its link handler ran) has exactly one
// reader: messages arrive once and in order.
func TestLinkHasOneReader(t *testing.T) {
	for round := range 50 {
		net := NewMemNetwork()
		a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
		ordered, err := b.sys.Spawn(mustKey(t), "ordered", SpawnOptions{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []int
		ordered.AddBehavior("/test/seq", func(ctx context.Context, m *Message) (any, error) {
			var n int
			m.Decode(&n)
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
			return nil, nil
		})
		b.a.AddBehavior("/test/echo", echo)
		ctx := ctxT(t)
		// b dials a back while a's first frames are on their way.
		go b.a.Send(ctx, a.a.Handle(), "/test/nothing", nil)
		const n = 100
		for i := range n {
			if err := a.a.Send(ctx, ordered.Handle(), "/test/seq", i); err != nil {
				t.Fatal(err)
			}
		}
		poll.Eventually(t, 5*time.Second, "every message received", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
		for i, v := range got {
			if v != i {
				t.Fatalf("round %d: message %d arrived as %d (out of order or twice): %v", round, i, v, got)
			}
		}
	}
}

// A session whose defining frame could not be sent is defined again by
// the next envelope.
func TestSessionRedefinedAfterFailedSend(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	b.a.AddBehavior("/test/echo", echo)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// Fill nothing; a cancelled context makes Send fail before the frame
	// goes out (MemLink checks ctx when the queue is full or closed only),
	// so force the failure by closing the link first.
	w, err := a.sys.linkTo(ctxT(t), b.host.Self())
	if err != nil {
		t.Fatal(err)
	}
	w.l.Close()
	_ = a.a.Send(cancelled, b.a.Handle(), "/test/echo", "lost")
	var out string
	if err := a.a.Invoke(ctxT(t), b.a.Handle(), "/test/echo", "again", &out); err != nil || out != "again" {
		t.Fatalf("Invoke after a failed send = %q, %v", out, err)
	}
}

// An envelope in the session form decodes, on its link, to exactly the
// envelope that was sent; off its link it is refused with a clear error.
func TestSessionFormRoundTrip(t *testing.T) {
	const self, peer = "12D3KooWReceiver", "12D3KooWSender"
	iss, aud := identity.DID("did:key:zSender"), identity.DID("did:key:zReceiver")
	base := func(mod func(*Envelope)) *Envelope {
		e := &Envelope{Nonce: 1 << 60, Expiry: time.Unix(0, 1_790_000_000_123_456_789), Session: 7,
			From: Handle{DID: iss, Host: peer, Inbox: RootInbox}, To: Handle{DID: aud, Host: self, Inbox: RootInbox},
			Behavior: "/dms/bench/echo", Payload: []byte(`"hello"`)}
		mod(e)
		return e
	}
	tests := []struct {
		name string
		env  *Envelope
	}{
		{"one-way", base(func(*Envelope) {})},
		{"wants a reply", base(func(e *Envelope) { e.WantReply = true })},
		{"traced", base(func(e *Envelope) { e.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" })},
		{"no payload", base(func(e *Envelope) { e.Payload = nil })},
		{"child inboxes", base(func(e *Envelope) { e.From.Inbox, e.To.Inbox = "orch-1", strings.Repeat("a", 128) })},
		{"largest session id", base(func(e *Envelope) { e.Session = 1<<32 - 1 })},
		{"expiry before 1970", base(func(e *Envelope) { e.Expiry = time.Unix(0, -5) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !sessionFormOK(tt.env, peer, self) {
				t.Fatal("sessionFormOK = false, want true")
			}
			frame := appendEnvelopeForm(nil, tt.env, true)
			if full := appendEnvelope(nil, tt.env); len(frame) >= len(full)-2*len(peer) {
				t.Errorf("session form is %d bytes, full form %d: the hosts are still on the wire", len(frame), len(full))
			}
			if envs, _, err := DecodeFrame(frame); !errors.Is(err, errNeedsLink) || len(envs) != 0 {
				t.Errorf("DecodeFrame off the link = %d envelopes, %v; want %v", len(envs), err, errNeedsLink)
			}
			recs, err := decodeFrameWith(frame, newInterner(), true)
			if err != nil || len(recs) != 1 || !recs[0].sessionForm {
				t.Fatalf("decodeFrameWith = %+v, %v; want one envelope in the session form", recs, err)
			}
			w := &link{sys: &System{self: self}, recvSess: map[uint32]*recvSess{tt.env.Session: {iss: iss, aud: aud, cmd: tt.env.Behavior}}}
			got := recs[0].env
			w.expand(got, peer)
			if !reflect.DeepEqual(got, tt.env) {
				t.Fatalf("expand(decode(encode(e))) =\n %+v\nwant\n %+v", got, tt.env)
			}
		})
	}
	t.Run("not for the session form", func(t *testing.T) {
		for name, e := range map[string]*Envelope{
			"no session":        base(func(e *Envelope) { e.Session = 0 }),
			"inline invocation": base(func(e *Envelope) { e.Invocation = []byte("inv") }),
			"broadcast":         base(func(e *Envelope) { e.Topic = "jobs" }),
			"from another host": base(func(e *Envelope) { e.From.Host = "12D3KooWOther" }),
			"to another host":   base(func(e *Envelope) { e.To.Host = "12D3KooWOther" }),
		} {
			if sessionFormOK(e, peer, self) {
				t.Errorf("%s: sessionFormOK = true, want false", name)
			}
		}
	})
}

// tapHost records the frames its runtime sends on the links it dials.
type tapHost struct {
	*MemHost
	mu     sync.Mutex
	frames [][]byte // guarded by mu
}

type tapLink struct {
	Link
	h *tapHost
}

func (h *tapHost) Link(ctx context.Context, peer string) (Link, error) {
	l, err := h.MemHost.Link(ctx, peer)
	if err != nil {
		return nil, err
	}
	return &tapLink{Link: l, h: h}, nil
}

func (l *tapLink) Send(ctx context.Context, frame []byte) error {
	l.h.mu.Lock()
	l.h.frames = append(l.h.frames, frame)
	l.h.mu.Unlock()
	return l.Link.Send(ctx, frame)
}

func (h *tapHost) last() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.frames[len(h.frames)-1]
}

// Sends and invokes between two runtimes go in the session form, and the
// behavior sees the message the sender addressed.
func TestSessionFormThroughLink(t *testing.T) {
	net := NewMemNetwork()
	tap := &tapHost{}
	a := newNode(t, net, &testAuth{}, func(c *Config) { tap.MemHost = c.Transport.(*MemHost); c.Transport = tap })
	b := newNode(t, net, &testAuth{}, nil)
	child, err := b.sys.Spawn(mustKey(t), "child", SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Message, 1)
	record := func(ctx context.Context, m *Message) (any, error) { got <- *m; return m.Payload, nil }
	for _, x := range []*Actor{b.a, child} {
		x.AddBehavior("/test/rec", record)
		x.AddBehavior("/test/other", record)
	}
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name     string
		to       Handle
		behavior string
		trace    string
		invoke   bool
	}{
		{"send to the root", b.a.Handle(), "/test/rec", "", false},
		{"invoke the root", b.a.Handle(), "/test/rec", trace, true},
		{"another behavior, same link", b.a.Handle(), "/test/other", "", false},
		{"another actor, same link", child.Handle(), "/test/rec", trace, false},
		{"the same session again", child.Handle(), "/test/rec", "", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			deadline, _ := ctx.Deadline()
			if tt.trace != "" {
				ctx = WithTrace(ctx, tt.trace)
			}
			payload := fmt.Appendf(nil, `{"n":%d}`, i)
			if tt.invoke {
				err = a.a.Invoke(ctx, tt.to, tt.behavior, payload, nil)
			} else {
				err = a.a.Send(ctx, tt.to, tt.behavior, payload)
			}
			if err != nil {
				t.Fatal(err)
			}
			m := <-got
			if !m.Expiry.Equal(deadline) {
				t.Errorf("expiry = %v, want %v", m.Expiry, deadline)
			}
			m.Expiry = time.Time{}
			want := Message{From: a.a.Handle(), To: tt.to, Behavior: tt.behavior, Trace: tt.trace, Payload: payload, Issuer: a.key.DID()}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("the behavior saw\n %+v\nwant\n %+v", m, want)
			}
			recs, err := decodeFrameWith(tap.last(), nil, true)
			if err != nil || len(recs) == 0 || !recs[len(recs)-1].sessionForm {
				t.Fatalf("last frame sent = %+v, %v; want an envelope in the session form", recs, err)
			}
		})
	}
}

// Envelopes in the session form pass every check an envelope in the full
// form passes; what the form leaves out comes from the link, so a peer can
// claim neither another host nor another session's sender, receiver or
// behavior.
func TestSessionFormRefusals(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{deny: map[string]string{"/test/secret": "untrusted-root: no"}}
	obs := &refusalLog{}
	clock := &testClock{}
	victim := newNode(t, net, auth, func(c *Config) { c.PeerRate = 50; c.PeerBurst = 50; c.Observer = obs; c.Now = clock.Now })
	victim.a.AddBehavior("/test/echo", echo)
	victim.a.AddBehavior("/test/secret", echo)
	l, self, next := attacker(t, net, victim)
	other, _, _ := attacker(t, net, victim)
	ctx := ctxT(t)
	from := Handle{DID: mustKey(t).DID(), Host: self, Inbox: "x"}
	def := func(id uint32, iss, aud identity.DID, cmd string) []byte {
		return appendSession(nil, session{id: id, iss: iss, aud: aud, cmd: cmd, inv: []byte("allow:" + cmd)})
	}
	// Sessions on the attacker's link: 1 is good, 2 is for an actor
	// that is not the victim's root, 3 is denied.
	for _, f := range [][]byte{
		def(1, from.DID, victim.key.DID(), "/test/echo"),
		def(2, from.DID, mustKey(t).DID(), "/test/echo"),
		def(3, from.DID, victim.key.DID(), "/test/secret"),
	} {
		if err := l.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	// Session 4 is defined on another peer's link only.
	if err := other.Send(ctx, def(4, from.DID, victim.key.DID(), "/test/echo")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	nonce := uint64(now.UnixNano())
	env := func(mod func(*Envelope)) []byte {
		nonce++
		e := &Envelope{Nonce: nonce, Expiry: now.Add(time.Minute), Session: 1, WantReply: true,
			From: from, To: Handle{DID: victim.key.DID(), Host: victim.host.id, Inbox: RootInbox},
			Behavior: "/test/echo", Payload: []byte(`"hi"`)}
		mod(e)
		return appendEnvelopeForm(nil, e, true)
	}
	good := env(func(*Envelope) {})
	tests := []struct {
		name  string
		frame []byte
		want  Code // "" for the echo
	}{
		{"good", good, ""},
		{"replayed", good, CodeReplay},
		{"unknown session", env(func(e *Envelope) { e.Session = 99 }), CodeBadEnvelope},
		{"session of another peer's link", env(func(e *Envelope) { e.Session = 4 }), CodeBadEnvelope},
		{"session for another receiver", env(func(e *Envelope) { e.Session = 2 }), CodeNoSuchActor},
		{"session denied", env(func(e *Envelope) { e.Session = 3 }), CodeDenied},
		{"no session", env(func(e *Envelope) { e.Session = 0 }), CodeBadEnvelope},
		{"expired", env(func(e *Envelope) { e.Expiry = now.Add(-time.Second) }), CodeExpired},
		{"expiry too far ahead", env(func(e *Envelope) { e.Expiry = now.Add(24 * time.Hour) }), CodeBadEnvelope},
		{"unknown flag", setFlags(env(func(*Envelope) {}), 0x80), CodeBadEnvelope},
		{"defined and used in one frame", append(def(5, from.DID, victim.key.DID(), "/test/echo"), env(func(e *Envelope) { e.Session = 5 })...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Send(ctx, tt.frame); err != nil {
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
	// The envelope naming the denied session was refused under the
	// session's behavior (for the log line and the metrics).
	if !obs.has("/test/secret", CodeDenied) {
		t.Errorf("observer's refusals %v lack /test/secret denied", obs.all())
	}
	t.Run("flood from one peer", func(t *testing.T) {
		defer clock.freeze()() // the bucket must not refill while a loaded machine sends
		before := victim.sys.Stats()["refused_rate-limited"]
		for range 300 {
			if err := l.Send(ctx, env(func(e *Envelope) { e.WantReply = false })); err != nil {
				t.Fatal(err)
			}
		}
		poll.Eventually(t, 5*time.Second, "200 more envelopes refused as rate-limited", func() bool { return victim.sys.Stats()["refused_rate-limited"] >= before+200 })
	})
}

// setFlags sets bits in the flags byte of the one envelope frame holds.
func setFlags(frame []byte, bits byte) []byte {
	_, ln := binary.Uvarint(frame[1:])
	body := frame[1+ln:]
	_, n := binary.Varint(body[8:]) // after the nonce, the expiry
	body[8+n] |= bits
	return frame
}

// A peer floods a link with session definitions (defect 2 of issue 12:
// 2,000,000 definitions grew a node's memory by 800 MiB). Every definition
// costs the peer a rate token, one that fails authorization is not stored,
// the link keeps at most Config.MaxSessionsPerLink, and nothing of the link
// outlives it; an honest peer is served all along.
func TestSessionFloodIsBounded(t *testing.T) {
	const (
		maxSess  = 64
		burst    = 1000
		flood    = 200_000
		perFrame = 2000
	)
	tests := []struct {
		name string
		inv  func(cmd string) []byte
	}{
		{"no capability", func(string) []byte { return []byte("forged") }},
		{"valid capability", func(cmd string) []byte { return []byte("allow:" + cmd) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net := NewMemNetwork()
			auth := &testAuth{}
			frozen := time.Now() // the victim's clock stands still: its buckets never refill
			victim := newNode(t, net, auth, func(c *Config) {
				c.PeerRate, c.PeerBurst, c.MaxSessionsPerLink = 1, burst, maxSess
				c.Now = func() time.Time { return frozen }
			})
			victim.a.AddBehavior("/test/echo", echo)
			honest := newNode(t, net, &testAuth{}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a loaded machine under -race
			defer cancel()
			serves := func() {
				t.Helper()
				var out string
				if err := honest.a.Invoke(ctx, victim.a.Handle(), "/test/echo", "hi", &out); err != nil || out != "hi" {
					t.Fatalf("honest Invoke = %q, %v; want the echo", out, err)
				}
			}
			serves()
			callsBefore := auth.calls.Load()

			l, self, next := attacker(t, net, victim)
			iss := mustKey(t).DID()
			for start := 1; start <= flood; start += perFrame {
				var frame []byte
				for id := start; id < start+perFrame && id <= flood; id++ {
					cmd := fmt.Sprintf("/test/echo/%d", id)
					frame = appendSession(frame, session{id: uint32(id), iss: iss, aud: victim.key.DID(), cmd: cmd, inv: tt.inv(cmd)})
				}
				if err := l.Send(ctx, frame); err != nil {
					t.Fatal(err)
				}
			}
			// An envelope after the flood: its answer says the victim read
			// every definition before it.
			last := &Envelope{Nonce: 1, Expiry: frozen.Add(time.Minute), WantReply: true, To: victim.a.Handle(),
				From: Handle{DID: iss, Host: self, Inbox: "x"}, Behavior: "/test/echo", Invocation: []byte("allow:/test/echo")}
			if err := l.Send(ctx, appendEnvelope(nil, last)); err != nil {
				t.Fatal(err)
			}
			if r := next(); r.Err == nil || r.Err.Code != CodeRateLimited {
				t.Errorf("reply to the envelope after the flood = %+v, want %s", r.Err, CodeRateLimited)
			}

			if verified := auth.calls.Load() - callsBefore; verified > burst {
				t.Errorf("%d of %d session definitions were verified, want at most the burst %d", verified, flood, burst)
			}
			if n := victim.sys.Stats()["refused_rate-limited"]; n < flood-burst {
				t.Errorf("refused_rate-limited = %d, want at least %d", n, flood-burst)
			}
			w := victim.sys.linkOf(self)
			if w == nil {
				t.Fatal("the victim has no link to the attacker")
			}
			if n := len(w.recvSess); n > maxSess {
				t.Errorf("the attacker's link stores %d sessions, want at most %d", n, maxSess)
			}
			serves()

			// The link closes: nothing keeps its sessions.
			gone := weak.Make(w)
			w = nil
			l.Close()
			poll.Eventually(t, 5*time.Second, "the attacker's link state is freed", func() bool {
				runtime.GC()
				return gone.Value() == nil
			})
			serves()
		})
	}
}

// linkOf returns the runtime's link state of a link with peer, or nil.
func (s *System) linkOf(peer string) *link {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for l, w := range s.links {
		if l.Peer() == peer {
			return w
		}
	}
	return nil
}

// An honest sender whose session the receiver evicted (it defined more than
// MaxSessionsPerLink on the link) is answered "unknown session": its Invoke
// defines the session anew and is served, and a Send after the refused one
// goes through.
func TestEvictedSessionIsDefinedAgain(t *testing.T) {
	net := NewMemNetwork()
	a := newNode(t, net, &testAuth{}, nil)
	b := newNode(t, net, &testAuth{}, func(c *Config) { c.MaxSessionsPerLink = 2 })
	got := make(chan string, 16)
	behaviors := []string{"/test/one", "/test/two", "/test/three"}
	for _, bh := range behaviors {
		b.a.AddBehavior(bh, echo)
	}
	b.a.AddBehavior("/test/note", func(ctx context.Context, m *Message) (any, error) {
		var s string
		m.Decode(&s)
		got <- s
		return nil, nil
	})
	ctx := ctxT(t)
	// Three behaviors round robin: every session is evicted before it is
	// used again.
	for round := range 3 {
		for _, bh := range behaviors {
			var out int
			if err := a.a.Invoke(ctx, b.a.Handle(), bh, round, &out); err != nil || out != round {
				t.Fatalf("round %d: Invoke %s = %d, %v; want the echo", round, bh, out, err)
			}
		}
	}
	if n := b.sys.Stats()["sessions_evicted"]; n == 0 {
		t.Fatalf("sessions_evicted = 0: the test did not evict (stats %v)", b.sys.Stats())
	}
	if n := a.sys.Stats()["session_resends"]; n == 0 {
		t.Fatalf("session_resends = 0: no Invoke was refused for its session (stats %v)", a.sys.Stats())
	}
	if n := len(b.sys.linkOf(a.host.id).recvSess); n > 2 {
		t.Fatalf("b holds %d sessions of a's link, want at most 2", n)
	}

	// One-way: the note session is evicted by the sessions of two new
	// behaviors; the next note is refused for its session, and its sender,
	// which kept it, defines the session again and resends it once.
	if err := a.a.Send(ctx, b.a.Handle(), "/test/note", "first"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "first" {
		t.Fatalf("got %q, want first", s)
	}
	for _, bh := range []string{"/test/four", "/test/five"} {
		b.a.AddBehavior(bh, echo)
		if err := a.a.Invoke(ctx, b.a.Handle(), bh, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	resends := a.sys.Stats()["session_resends"]
	for _, note := range []string{"evicted", "again"} {
		if err := a.a.Send(ctx, b.a.Handle(), "/test/note", note); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != note {
			t.Fatalf("got %q, want %q", s, note)
		}
	}
	if n := a.sys.Stats()["session_resends"]; n != resends+1 {
		t.Fatalf("session_resends went from %d to %d, want one resend (of the evicted note)", resends, n)
	}
	if n := a.sys.Stats()["send_refused_"+string(CodeBadEnvelope)]; n != 0 {
		t.Fatalf("send_refused_bad-envelope = %d, want 0: the evicted note was resent", n)
	}
}

func TestSentSendsBounded(t *testing.T) {
	var k sentSends
	big := make([]byte, sentBytes/4)
	for i := range 3 * sentKeep {
		env := &Envelope{Nonce: uint64(i), To: Handle{Host: "h"}}
		if i%16 == 0 {
			env.Payload = big
		}
		k.keep(nil, env)
		if k.n > sentKeep || k.bytes > sentBytes {
			t.Fatalf("after %d: %d kept, %d bytes; want at most %d and %d", i+1, k.n, k.bytes, sentKeep, sentBytes)
		}
	}
	last := uint64(3*sentKeep - 1)
	if _, ok := k.take(last, "other"); ok {
		t.Fatal("took an envelope sent to another host")
	}
	if e, ok := k.take(last, "h"); !ok || e.env.Nonce != last {
		t.Fatalf("take(last) = %v, %v", e.env, ok)
	}
	if _, ok := k.take(last, "h"); ok {
		t.Fatal("took the same envelope twice")
	}
	if _, ok := k.take(0, "h"); ok {
		t.Fatal("the oldest envelope was not dropped")
	}
	k.keep(nil, &Envelope{Nonce: 1, Payload: make([]byte, sentBytes/4+1)})
	if _, ok := k.take(1, ""); ok {
		t.Fatal("an envelope over the size limit was kept")
	}
}

// TestSentSendsTakeMiddle takes envelopes from the middle, the ends and a
// wrapped ring, and checks that the others stay, in order.
func TestSentSendsTakeMiddle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kept, take []uint64 // kept: the nonces kept, in order (more than sentKeep wraps the ring)
	}{
		{"middle", []uint64{1, 2, 3, 4, 5}, []uint64{3}},
		{"ends", []uint64{1, 2, 3, 4, 5}, []uint64{1, 5}},
		{"all", []uint64{1, 2, 3}, []uint64{2, 1, 3}},
		{"wrapped", seq(1, sentKeep+10), []uint64{12, sentKeep + 10, 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k sentSends
			for _, n := range tc.kept {
				k.keep(nil, &Envelope{Nonce: n, To: Handle{Host: "h"}, Payload: []byte("x")})
			}
			for _, n := range tc.take {
				if e, ok := k.take(n, "h"); !ok || e.env.Nonce != n {
					t.Fatalf("take(%d) = %v, %v", n, e.env, ok)
				}
			}
			var want []uint64
			for _, n := range tc.kept[max(0, len(tc.kept)-sentKeep):] {
				if !slices.Contains(tc.take, n) {
					want = append(want, n)
				}
			}
			var got []uint64
			for i := range k.n {
				got = append(got, k.ring[(k.head+i)%sentKeep].env.Nonce)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("kept %v, want %v", got, want)
			}
			if k.bytes != len(want) {
				t.Fatalf("%d bytes counted, want %d", k.bytes, len(want))
			}
		})
	}
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// peerLink is a Link that only names its peer, for tests that drive a
// link's session table directly.
type peerLink struct {
	Link
	peer string
}

func (l peerLink) Peer() string { return l.peer }

// FuzzSessionTable defines the sessions of a frame on a link, one record
// at a time, and checks the link's bounds after each: at most
// MaxSessionsPerLink sessions within their byte budget, each listed once
// in definition order and under its key, and an envelope naming any id is
// answered (granted, denied or unknown) without a panic.
func FuzzSessionTable(f *testing.F) {
	def := func(id uint32, cmd, inv string) []byte {
		return appendSession(nil, session{id: id, iss: "did:key:zA", aud: "did:key:zB", cmd: cmd, inv: []byte(inv)})
	}
	f.Add(def(1, "/x", "allow:/x"))
	f.Add(slices.Concat(def(1, "/x", "allow:/x"), def(2, "/y", "allow:/y"), def(1, "/z", "no"), def(3, "/x", "allow:/x")))
	f.Add(slices.Concat(def(1, "/a", "allow:/a"), def(2, "/b", "allow:/b"), def(3, "/c", "allow:/c"), def(4, "/d", "allow:/d"), def(5, "/e", "allow:/e")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		const max = 3
		sys := &System{cfg: Config{Auth: &testAuth{}, MaxSessionsPerLink: max, Now: time.Now}, limiter: newPeerLimiter(1e9, 1e9)}
		w := newLink(peerLink{peer: "p"}, sys)
		eachRecord(frame, newInterner(), true, func(r record) {
			if r.session == nil {
				return
			}
			w.defineSession(r.session)
			if len(w.recvSess) > max || w.recvOrder.Len() != len(w.recvSess) || len(w.recvByKey) != len(w.recvSess) {
				t.Fatalf("%d sessions, %d in order, %d by key; want equal and at most %d", len(w.recvSess), w.recvOrder.Len(), len(w.recvByKey), max)
			}
			size := 0
			for e := w.recvOrder.Front(); e != nil; e = e.Next() {
				rs := e.Value.(*recvSess)
				if w.recvSess[rs.id] != rs || w.recvByKey[sessKey{from: rs.iss, to: rs.aud, cmd: rs.cmd}] != rs {
					t.Fatalf("session %d is listed but not held", rs.id)
				}
				size += rs.size
			}
			if size != w.recvBytes || size > linkSessionBytes {
				t.Fatalf("sessions take %d bytes, counted %d, budget %d", size, w.recvBytes, linkSessionBytes)
			}
			env := &Envelope{Session: r.session.id, From: Handle{DID: r.session.iss}, To: Handle{DID: r.session.aud}, Behavior: r.session.cmd}
			_, err := w.sessionGrant(env)
			if string(r.session.inv) == "allow:"+r.session.cmd && err != nil {
				t.Fatalf("session %d for %s just defined with a good invocation: %v", r.session.id, r.session.cmd, err)
			}
			if string(r.session.inv) != "allow:"+r.session.cmd && (err == nil || err.Code != CodeDenied) {
				t.Fatalf("session %d for %s just defined with a bad invocation: %v, want denied", r.session.id, r.session.cmd, err)
			}
		})
	})
}

// protectHost records the hosts its runtime asks it to protect.
type protectHost struct {
	*MemHost
	mu        sync.Mutex
	protected map[string]int // guarded by mu
}

func (h *protectHost) Protect(host string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.protected[host]++
	return nil
}

func (h *protectHost) count(host string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.protected[host]
}

// The runtime asks a Protector transport to keep room for the peers it
// works with: one its actor defines a session to, one that defines an
// authorized session; not one whose sessions all fail.
func TestSessionsProtectPeers(t *testing.T) {
	net := NewMemNetwork()
	wrap := func(p **protectHost) func(*Config) {
		return func(c *Config) {
			*p = &protectHost{MemHost: c.Transport.(*MemHost), protected: map[string]int{}}
			c.Transport = *p
		}
	}
	var pa, pb *protectHost
	a := newNode(t, net, &testAuth{}, wrap(&pa))
	b := newNode(t, net, &testAuth{deny: map[string]string{"/test/secret": "no"}}, wrap(&pb))
	b.a.AddBehavior("/test/echo", echo)
	b.a.AddBehavior("/test/secret", echo)
	ctx := ctxT(t)
	if err := a.a.Invoke(ctx, b.a.Handle(), "/test/echo", 1, nil); err != nil {
		t.Fatal(err)
	}
	if n := pa.count(b.host.id); n != 1 {
		t.Errorf("a protected b %d times, want once", n)
	}
	if n := pb.count(a.host.id); n != 1 {
		t.Errorf("b protected a %d times, want once", n)
	}
	c := newNode(t, net, &testAuth{}, nil)
	if err := c.a.Invoke(ctx, b.a.Handle(), "/test/secret", 1, nil); !errors.Is(err, ErrDenied) {
		t.Fatalf("Invoke /test/secret = %v, want denied", err)
	}
	if n := pb.count(c.host.id); n != 0 {
		t.Errorf("b protected c, whose only session was denied, %d times", n)
	}
}

// refusalLog is an Observer that keeps the refusals.
type refusalLog struct {
	mu      sync.Mutex
	refused []string
}

func (o *refusalLog) Handled(string, Code, time.Duration) {}

func (o *refusalLog) Refused(behavior string, code Code) {
	o.mu.Lock()
	o.refused = append(o.refused, behavior+" "+string(code))
	o.mu.Unlock()
}

func (o *refusalLog) has(behavior string, code Code) bool {
	return slices.Contains(o.all(), behavior+" "+string(code))
}

func (o *refusalLog) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.refused)
}

// TestReplyNamingAnotherHostIsDropped: a broadcast's collector takes
// replies from any host, so a reply must name the host it came from; one
// that names another (a peer answering in another's name) is dropped and
// counted. A refusal names no sender and is delivered.
func TestReplyNamingAnotherHostIsDropped(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	tests := []struct {
		name      string
		from      string // the link's peer
		claims    string // the reply's From.Host
		delivered bool
	}{
		{"names its own host", "peer-a", "peer-a", true},
		{"names another host", "peer-a", "peer-b", false},
		{"a refusal, no sender", "peer-a", "", true},
		{"a local answer", n.sys.self, n.sys.self, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nonce := uint64(1<<40 + i)
			var got []*Reply
			n.sys.pendMu.Lock()
			n.sys.pending[nonce] = &pending{fn: func(r *Reply) { got = append(got, r) }}
			n.sys.pendMu.Unlock()
			defer func() { n.sys.pendMu.Lock(); delete(n.sys.pending, nonce); n.sys.pendMu.Unlock() }()
			before := n.sys.Stats()["replies_from_wrong_host"]
			n.sys.deliverReply(tt.from, &Reply{InReplyTo: nonce, From: Handle{Host: tt.claims}})
			dropped := n.sys.Stats()["replies_from_wrong_host"] - before
			if delivered := len(got) == 1; delivered != tt.delivered || (dropped == 1) == tt.delivered {
				t.Fatalf("deliverReply(from %q, From.Host %q): delivered %v (dropped counted %d), want delivered %v", tt.from, tt.claims, delivered, dropped, tt.delivered)
			}
		})
	}
}

// A one-way Send takes its nonce once it holds its link, not before it
// waits for the link: concurrent senders put their envelopes on the link in
// nonce order, so one that waited while more than the receiver's replay
// window of others went first is not refused as a replay (seen as
// send_refused_replay in BenchmarkSendThroughput under load).
func TestSendTakesItsNonceOnTheLink(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	got := make(chan struct{}, 4)
	b.a.AddBehavior("/test/note", func(ctx context.Context, m *Message) (any, error) {
		got <- struct{}{}
		return nil, nil
	})
	ctx := ctxT(t)
	if err := a.a.Send(ctx, b.a.Handle(), "/test/note", "warm"); err != nil {
		t.Fatal(err)
	}
	<-got
	w := a.sys.linkOf(b.sys.Self())
	if w == nil {
		t.Fatal("no link")
	}
	w.mu.Lock() // the next Send waits for the link
	sent := make(chan error, 1)
	go func() { sent <- a.a.Send(ctx, b.a.Handle(), "/test/note", "late") }()
	poll.Eventually(t, 10*time.Second, "the Send waits for its link", func() bool {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*link).sendEnvelope") && strings.Contains(g, "sync.(*Mutex).Lock") {
				return true
			}
		}
		return false
	})
	meanwhile := a.sys.nextNonce() // what other senders took while it waited
	w.mu.Unlock()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	<-got
	a.sys.sent.mu.Lock()
	newest := a.sys.sent.ring[(a.sys.sent.head+a.sys.sent.n-1)%sentKeep].env.Nonce
	a.sys.sent.mu.Unlock()
	if newest <= meanwhile {
		t.Fatalf("the Send that waited for its link went with nonce %d, taken before %d", newest, meanwhile)
	}
}

// recordLink records the frames sent on it, failing the first fail sends.
type recordLink struct {
	Link
	fail   int
	frames [][]byte
}

func (l *recordLink) Send(ctx context.Context, frame []byte) error {
	if l.fail > 0 {
		l.fail--
		return errors.New("link broke")
	}
	l.frames = append(l.frames, bytes.Clone(frame))
	return nil
}

// A session whose defining frame failed to go out is defined again by the
// next envelope on the same link: the link's last-used session
// (link.lastSess) is forgotten with it.
func TestSessionDefinedAgainOnSameLink(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	rl := &recordLink{Link: peerLink{peer: b.host.Self()}, fail: 1}
	w := newLink(rl, a.sys)
	ctx := ctxT(t)
	sessions := func() (n int) {
		if _, err := eachRecordInto(rl.frames[len(rl.frames)-1], newInterner(), true, new(Envelope), func(r record) {
			if r.kind == recSession {
				n++
			}
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i, want := range []int{-1, 1, 0} { // -1: the send fails
		env := a.a.envelope(ctx, b.a.Handle(), "/test/echo", []byte(`"x"`), time.Now())
		env.Nonce = a.sys.nextNonce()
		err := w.sendEnvelope(ctx, a.a, &env, time.Now(), false)
		if want < 0 {
			if err == nil {
				t.Fatal("the failing send succeeded")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := sessions(); got != want {
			t.Fatalf("envelope %d: %d sessions defined in its frame, want %d", i, got, want)
		}
	}
}
