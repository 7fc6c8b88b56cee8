package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
)

// ErrClosed is returned by the methods of a closed Host.
var ErrClosed = errors.New("p2p host closed")

// ErrBadAddress is wrapped by Connect and Ping errors about their argument
// (not a multiaddr with a peer ID, not a peer ID, this host itself), as
// opposed to failures to reach a well-named peer.
var ErrBadAddress = errors.New("bad peer address")

// Host is this node's libp2p host. It implements actor.Transport.
type Host struct {
	cfg    Config
	log    *slog.Logger
	host   host.Host
	dht    *dht.IpfsDHT // nil unless Config.DHT
	ps     *pubsub.PubSub
	mdns   mdns.Service // nil unless Config.MDNS
	gater  *gater
	proto  protocol.ID
	gossip *gossipPeers       // what gossipsub knows of each peer
	stop   context.CancelFunc // ends the background goroutines
	wg     sync.WaitGroup     // background goroutines and link writers

	mu           sync.Mutex
	closed       bool                                // guarded by mu
	handler      func(actor.Link)                    // guarded by mu
	links        map[peer.ID][]*link                 // open links per peer, oldest first; guarded by mu
	dialing      map[peer.ID]*dialCall               // links being opened; guarded by mu
	topics       map[string]*pubsub.Topic            // joined gossip topics by full name; guarded by mu
	subs         map[*atomic.Bool]context.CancelFunc // running subscriptions; guarded by mu
	working      map[peer.ID]struct{}                // peers protected by Protect; guarded by mu
	workingOrder []peer.ID                           // the same, oldest first; guarded by mu

	traffic traffic // bytes of every stream (traffic.go)

	// unreached is set when a peer's last connection closes, and by each
	// discovery round to whether it left a peer it knows of unconnected (a
	// bootstrap peer, or one the DHT lookup found and could not dial);
	// while it is set, a new connection kicks a discovery round early
	// (discovery.go).
	unreached atomic.Bool
	kick      chan struct{} // buffered 1
}

var (
	_ actor.Transport = (*Host)(nil)
	_ actor.Protector = (*Host)(nil)
)

// dialCall is one link being opened; concurrent Link calls for the same
// peer wait for it instead of opening streams of their own.
type dialCall struct {
	done chan struct{}
	l    *link
	err  error
}

