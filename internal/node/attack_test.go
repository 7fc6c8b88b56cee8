package node

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/p2p"
	"github.com/dmsnet/dms/internal/poll"
)

// bareLink starts a bare libp2p host with key — an attacker speaking the
// wire protocol directly, with no actor runtime — and opens a link to
// victim. The host is closed when the test ends.
func bareLink(ctx context.Context, t *testing.T, key *identity.Key, victim *testNode) (*p2p.Host, actor.Link) {
	t.Helper()
	host, err := p2p.New(ctx, p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	host.SetLinkHandler(func(actor.Link) {})
	if _, err := host.Connect(ctx, victim.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	link, err := host.Link(ctx, victim.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	return host, link
}

// Attack tests: a peer speaking the wire protocol directly sends envelopes
// that break one rule each. Each is refused with its own typed error, and
// the node keeps serving an honest peer.
func TestAttacks(t *testing.T) {
	victim := newTestNode(t, func(c *config.Config) {
		c.Cap.ClockSkew = config.Duration(time.Millisecond)
		c.Actor.PeerRate, c.Actor.PeerBurst = 200, 200
	})
	honest := newTestNode(t, nil)
	honest.connect(t, victim)

	// The attacker is a bare libp2p host: carol's key, holding a delegation
	// from the victim's owner for /dms/node/peers.
	carol := mustKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, link := bareLink(ctx, t, carol, victim)
	now := time.Now()
	grant, err := cap.Delegate(victim.user, cap.DelegationParams{Audience: carol.DID(), Command: "/dms/node/peers", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	chain := cap.Chain{grant}
	bundle := func(p cap.InvocationParams) []byte {
		t.Helper()
		if p.Audience == "" {
			p.Audience = victim.cfg.Key.DID()
		}
		if p.Expiry.IsZero() {
			p.Expiry = time.Now().Add(time.Minute)
		}
		if p.Proofs == nil {
			p.Proofs = chain
		}
		if p.Args == nil {
			p.Args = cap.Bind(host.ID(), nil).Args() // the envelopes carry no payload
		}
		inv, err := cap.Invoke(carol, p)
		if err != nil {
			t.Fatal(err)
		}
		return cap.BundleOf(inv, p.Proofs)
	}
	nonce := uint64(time.Now().UnixNano())
	envelope := func(behavior string, inv []byte, mod ...func(*actor.Envelope)) []byte {
		nonce++
		e := &actor.Envelope{
			Nonce: nonce, Expiry: time.Now().Add(time.Minute), WantReply: true,
			To:       actor.Handle{DID: victim.cfg.Key.DID(), Host: victim.host.ID(), Inbox: actor.RootInbox},
			From:     actor.Handle{DID: carol.DID(), Host: host.ID(), Inbox: "attacker"},
			Behavior: behavior, Invocation: inv,
		}
		for _, m := range mod {
			m(e)
		}
		return actor.EncodeEnvelope(e)
	}
	exchange := func(frame []byte) *actor.Reply {
		t.Helper()
		if err := link.Send(ctx, frame); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := link.Recv()
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			if _, replies, _ := actor.DecodeFrame(f); len(replies) > 0 {
				return replies[0]
			}
		}
	}

	valid := envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList}))
	if r := exchange(valid); r.Err != nil {
		t.Fatalf("a valid envelope was refused: %v", r.Err)
	}

	forged := bundle(cap.InvocationParams{Command: api.BehaviorPeersList})
	{
		inv, proofs, _ := cap.DecodeBundle(forged)
		inv[4] ^= 0xff // inside the 64-byte signature that opens the envelope
		forged = cap.EncodeBundle(inv, proofs)
	}
	shortGrant, err := cap.Delegate(victim.user, cap.DelegationParams{Audience: carol.DID(), Command: "/dms/node/peers", Expiry: time.Now().Add(300 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	expired := bundle(cap.InvocationParams{Command: api.BehaviorPeersList, Proofs: cap.Chain{shortGrant}})
	for time.Now().Before(shortGrant.Expiry().Add(20 * time.Millisecond)) {
		time.Sleep(10 * time.Millisecond) // let the token's lifetime pass
	}
	third := mustKey(t)
	thirdHost, _ := third.DID().PeerID()

	tests := []struct {
		name  string
		frame []byte
		code  actor.Code
		rule  cap.Rule
	}{
		{"forged signature", envelope(api.BehaviorPeersList, forged), actor.CodeDenied, cap.RuleSignature},
		{"expired token", envelope(api.BehaviorPeersList, expired), actor.CodeDenied, cap.RuleExpired},
		{"replayed envelope", valid, actor.CodeReplay, ""},
		{"escalated command", envelope("/dms/node/onboarding/status", bundle(cap.InvocationParams{Command: "/dms/node/onboarding/status"})), actor.CodeDenied, cap.RuleCommandEscalation},
		{"wrong audience", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList, Audience: honest.cfg.Key.DID()})), actor.CodeDenied, cap.RuleAudience},
		{"claimed host is not the transport peer", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList}), func(e *actor.Envelope) { e.From.Host = thirdHost }), actor.CodeHostMismatch, ""},
		{"oversized envelope", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList}), func(e *actor.Envelope) { e.Payload = make([]byte, 5<<20) }), actor.CodeTooLarge, ""},
		{"invocation bound to no host", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList, Args: map[string]any{}})), actor.CodeDenied, cap.RuleBinding},
		{"invocation bound to another host", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList, Args: cap.Bind(thirdHost, nil).Args()})), actor.CodeDenied, cap.RuleBinding},
		{"payload not the one committed to", envelope(api.BehaviorPeersList, bundle(cap.InvocationParams{Command: api.BehaviorPeersList}), func(e *actor.Envelope) { e.Payload = []byte(`{}`) }), actor.CodeDenied, cap.RuleBinding},
		{"unknown behavior", envelope("/dms/node/peers/nope", bundle(cap.InvocationParams{Command: "/dms/node/peers/nope"})), actor.CodeUnknownBehavior, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := exchange(tt.frame)
			if r.Err == nil || r.Err.Code != tt.code {
				t.Fatalf("reply error = %v, want code %s", r.Err, tt.code)
			}
			if tt.rule != "" && !hasRule(r.Err.Msg, tt.rule) {
				t.Fatalf("reply error = %v, want rule %s", r.Err, tt.rule)
			}
			assertServes(t, honest, victim)
		})
	}

	t.Run("a flood from one peer", func(t *testing.T) {
		inv := bundle(cap.InvocationParams{Command: api.BehaviorPeersList})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 2000 {
				if link.Send(ctx, envelope(api.BehaviorPeersList, inv, func(e *actor.Envelope) { e.WantReply = false })) != nil {
					return
				}
			}
		}()
		assertServes(t, honest, victim) // during the flood
		<-done
		deadline := time.Now().Add(20 * time.Second)
		for victim.sys.Stats()["refused_rate-limited"] < 1000 {
			if time.Now().After(deadline) {
				t.Fatalf("stats after a flood of 2000 at 200/s: %v", victim.sys.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		assertServes(t, honest, victim)
	})
}

func hasRule(msg string, r cap.Rule) bool {
	return len(msg) >= len(r) && msg[:len(r)] == string(r)
}

// assertServes checks that honest still gets an answer from victim.
func assertServes(t *testing.T, honest, victim *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := actor.Handle{DID: victim.cfg.Key.DID(), Host: victim.host.ID(), Inbox: actor.RootInbox}
	var hello api.Hello
	if err := honest.root.Invoke(ctx, to, api.BehaviorHello, nil, &hello); err != nil || hello.PeerID != victim.host.ID() {
		t.Fatalf("honest peer not served: %+v, %v", hello, err)
	}
}

// A peer with no capability floods a real node with session definitions on
// one link (defect 2 of issue 12: 2,000,000 of them grew the node from 47
// to 857 MiB). The node's heap stays bounded while the link is open and
// returns near its baseline once it closes; an honest peer is served.
func TestSessionFloodMemory(t *testing.T) {
	const (
		flood    = 500_000
		perFrame = 5_000
		budget   = 15 * time.Second // the flood stops here if it is not over
		growth   = 32 << 20         // heap growth allowed while the link is open
		residue  = 16 << 20         // and after it closed
	)
	victim := newTestNode(t, nil)
	honest := newTestNode(t, nil)
	honest.connect(t, victim)
	assertServes(t, honest, victim)

	carol := mustKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*budget)
	defer cancel()
	host, link := bareLink(ctx, t, carol, victim)

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	// sync sends an envelope and waits for its answer: the victim has
	// read everything sent before it.
	nonce := uint64(0)
	sync := func() {
		t.Helper()
		nonce++
		probe := actor.EncodeEnvelope(&actor.Envelope{Nonce: nonce, Expiry: time.Now().Add(time.Minute), WantReply: true,
			To:       actor.Handle{DID: victim.cfg.Key.DID(), Host: victim.host.ID(), Inbox: actor.RootInbox},
			From:     actor.Handle{DID: carol.DID(), Host: host.ID(), Inbox: "attacker"},
			Behavior: api.BehaviorPeersList})
		if err := link.Send(ctx, probe); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := link.Recv()
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			if _, replies, _ := actor.DecodeFrame(f); len(replies) > 0 {
				return
			}
		}
	}
	junk := bytes.Repeat([]byte{0xa5}, 200) // no capability: not even a token
	start := time.Now()
	sent := 0
	for frames := 1; sent < flood && time.Since(start) < budget; frames++ {
		var frame []byte
		for range perFrame {
			sent++
			frame = actor.AppendSession(frame, uint32(sent), carol.DID(), victim.cfg.Key.DID(), api.BehaviorPeersList, junk)
		}
		if err := link.Send(ctx, frame); err != nil {
			t.Fatal(err)
		}
		if frames%10 == 0 {
			sync() // so the time budget bounds what the victim reads, not what we queue
		}
	}
	sync()
	took := time.Since(start)
	open := heap()
	stats := victim.sys.Stats()
	t.Logf("%d session definitions in %s (%.0f/s); heap %d MiB before, %d MiB after; refused_rate-limited %d, sessions_denied %d",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), base>>20, open>>20, stats["refused_rate-limited"], stats["sessions_denied"])
	if open > base+growth {
		t.Errorf("heap grew from %d to %d MiB under a flood of %d session definitions, want at most %d MiB more", base>>20, open>>20, sent, growth>>20)
	}
	assertServes(t, honest, victim)

	link.Close()
	poll.Eventually(t, 10*time.Second, "the heap returns near its baseline", func() bool { return heap() <= base+residue })
	assertServes(t, honest, victim)
}
