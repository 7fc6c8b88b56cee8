package e2etest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/p2p"
)

// Attacker is a hostile peer for attack tests: its own key, which no node
// trusts unless a test delegates to it, and its own libp2p host on
// loopback, speaking the wire protocol directly. It builds envelopes by
// hand (each test breaks one rule), sends raw frames on a link, reads the
// typed replies, listens to gossip topics and re-publishes what it hears.
//
// Usage:
//
//	a := e2etest.NewAttacker(t, "")
//	victim := a.Connect(t, node.Addr(t))                      // peer ID
//	to, _ := actor.NodeHandle(victim)
//	env := a.Envelope(to, "/dms/node/peers/list", a.Invocation(t, to.DID, "/dms/node/peers/list", chain))
//	r, err := a.Exchange(ctx, victim, env)                    // r.Err.Code == actor.CodeDenied ...
//	c := a.Capture(t, deployproto.TopicDeployments)           // envelopes heard on a topic
//	env, _ = c.Next(ctx, func(e *actor.Envelope) bool { return true })
//	a.Publish(ctx, deployproto.TopicDeployments, actor.EncodeEnvelope(env))
//
// Replies are matched to envelopes by nonce, on every link: the ones the
// attacker opened and the ones nodes open to it (answers to broadcasts
// travel that way). Everything is closed when the test ends.
type Attacker struct {
	Key  *identity.Key
	Host *p2p.Host

	nonce atomic.Uint64

	mu      sync.Mutex
	read    map[actor.Link]bool          // links with a reader; guarded by mu
	pending map[uint64]chan *actor.Reply // awaited replies by nonce; guarded by mu
	stray   map[actor.Code]int           // replies nobody awaited, by code ("" for success); guarded by mu
}

// NewAttacker starts an attacker with a fresh key, listening on ip (""
// means 127.0.0.1; any 127.x.y.z works on Linux and makes a distinct
// source address). It has no bootstrap peers, no mDNS and no DHT.
func NewAttacker(t testing.TB, ip string) *Attacker {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if ip == "" {
		ip = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := p2p.New(ctx, p2p.Config{Listen: []string{"/ip4/" + ip + "/tcp/0"}, ConnLow: 2000, ConnHigh: 4000}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := &Attacker{Key: key, Host: h, read: map[actor.Link]bool{}, pending: map[uint64]chan *actor.Reply{}, stray: map[actor.Code]int{}}
	a.nonce.Store(uint64(time.Now().UnixNano()))
	h.SetLinkHandler(a.serve)
	t.Cleanup(func() { h.Close() })
	return a
}

// DID returns the attacker's DID.
func (a *Attacker) DID() identity.DID { return a.Key.DID() }

// PeerID returns the attacker's libp2p peer ID.
func (a *Attacker) PeerID() string { return a.Host.ID() }

// Connect dials a node's full multiaddr and returns its peer ID.
func (a *Attacker) Connect(t testing.TB, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := a.Host.Connect(ctx, addr)
	if err != nil {
		t.Fatalf("attacker: connect %s: %v", addr, err)
	}
	return id
}

// Link returns a link to peer (opening one if needed) whose incoming
// frames the attacker reads.
func (a *Attacker) Link(ctx context.Context, peer string) (actor.Link, error) {
	l, err := a.Host.Link(ctx, peer)
	if err != nil {
		return nil, err
	}
	a.serve(l)
	return l, nil
}

// serve starts the one reader of l, unless it has one.
func (a *Attacker) serve(l actor.Link) {
	a.mu.Lock()
	if a.read[l] {
		a.mu.Unlock()
		return
	}
	a.read[l] = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			delete(a.read, l)
			a.mu.Unlock()
		}()
		for {
			f, err := l.Recv()
			var tooLarge *actor.FrameTooLargeError
			switch {
			case errors.As(err, &tooLarge):
				continue
			case err != nil:
				return
			}
			// Frames may hold envelopes in the session form (a node
			// answering with its own envelopes); replies decode before them.
			_, replies, _ := actor.DecodeFrame(f)
			for _, r := range replies {
				if r.From.Host == "" {
					// Refusals name no sender: it is the link's peer.
					r.From.Host = l.Peer()
				}
				a.deliver(r)
			}
		}
	}()
}

