package node

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Defect 1 of issue 12: gossip invocations worked as bearer tokens. Every
// invocation is now bound to the host it is sent from, a one-shot one also
// to its payload.

// TestRepublishedBidRequestIsRefused: a peer that no node trusts captures
// an orchestrator's bid request off gossip and republishes it as itself,
// with its own payload asking for everything the provider has left. The
// provider refuses it (denied, binding) and reserves nothing.
func TestRepublishedBidRequestIsRefused(t *testing.T) {
	p, o, m := newProvider(t), newTestNode(t, nil), newAttacker(t)
	m.subscribe(t, deployproto.TopicDeployments)
	o.connect(t, p)
	m.connect(t, o, p)
	orch := spawnOrchestrator(t, o, p.user, "orch-1")

	// The orchestrator's real bid request, published on gossip: the
	// provider bids, and the attacker captures it.
	bids := make(chan *actor.Reply, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	legit := bidRequest("d-legit", orch.Handle(), match.Resources{CPU: 100, RAM: 16 << 20})
	if err := orch.Broadcast(ctx, deployproto.TopicDeployments, deployproto.BehaviorRequest, legit, func(r *actor.Reply) { bids <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-bids:
		var br deployproto.BidReply
		if err := r.Decode(&br); err != nil || br.Bid == nil {
			t.Fatalf("the orchestrator's own bid request: %+v, %v; want a bid", br, err)
		}
	case <-ctx.Done():
		t.Fatal("no bid for the orchestrator's own request")
	}
	captured, err := actor.DecodeEnvelope(m.frame(t))
	if err != nil {
		t.Fatal(err)
	}
	left := p.resources.Free()

	for i := range 3 {
		env := *captured
		env.From.Host = m.host.ID() // gossip is signed: it can only publish as itself
		env.Nonce = uint64(time.Now().UnixNano())
		env.Expiry = time.Now().Add(time.Minute)
		env.Payload, _ = json.Marshal(bidRequest(fmt.Sprintf("d-fake-%d", i), orch.Handle(), left))
		m.publish(t, &env)
		wantRefused(t, m.reply(t), actor.CodeDenied, cap.RuleBinding)
	}
	wantFree(t, p, left)
}

// TestBroadcastPayloadSwapIsRefused: a user asks a node (here a hostile
// one) to relay a broadcast; the node publishes the user's invocation with
// another payload. Providers refuse it and reserve nothing; with the
// payload the user signed, the same invocation goes through.
func TestBroadcastPayloadSwapIsRefused(t *testing.T) {
	p, m := newProvider(t), newAttacker(t)
	m.connect(t, p)
	user := p.user // trusted by the provider for /dms
	signed, _ := json.Marshal(bidRequest("d-user", actor.Handle{}, match.Resources{CPU: 100, RAM: 16 << 20}))
	inv, err := cap.Invoke(user, cap.InvocationParams{Command: deployproto.BehaviorRequest, Expiry: time.Now().Add(time.Minute), Args: cap.Bind(m.host.ID(), signed).Args()})
	if err != nil {
		t.Fatal(err)
	}
	env := func(payload []byte) *actor.Envelope {
		return &actor.Envelope{
			Nonce: uint64(time.Now().UnixNano()), Expiry: time.Now().Add(time.Minute), WantReply: true,
			From:     actor.Handle{DID: user.DID(), Host: m.host.ID(), Inbox: "api"},
			Behavior: deployproto.BehaviorRequest, Topic: deployproto.TopicDeployments,
			Invocation: cap.BundleOf(inv, nil), Payload: payload,
		}
	}
	free := p.resources.Free()
	swapped, _ := json.Marshal(bidRequest("d-swapped", actor.Handle{}, free))
	m.publish(t, env(swapped))
	wantRefused(t, m.reply(t), actor.CodeDenied, cap.RuleBinding)
	wantFree(t, p, free)

	m.publish(t, env(signed))
	var br deployproto.BidReply
	if err := m.reply(t).Decode(&br); err != nil || br.Bid == nil {
		t.Fatalf("the payload the user signed: %+v, %v; want a bid", br, err)
	}
}

// TestRelayedUserInvocationFromAnotherPeerIsRefused: a user invocation
// bound to the node that relays it is refused from any other peer, and
// that attempt does not use it up: its node relays it afterwards.
func TestRelayedUserInvocationFromAnotherPeerIsRefused(t *testing.T) {
	a, b, m := newTestNode(t, nil), newTestNode(t, nil), newAttacker(t)
	a.connect(t, b)
	m.connect(t, b)
	to := b.root.Handle()
	inv, err := cap.Invoke(b.user, cap.InvocationParams{Audience: to.DID, Command: api.BehaviorPeersList, Expiry: time.Now().Add(time.Minute), Args: cap.Bind(a.host.ID(), nil).Args()})
	if err != nil {
		t.Fatal(err)
	}
	bundle := cap.BundleOf(inv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	l, _ := m.link(t, b)
	frame := actor.EncodeEnvelope(&actor.Envelope{
		Nonce: uint64(time.Now().UnixNano()), Expiry: time.Now().Add(time.Minute), WantReply: true, To: to,
		From:     actor.Handle{DID: b.user.DID(), Host: m.host.ID(), Inbox: "api"},
		Behavior: api.BehaviorPeersList, Invocation: bundle,
	})
	if err := l.Send(ctx, frame); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, m.reply(t), actor.CodeDenied, cap.RuleBinding)

	if _, err := newRelay(a.sys).Relay(ctx, &actor.Envelope{To: to, From: actor.Handle{DID: b.user.DID(), Inbox: "api"}, Behavior: api.BehaviorPeersList, Invocation: bundle, WantReply: true}); err != nil {
		t.Fatalf("relayed by the node it is bound to: %v", err)
	}
}

// TestUntrustedOrchestratorGetsNoReservation: a provider reserves only for
// an orchestrator whose chain roots in a user it trusts for
// /dms/deployment; any other bid request is refused (untrusted-root) and
// reserves nothing.
func TestUntrustedOrchestratorGetsNoReservation(t *testing.T) {
	p, o := newProvider(t), newTestNode(t, nil)
	o.connect(t, p)
	tests := []struct {
		name   string
		root   *identity.Key // the user the orchestrator's chain roots in; nil: no chain
		refuse bool
	}{
		{"chain rooted in a user the provider does not trust", o.user, true},
		{"no chain: self-issued", nil, true},
		{"chain rooted in the provider's user", p.user, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inbox := fmt.Sprintf("orch-%d", i)
			var orch *actor.Actor
			if tt.root != nil {
				orch = spawnOrchestrator(t, o, tt.root, inbox)
			} else {
				var err error
				if orch, err = o.sys.Spawn(mustKey(t), inbox, actor.SpawnOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			free := p.resources.Free()
			replies := make(chan *actor.Reply, 8)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req := bidRequest("d-"+inbox, orch.Handle(), match.Resources{CPU: 100, RAM: 16 << 20})
			if err := orch.Broadcast(ctx, deployproto.TopicDeployments, deployproto.BehaviorRequest, req, func(r *actor.Reply) { replies <- r }); err != nil {
				t.Fatal(err)
			}
			var r *actor.Reply
			select {
			case r = <-replies:
			case <-ctx.Done():
				t.Fatal("no answer from the provider")
			}
			if tt.refuse {
				wantRefused(t, r, actor.CodeDenied, cap.RuleUntrustedRoot)
				wantFree(t, p, free)
				return
			}
			var br deployproto.BidReply
			if err := r.Decode(&br); err != nil || br.Bid == nil || p.resources.Free().CPU != free.CPU-100 {
				t.Fatalf("trusted orchestrator: %+v, %v, free %+v; want a bid reserving 100m CPU", br, err, p.resources.Free())
			}
		})
	}
}
