package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dmsnet/dms/internal/identity"
)

const (
	// maxTopicLen bounds an actor-level topic name.
	maxTopicLen = 200
	// publishWait bounds how long after a new connection Publish waits for
	// the peer's subscriptions, so that a message published right after
	// connecting is not lost.
	publishWait = 2 * time.Second
	// subscriptionBuffer is how many received messages wait for a slow
	// subscriber before gossipsub drops them.
	subscriptionBuffer = 256
)

// checkTopic refuses topic names that are empty, too long or hold spaces
// or control characters.
func checkTopic(topic string) error {
	if topic == "" || len(topic) > maxTopicLen {
		return fmt.Errorf("topic %q: want 1 to %d bytes", topic, maxTopicLen)
	}
	for _, r := range topic {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("topic %q: no spaces or control characters", topic)
		}
	}
	return nil
}

// joinTopic returns the joined gossipsub topic of an actor-level topic,
// joining it (with our validator) the first time.
func (h *Host) joinTopic(topic string) (*pubsub.Topic, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	name := h.cfg.topicName(topic)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if t := h.topics[name]; t != nil {
		return t, nil
	}
	if err := h.ps.RegisterTopicValidator(name, h.validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("topic %s: validator: %w", topic, err)
	}
	t, err := h.ps.Join(name)
	if err != nil {
		_ = h.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join topic %s: %w", topic, err)
	}
	h.topics[name] = t
	return t, nil
}