func (a *Attacker) deliver(r *actor.Reply) {
	a.mu.Lock()
	ch := a.pending[r.InReplyTo]
	if ch == nil {
		code := actor.Code("")
		if r.Err != nil {
			code = r.Err.Code
		}
		a.stray[code]++
	}
	a.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// Stray returns how many replies arrived that no Await was waiting for
// (answers to envelopes sent without waiting, e.g. during a flood), by
// error code ("" for successful replies).
func (a *Attacker) Stray() map[actor.Code]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.stray)
}

// NextNonce returns a fresh envelope nonce (a counter seeded with the
// clock, as a node's runtime numbers its envelopes).
func (a *Attacker) NextNonce() uint64 { return a.nonce.Add(1) }

// Envelope returns an envelope from the attacker's root inbox to to,
// carrying inv (an invocation bundle, or nil), with a fresh nonce, a
// one-minute expiry and WantReply set. Tests change fields to break rules.
func (a *Attacker) Envelope(to actor.Handle, behavior string, inv []byte) *actor.Envelope {
	return &actor.Envelope{
		Nonce: a.NextNonce(), Expiry: time.Now().Add(time.Minute), WantReply: true,
		To:       to,
		From:     actor.Handle{DID: a.DID(), Host: a.PeerID(), Inbox: actor.RootInbox},
		Behavior: behavior, Invocation: inv,
	}
}

// Invocation signs an invocation of cmd for aud with the attacker's key
// (proofs: chain, root first; nil for a self-issued one) valid for two
// minutes, bound to the attacker's host and to an empty payload, and
// returns it bundled with its chain as envelopes carry it. Like every
// inline invocation it is good for one envelope.
func (a *Attacker) Invocation(t testing.TB, aud identity.DID, cmd string, chain cap.Chain) []byte {
	t.Helper()
	return a.InvocationFor(t, aud, cmd, chain, nil)
}

// InvocationFor is Invocation bound to payload.
func (a *Attacker) InvocationFor(t testing.TB, aud identity.DID, cmd string, chain cap.Chain, payload []byte) []byte {
	t.Helper()
	inv, err := cap.Invoke(a.Key, cap.InvocationParams{Audience: aud, Command: cmd, Proofs: chain, Expiry: time.Now().Add(2 * time.Minute),
		Args: cap.Bind(a.PeerID(), payload).Args()})
	if err != nil {
		t.Fatal(err)
	}
	return cap.BundleOf(inv, chain)
}

// Send sends a raw frame to peer on the attacker's link to it.
func (a *Attacker) Send(ctx context.Context, peer string, frame []byte) error {
	l, err := a.Link(ctx, peer)
	if err != nil {
		return err
	}
	return l.Send(ctx, frame)
}

// Await waits for the reply to the envelope numbered nonce, on any link.
// Call it (or Expect) before sending when the reply may be quick; Exchange
// does both.
func (a *Attacker) Await(ctx context.Context, nonce uint64) (*actor.Reply, error) {
	ch := a.Expect(nonce)
	defer a.Forget(nonce)
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no reply to envelope %d: %w", nonce, ctx.Err())
	}
}

// Expect registers interest in the reply to nonce and returns the channel
// it will arrive on; Forget drops the interest.
func (a *Attacker) Expect(nonce uint64) <-chan *actor.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.pending[nonce]
	if ch == nil {
		ch = make(chan *actor.Reply, 16) // a broadcast has a reply per subscriber
		a.pending[nonce] = ch
	}
	return ch
}

// Collect sends the replies to every envelope numbered in nonces to ch
// (replies that find ch full are dropped); Forget drops the interest.
func (a *Attacker) Collect(ch chan *actor.Reply, nonces ...uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range nonces {
		a.pending[n] = ch
	}
}

// Forget drops the interest in the reply to nonce.
func (a *Attacker) Forget(nonce uint64) {
	a.mu.Lock()
	delete(a.pending, nonce)
	a.mu.Unlock()
}

// Exchange sends env (encoded in the full form) to peer and waits for its
// reply.
func (a *Attacker) Exchange(ctx context.Context, peer string, env *actor.Envelope) (*actor.Reply, error) {
	return a.ExchangeFrame(ctx, peer, env.Nonce, actor.EncodeEnvelope(env))
}