// New starts a host with the node key and cfg: it listens, then dials the
// bootstrap peers and starts discovery in the background. ctx bounds the
// start only; Close stops the host.
func New(ctx context.Context, cfg Config, key *identity.Key, logger *slog.Logger) (*Host, error) {
	if key == nil {
		return nil, errors.New("p2p: no node key")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	p, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("p2p config: %w", err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(key.Private())
	if err != nil {
		return nil, fmt.Errorf("p2p: node key: %w", err)
	}
	h := &Host{
		cfg:     cfg,
		log:     logger.With("component", "p2p"),
		gossip:  newGossipPeers(),
		proto:   cfg.actorProtocol(),
		links:   map[peer.ID][]*link{},
		dialing: map[peer.ID]*dialCall{},
		topics:  map[string]*pubsub.Topic{},
		subs:    map[*atomic.Bool]context.CancelFunc{},
		working: map[peer.ID]struct{}{},
		kick:    make(chan struct{}, 1),
	}
	rm, inbound, err := newResourceManager(cfg)
	if err != nil {
		return nil, err
	}
	h.gater = newGater(cfg.MaxConnsPerPeer, inbound-cfg.inboundReserve(inbound))
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrs(p.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(h.gater),
		libp2p.Ping(true),
		libp2p.UserAgent("dms"),
		libp2p.BandwidthReporter(&h.traffic),
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.Relay {
		opts = append(opts, libp2p.EnableRelay())
		if len(p.bootstrap) > 0 {
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(p.bootstrap))
		}
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService(), libp2p.EnableNATService())
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.DHT {
		opts = append(opts, libp2p.Routing(func(hh host.Host) (routing.PeerRouting, error) {
			d, err := dht.New(hh,
				dht.ProtocolPrefix(protocol.ID(cfg.ProtocolPrefix)),
				dht.Mode(dht.ModeAutoServer),
				dht.BootstrapPeers(p.bootstrap...),
			)
			if err != nil {
				return nil, fmt.Errorf("dht: %w", err)
			}
			h.dht = d
			return d, nil
		}))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		if h.dht != nil {
			_ = h.dht.Close()
		}
		_ = cm.Close()
		_ = rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	h.host = lh
	h.gater.attach(lh.Network(), lh.ConnManager())
	for _, ai := range p.bootstrap {
		lh.ConnManager().Protect(ai.ID, protectBootstrap)
	}

	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	fail := func(err error) (*Host, error) {
		stop()
		if h.dht != nil {
			_ = h.dht.Close()
		}
		_ = lh.Close()
		return nil, err
	}
	h.ps, err = pubsub.NewGossipSub(life, lh,
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(true),
		pubsub.WithMaxMessageSize(cfg.MaxFrame+gossipOverhead),
		pubsub.WithLogger(h.log.With("subsystem", "gossipsub")),
		pubsub.WithRawTracer(gossipTracer{h.gossip}),
	)
	if err != nil {
		return fail(fmt.Errorf("gossipsub: %w", err))
	}
	lh.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(network.Network, network.Conn) { h.connected() },
		DisconnectedF: func(_ network.Network, c network.Conn) { h.disconnected(c) },
	})
	lh.SetStreamHandler(h.proto, h.handleStream)
	if cfg.MDNS {
		h.mdns = mdns.NewMdnsService(lh, cfg.mdnsService(), h.mdnsFound(life))
		if err := h.mdns.Start(); err != nil {
			return fail(fmt.Errorf("mdns: %w", err))
		}
	}
	h.startDiscovery(life, p.bootstrap)
	h.log.Info("p2p host started", "peer_id", lh.ID().String(), "addrs", h.Addrs())
	return h, nil
}

// gossipOverhead is room for the gossipsub envelope around a frame
// (publisher, sequence number, signature, key, topic).
const gossipOverhead = 16 << 10

// Close closes every link (flushing what they queued, briefly), stops
// discovery, gossip and every goroutine the host started, and closes the
// libp2p host.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var links []*link
	for _, ls := range h.links {
		links = append(links, ls...)
	}
	for _, stop := range h.subs {
		stop()
	}
	h.mu.Unlock()

	h.host.RemoveStreamHandler(h.proto)
	for _, l := range links {
		_ = l.Close()
	}
	h.stop()
	h.wg.Wait()
	var errs []error
	if h.mdns != nil {
		errs = append(errs, h.mdns.Close())
	}
	if h.dht != nil {
		errs = append(errs, h.dht.Close())
	}
	errs = append(errs, h.host.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close p2p host: %w", err)
	}
	return nil
}

// Self returns this host's peer ID.
func (h *Host) Self() string { return h.host.ID().String() }

// ID returns this host's peer ID (the same as Self).
func (h *Host) ID() string { return h.host.ID().String() }

// Libp2p returns the libp2p host, for protocols of other packages (the
// subnet data path registers its stream handler on it).
func (h *Host) Libp2p() host.Host { return h.host }

// SetLinkHandler registers the function called with every link a peer
// opens. Links opened before it is set are refused.
func (h *Host) SetLinkHandler(fn func(actor.Link)) {
	h.mu.Lock()
	h.handler = fn
	h.mu.Unlock()
}