// validate refuses gossip messages that are oversized or whose publisher
// is not an Ed25519 key (a node's key is both its peer ID and its DID).
// Signatures are checked by gossipsub before this runs.
func (h *Host) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.Data) > h.cfg.MaxFrame {
		h.log.Debug("gossip refused: oversized", "peer_id", from.String(), "size", len(msg.Data))
		return pubsub.ValidationReject
	}
	if _, err := identity.DIDFromPeerID(msg.GetFrom().String()); err != nil {
		h.log.Debug("gossip refused: publisher", "peer_id", from.String(), "err", err)
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

// Publish broadcasts frame to the subscribers of topic on other hosts.
// Within two seconds of a new connection, it first waits (at most until
// then) for gossipsub to learn that peer's subscriptions, so that a message
// published right after connecting is not lost.
func (h *Host) Publish(ctx context.Context, topic string, frame []byte) error {
	if len(frame) > h.cfg.MaxFrame {
		return fmt.Errorf("publish on %s: frame of %d bytes exceeds the limit of %d", topic, len(frame), h.cfg.MaxFrame)
	}
	t, err := h.joinTopic(topic)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	h.awaitGossipPeers(ctx)
	if err := t.Publish(ctx, frame); err != nil {
		return fmt.Errorf("publish on %s: %w", topic, err)
	}
	return nil
}

// awaitGossipPeers waits, for at most publishWait after their connection
// opened, for the peers connected so recently that gossipsub may not be
// ready to send to them: until gossipsub has its stream to each and their
// subscriptions, or the peer turns out not to speak gossipsub. A message
// published right after connecting then reaches every subscriber.
func (h *Host) awaitGossipPeers(ctx context.Context) {
	for {
		wait, changed := h.gossipPending()
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// gossipPending returns how long the most recent connection to a peer that
// gossipsub is not ready for may still make us wait, and a channel closed
// when the next peer becomes ready.
func (h *Host) gossipPending() (time.Duration, <-chan struct{}) {
	h.gossip.mu.Lock()
	changed := h.gossip.changed
	h.gossip.mu.Unlock()
	var wait time.Duration
	now := time.Now()
	for _, c := range h.host.Network().Conns() {
		left := c.Stat().Opened.Add(publishWait).Sub(now)
		if left <= wait {
			continue
		}
		p := c.RemotePeer()
		if h.gossip.ready(p) {
			continue
		}
		if protos, err := h.host.Peerstore().GetProtocols(p); err == nil && len(protos) > 0 &&
			!slices.ContainsFunc(protos, func(id protocol.ID) bool { return strings.HasPrefix(string(id), "/meshsub/") }) {
			continue // identified, and it does not gossip
		}
		wait = left
	}
	return wait, changed
}

// gossipPeers records, per peer, whether gossipsub can send to it (it has
// opened its outbound stream) and has heard from it (received its first
// message, which lists its subscriptions). Once both hold, a message we
// publish reaches the peer if it subscribes to the topic.
type gossipPeers struct {
	mu      sync.Mutex
	state   map[peer.ID]uint8 // heardRPC | outbound; guarded by mu
	changed chan struct{}     // closed and replaced when a peer becomes ready; guarded by mu
}

const (
	heardRPC uint8 = 1 << iota
	outbound
	gossipReady = heardRPC | outbound
)

func newGossipPeers() *gossipPeers {
	return &gossipPeers{state: map[peer.ID]uint8{}, changed: make(chan struct{})}
}

func (g *gossipPeers) ready(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state[p] == gossipReady
}

func (g *gossipPeers) set(p peer.ID, bit uint8) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.state[p]
	g.state[p] = old | bit
	if old != gossipReady && old|bit == gossipReady {
		close(g.changed)
		g.changed = make(chan struct{})
	}
}

func (g *gossipPeers) remove(p peer.ID) {
	g.mu.Lock()
	delete(g.state, p)
	g.mu.Unlock()
}

// gossipTracer feeds gossipPeers from gossipsub's events.
type gossipTracer struct{ peers *gossipPeers }

func (t gossipTracer) RecvRPC(rpc *pubsub.RPC) { t.peers.set(rpc.From(), heardRPC) }

func (t gossipTracer) OnNewOutboundStream(p peer.ID, _ protocol.ID) { t.peers.set(p, outbound) }

func (t gossipTracer) OnClosedOutboundStream(p peer.ID) { t.peers.remove(p) }

func (gossipTracer) Join(string)                           {}
func (gossipTracer) Leave(string)                          {}
func (gossipTracer) Graft(peer.ID, string)                 {}
func (gossipTracer) Prune(peer.ID, string)                 {}
func (gossipTracer) ValidateMessage(*pubsub.Message)       {}
func (gossipTracer) DeliverMessage(*pubsub.Message)        {}
func (gossipTracer) RejectMessage(*pubsub.Message, string) {}
func (gossipTracer) DuplicateMessage(*pubsub.Message)      {}
func (gossipTracer) ThrottlePeer(peer.ID)                  {}
func (gossipTracer) SendRPC(*pubsub.RPC, peer.ID)          {}
func (gossipTracer) DropRPC(*pubsub.RPC, peer.ID)          {}
func (gossipTracer) UndeliverableMessage(*pubsub.Message)  {}

// Subscribe calls fn, in one goroutine, with each frame published on topic
// by another host and that host's peer ID, authenticated by the message
// signature. Messages published by this host are not delivered. The
// returned function ends the subscription; fn may still be running when it
// returns, but is not called again after that call finishes.
func (h *Host) Subscribe(topic string, fn func(publisher string, frame []byte)) (cancel func(), err error) {
	t, err := h.joinTopic(topic)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	self := h.host.ID()
	ctx, stop := context.WithCancel(context.Background())
	var stopped atomic.Bool
	cancel = func() {
		if stopped.Swap(true) {
			return
		}
		sub.Cancel()
		stop()
		h.mu.Lock()
		delete(h.subs, &stopped)
		h.mu.Unlock()
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		stop()
		sub.Cancel()
		return nil, ErrClosed
	}
	h.subs[&stopped] = stop
	h.mu.Unlock()
	h.goBG(func() {
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				if !errors.Is(err, pubsub.ErrSubscriptionCancelled) && ctx.Err() == nil {
					h.log.Debug("subscription ended", "topic", topic, "err", err)
				}
				return
			}
			if msg.GetFrom() == self || stopped.Load() {
				continue
			}
			fn(msg.GetFrom().String(), msg.Data)
		}
	})
	return cancel, nil
}
