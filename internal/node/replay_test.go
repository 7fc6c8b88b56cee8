package node

import (
	"context"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
)

// TestReplayAfterRestartIsRefused (defect 3 of issue 12): a one-shot
// invocation is accepted once, whatever envelope carries it, and its use
// is remembered across a restart of the receiving node on the same home.
func TestReplayAfterRestartIsRefused(t *testing.T) {
	home, key, user := t.TempDir(), mustKey(t), mustKey(t)
	b, stop := startStored(t, home, key, user)
	m := newAttacker(t)
	m.connect(t, b.testNode)

	// The attacker holds a delegation from b's user for /dms/node/peers.
	d, err := cap.Delegate(user, cap.DelegationParams{Audience: m.key.DID(), Command: "/dms/node/peers", Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	invocation := func() []byte {
		inv, err := cap.Invoke(m.key, cap.InvocationParams{Audience: key.DID(), Command: api.BehaviorPeersList, Proofs: cap.Chain{d}, Expiry: time.Now().Add(2 * time.Minute), Args: cap.Bind(m.host.ID(), nil).Args()})
		if err != nil {
			t.Fatal(err)
		}
		return cap.BundleOf(inv, cap.Chain{d})
	}
	nonce := uint64(time.Now().UnixNano())
	envelope := func(bundle []byte) []byte {
		nonce++
		to, _ := actor.NodeHandle(b.host.ID())
		return actor.EncodeEnvelope(&actor.Envelope{
			Nonce: nonce, Expiry: time.Now().Add(time.Minute), WantReply: true, To: to,
			From:     actor.Handle{DID: m.key.DID(), Host: m.host.ID(), Inbox: "m"},
			Behavior: api.BehaviorPeersList, Invocation: bundle,
		})
	}
	exchange := func(l actor.Link, frame []byte) *actor.Reply {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Send(ctx, frame); err != nil {
			t.Fatal(err)
		}
		return m.reply(t)
	}

	// Two invocations used once each, so that the cases after the restart
	// do not depend on each other.
	usedA, usedB := invocation(), invocation()
	firstA := envelope(usedA)
	l, closed := m.link(t, b.testNode)
	for _, f := range [][]byte{firstA, envelope(usedB)} {
		if r := exchange(l, f); r.Err != nil {
			t.Fatalf("first use: %v", r.Err)
		}
	}
	t.Run("the invocation in a new envelope, before the restart", func(t *testing.T) {
		wantRefused(t, exchange(l, envelope(usedA)), actor.CodeReplay, "")
	})

	stop()
	select { // the old link is gone, so that the next one reaches the new node
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the link to the stopped node is still open")
	}
	b, _ = startStored(t, home, key, user)
	m.connect(t, b.testNode)
	l, _ = m.link(t, b.testNode)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"the same envelope, after the restart", firstA},
		{"the invocation in a new envelope, after the restart", envelope(usedB)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRefused(t, exchange(l, tt.frame), actor.CodeReplay, "")
		})
	}
	if r := exchange(l, envelope(invocation())); r.Err != nil {
		t.Fatalf("a fresh invocation after the restart: %v", r.Err)
	}
}