// ExchangeFrame sends a raw frame to peer and waits for the reply to the
// envelope numbered nonce.
func (a *Attacker) ExchangeFrame(ctx context.Context, peer string, nonce uint64, frame []byte) (*actor.Reply, error) {
	ch := a.Expect(nonce)
	defer a.Forget(nonce)
	if err := a.Send(ctx, peer, frame); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no reply to envelope %d: %w", nonce, ctx.Err())
	}
}

// Publish publishes a raw frame on a gossip topic as the attacker.
func (a *Attacker) Publish(ctx context.Context, topic string, frame []byte) error {
	return a.Host.Publish(ctx, topic, frame)
}

// Capture is the record of what an attacker heard on one gossip topic.
type Capture struct {
	mu     sync.Mutex
	frames []Heard // guarded by mu
	more   chan struct{}
}

// Heard is one frame heard on a topic, with its authenticated publisher.
type Heard struct {
	Publisher string
	Frame     []byte
	Envelope  *actor.Envelope // nil when the frame does not decode
}

// Capture subscribes to topic and records every frame published on it
// from now on, until the test ends.
func (a *Attacker) Capture(t testing.TB, topic string) *Capture {
	t.Helper()
	c := &Capture{more: make(chan struct{}, 1)}
	cancel, err := a.Host.Subscribe(topic, func(pub string, frame []byte) {
		env, _ := actor.DecodeEnvelope(frame)
		c.mu.Lock()
		c.frames = append(c.frames, Heard{Publisher: pub, Frame: frame, Envelope: env})
		c.mu.Unlock()
		select {
		case c.more <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return c
}

// Next returns the first envelope heard that match accepts, waiting for
// one until ctx is done.
func (c *Capture) Next(ctx context.Context, match func(Heard) bool) (Heard, error) {
	for {
		c.mu.Lock()
		for _, h := range c.frames {
			if h.Envelope != nil && match(h) {
				c.mu.Unlock()
				return h, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-ctx.Done():
			return Heard{}, fmt.Errorf("nothing matching heard: %w", ctx.Err())
		}
	}
}

// SessionRecord returns a frame holding one session definition record, as
// the actor runtime writes it on a link (internal/actor codec.go: kind 1,
// uvarint body length; body: uvarint id, then iss, aud and cmd as
// uvarint-length-prefixed strings, then the invocation bytes). A runtime
// verifies the invocation once and remembers the session for the link.
func SessionRecord(id uint32, iss, aud identity.DID, cmd string, inv []byte) []byte {
	var body []byte
	body = binary.AppendUvarint(body, uint64(id))
	for _, s := range []string{string(iss), string(aud), cmd} {
		body = binary.AppendUvarint(body, uint64(len(s)))
		body = append(body, s...)
	}
	body = binary.AppendUvarint(body, uint64(len(inv)))
	body = append(body, inv...)
	frame := []byte{1}
	frame = binary.AppendUvarint(frame, uint64(len(body)))
	return append(frame, body...)
}

// ConnFlood opens up to n libp2p connections to the node at addr from ip
// (""; 127.0.0.1), each from a bare host with a fresh key (so no per-peer
// limit applies), and keeps them open until the test ends. It stops at
// the first refused connection, or when ctx is done, and returns how many
// connections were established.
func ConnFlood(ctx context.Context, t testing.TB, addr, ip string, n int) (opened int, firstErr error) {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	target, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatalf("conn flood: address %s: %v", addr, err)
	}
	for opened < n && ctx.Err() == nil {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.DisableRelay(),
			libp2p.DisableMetrics(),
			libp2p.ResourceManager(&network.NullResourceManager{}),
		)
		if err != nil {
			t.Fatalf("conn flood: host: %v", err)
		}
		t.Cleanup(func() { h.Close() })
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.Connect(cctx, *target)
		cancel()
		if err != nil {
			return opened, err
		}
		opened++
	}
	return opened, ctx.Err()
}

// PID returns the node's process ID.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// RSS returns the node process's resident set size (VmRSS of
// /proc/<pid>/status), in bytes.
func (n *Node) RSS() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
