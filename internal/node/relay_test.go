package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
)

// TestRelayUsesAnInvocationOnce: the REST relay refuses a user invocation
// it has relayed before, to a node or a topic, and one that could be
// replayed forever; a fresh invocation goes through.
func TestRelayUsesAnInvocationOnce(t *testing.T) {
	a, b := newTestNode(t, nil), newTestNode(t, nil)
	a.connect(t, b)
	r := newRelay(a.sys)
	to := actor.Handle{DID: b.cfg.Key.DID(), Host: b.host.ID(), Inbox: actor.RootInbox}
	bundle := func(exp time.Time) []byte {
		inv, err := cap.Invoke(a.user, cap.InvocationParams{Audience: to.DID, Command: api.BehaviorHello, Expiry: exp, Args: cap.Bind(a.host.ID(), nil).Args()})
		if err != nil {
			t.Fatal(err)
		}
		return cap.BundleOf(inv, nil)
	}
	invoke := func(b []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := r.Relay(ctx, &actor.Envelope{To: to, From: actor.Handle{DID: a.user.DID(), Inbox: "api"}, Behavior: api.BehaviorHello, Invocation: b, WantReply: true})
		return err
	}
	broadcast := func(b []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return r.RelayBroadcast(ctx, &actor.Envelope{Topic: api.TopicHello, From: actor.Handle{DID: a.user.DID(), Inbox: "api"}, Behavior: api.BehaviorHello, Invocation: b}, nil)
	}
	replayed := func(err error) bool {
		var ae *actor.Error
		return errors.As(err, &ae) && ae.Code == actor.CodeReplay
	}

	once := bundle(time.Now().Add(time.Minute))
	if err := invoke(once); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := invoke(once); !replayed(err) {
		t.Fatalf("second use = %v, want a replay refusal", err)
	}
	if err := broadcast(once); !replayed(err) {
		t.Fatalf("second use as a broadcast = %v, want a replay refusal", err)
	}
	if err := invoke(bundle(time.Now().Add(time.Minute))); err != nil {
		t.Fatalf("a fresh invocation: %v", err)
	}
	for name, b := range map[string][]byte{
		"no expiry":         bundle(time.Time{}),
		"beyond the window": bundle(time.Now().Add(relayWindow + time.Hour)),
		"not a bundle":      []byte("junk"),
	} {
		if err := invoke(b); err == nil {
			t.Errorf("%s: relayed", name)
		}
	}
}

// TestPeerAddressErrorsAreTheCallers: a malformed address, or this node's
// own, is a bad request (400), not a node failure (500).
func TestPeerAddressErrorsAreTheCallers(t *testing.T) {
	n := newTestNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := peerService{n.Node}
	for _, addr := range []string{"not-an-address", "/ip4/127.0.0.1/tcp/1", n.host.Addrs()[0]} {
		_, err := ps.Connect(ctx, addr)
		var br *apiserver.BadRequest
		if !errors.As(err, &br) {
			t.Errorf("connect %q = %v, want a bad request", addr, err)
		}
	}
	if _, _, err := ps.Ping(ctx, n.host.ID()); !errors.As(err, new(*apiserver.BadRequest)) {
		t.Errorf("ping self = %v, want a bad request", err)
	}
}