// Link returns the open link to the peer with ID id, whichever side
// opened it, or opens one (connecting first, finding the peer's addresses
// in the DHT when they are not known). Concurrent calls for one peer open
// at most one stream.
func (h *Host) Link(ctx context.Context, id string) (actor.Link, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("link to %q: bad peer ID: %w", id, err)
	}
	if pid == h.host.ID() {
		return nil, fmt.Errorf("link to %s: that is this host", id)
	}
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		if l := h.liveLinkLocked(pid); l != nil {
			h.mu.Unlock()
			return l, nil
		}
		if c := h.dialing[pid]; c != nil {
			h.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("link to %s: %w", id, ctx.Err())
			}
			if c.err == nil {
				return c.l, nil
			}
			if ctx.Err() == nil && (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
				continue // the caller that dialled gave up; try with our context
			}
			return nil, c.err
		}
		c := &dialCall{done: make(chan struct{})}
		h.dialing[pid] = c
		h.mu.Unlock()

		c.l, c.err = h.dial(ctx, pid)
		h.mu.Lock()
		delete(h.dialing, pid)
		h.mu.Unlock()
		close(c.done)
		return c.l, c.err
	}
}

// dial opens a stream to pid and makes it a link.
func (h *Host) dial(ctx context.Context, pid peer.ID) (*link, error) {
	s, err := h.host.NewStream(ctx, pid, h.proto)
	if err != nil {
		return nil, fmt.Errorf("link to %s: %w", pid, err)
	}
	l, err := h.addLink(s)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	h.log.Debug("link opened", "peer_id", l.peerID, "direction", "out")
	return l, nil
}

// handleStream takes a link a peer opened.
func (h *Host) handleStream(s network.Stream) {
	h.mu.Lock()
	handler := h.handler
	h.mu.Unlock()
	if handler == nil {
		h.log.Debug("link refused: no handler yet", "peer_id", s.Conn().RemotePeer().String())
		_ = s.Reset()
		return
	}
	l, err := h.addLink(s)
	if err != nil {
		_ = s.Reset()
		return
	}
	h.log.Debug("link opened", "peer_id", l.peerID, "direction", "in")
	handler(l)
}

// addLink makes s a link, registers it and starts its writer.
func (h *Host) addLink(s network.Stream) (*link, error) {
	l := newLink(s, h.cfg.MaxFrame, h.cfg.SendQueue, h.forget)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	first := len(h.links[l.peer]) == 0
	h.links[l.peer] = append(h.links[l.peer], l)
	h.wg.Add(1)
	h.mu.Unlock()
	if first {
		h.host.ConnManager().TagPeer(l.peer, "actor-link", 100)
	}
	go func() {
		defer h.wg.Done()
		l.writeLoop()
	}()
	return l, nil
}

// forget removes a closed link from the host.
func (h *Host) forget(l *link) {
	h.mu.Lock()
	ls := h.links[l.peer]
	for i, x := range ls {
		if x == l {
			ls = append(ls[:i:i], ls[i+1:]...)
			break
		}
	}
	last := len(ls) == 0
	if last {
		delete(h.links, l.peer)
	} else {
		h.links[l.peer] = ls
	}
	h.mu.Unlock()
	if last {
		h.host.ConnManager().UntagPeer(l.peer, "actor-link")
	}
	h.log.Debug("link closed", "peer_id", l.peerID)
}

// liveLinkLocked returns the oldest open link to pid, or nil.
func (h *Host) liveLinkLocked(pid peer.ID) *link {
	for _, l := range h.links[pid] {
		if !l.closed() {
			return l
		}
	}
	return nil
}

// disconnected fails the links that ran over c, so that the next Link call
// opens a new one instead of returning a dead link.
func (h *Host) disconnected(c network.Conn) {
	h.mu.Lock()
	var dead []*link
	for _, l := range h.links[c.RemotePeer()] {
		if l.s.Conn() == c {
			dead = append(dead, l)
		}
	}
	h.mu.Unlock()
	for _, l := range dead {
		l.fail(errors.New("connection closed"))
	}
	if h.host.Network().Connectedness(c.RemotePeer()) != network.Connected {
		h.unreached.Store(true) // a peer lost: the next connection kicks discovery
	}

}
