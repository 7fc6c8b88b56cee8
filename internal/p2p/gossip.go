package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dmsnet/dms/internal/identity"
)

const (
	// maxTopicLen bounds an actor-level topic name.
	maxTopicLen = 200
	// publishWait bounds how long Publish waits for the first subscriber of
	// a topic to become known after a new connection, so that a message
	// published right after connecting is not lost.
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

// Publish broadcasts frame to the subscribers of topic on other hosts. Right
// after a new connection, when no subscriber of the topic is known yet, it
// waits briefly for one to appear.
func (h *Host) Publish(ctx context.Context, topic string, frame []byte) error {
	if len(frame) > h.cfg.MaxFrame {
		return fmt.Errorf("publish on %s: frame of %d bytes exceeds the limit of %d", topic, len(frame), h.cfg.MaxFrame)
	}
	t, err := h.joinTopic(topic)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if len(t.ListPeers()) == 0 {
		h.awaitTopicPeer(ctx, t)
	}
	if err := t.Publish(ctx, frame); err != nil {
		return fmt.Errorf("publish on %s: %w", topic, err)
	}
	return nil
}

// awaitTopicPeer waits until t has a known subscriber, for as long as a
// connection opened in the last publishWait might still announce one.
func (h *Host) awaitTopicPeer(ctx context.Context, t *pubsub.Topic) {
	h.mu.Lock()
	deadline := h.lastConn.Add(publishWait)
	h.mu.Unlock()
	if len(h.host.Network().Peers()) == 0 || !time.Now().Before(deadline) {
		return
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	eh, err := t.EventHandler()
	if err != nil {
		return
	}
	defer eh.Cancel()
	for {
		ev, err := eh.NextPeerEvent(wctx)
		if err != nil || ev.Type == pubsub.PeerJoin {
			return
		}
	}
}

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
