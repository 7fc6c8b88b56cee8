package p2p

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

const (
	// connectTimeout bounds one dial made by discovery or bootstrap.
	connectTimeout = 10 * time.Second
	// findTimeout bounds one DHT lookup of the rendezvous key.
	findTimeout = 30 * time.Second
	// maxReadvertise bounds the pause between two DHT advertisements, so a
	// restarted or rejoining network learns of us well before the record
	// expires.
	maxReadvertise = time.Hour
	// findLimit is how many peers one discovery round asks the DHT for.
	findLimit = 64
	// dialParallel is how many discovered peers are dialled at once.
	dialParallel = 8
	firstBackoff = time.Second
	// maxFindStretch bounds how far lookups that find no one new are spread
	// out: at most this many discovery intervals apart (see nextFind).
	maxFindStretch = 8
	// kickSpacing is the shortest pause before a round that a new
	// connection sets off (Host.connected).
	kickSpacing = 5 * time.Second
)

// goBG runs fn in a goroutine that Close waits for, unless the host is
// closed.
func (h *Host) goBG(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
}

// startDiscovery remembers the bootstrap peers and starts the loop that
// keeps them connected and, with the DHT, advertises this host and dials
// the other hosts it finds.
func (h *Host) startDiscovery(ctx context.Context, bootstrap []peer.AddrInfo) {
	for _, ai := range bootstrap {
		h.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		h.host.ConnManager().TagPeer(ai.ID, "bootstrap", 50)
	}
	if len(bootstrap) == 0 && h.dht == nil {
		return
	}
	h.goBG(func() { h.discoveryLoop(ctx, bootstrap) })
}

// discoveryLoop runs discovery rounds: one second apart while something is
// missing (a bootstrap peer, the DHT's first peers, an advertisement),
// doubling up to Config.DiscoveryInterval, and that interval apart once all
// is well. A round looks the rendezvous key up only when the pause nextFind
// gave has passed or the host has lost connections since the last lookup.
// While a known peer is unreached (one whose last connection closed, a
// bootstrap peer, or one the last lookup found and could not dial: a
// partition, or a peer gone), any new connection starts a round with a
// lookup, at most one per kickSpacing (connected): when a
// partition heals, the first connection across it, made by whichever
// node's timer fires first, sets off the others' lookups instead of each
// waiting up to a discovery interval of its own (an acceptance run took
// 65 s of its 90 to reconnect a healed region that way).
func (h *Host) discoveryLoop(ctx context.Context, bootstrap []peer.AddrInfo) {
	var rd *drouting.RoutingDiscovery
	if h.dht != nil {
		rd = drouting.NewRoutingDiscovery(h.dht)
	}
	var nextAdvertise, nextLookup, lastRound time.Time
	due := time.Now() // when timer fires
	lookupEvery := h.cfg.DiscoveryInterval
	lookupPeers := 0         // connected peers after the last lookup
	lookupUnreached := false // the last lookup found peers it could not dial
	backoff := firstBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-h.kick:
			// A connection came while a known peer was unreached: the
			// network may have healed, so look again soon (at most one
			// round per kickSpacing).
			nextLookup = time.Time{}
			at := lastRound.Add(kickSpacing)
			if now := time.Now(); at.Before(now) {
				at = now
			}
			if at.Before(due) {
				due = at
				timer.Reset(time.Until(at))
			}
			continue
		}
		lastRound = time.Now()
		ok := h.connectBootstrap(ctx, bootstrap)
		unreached := !ok
		if rd != nil {
			if len(h.dht.RoutingTable().ListPeers()) == 0 {
				ok = false
			} else {
				if !time.Now().Before(nextAdvertise) {
					ttl, err := rd.Advertise(ctx, h.cfg.rendezvous())
					if err != nil {
						h.log.Debug("dht advertise failed", "err", err)
						ok = false
					} else {
						nextAdvertise = time.Now().Add(min(ttl*7/8, maxReadvertise))
					}
				}
				if peers := len(h.host.Network().Peers()); !time.Now().Before(nextLookup) || peers < lookupPeers {
					dialed, failed := h.findPeers(ctx, rd)
					lookupEvery = nextFind(dialed, lookupEvery, h.cfg.DiscoveryInterval)
					nextLookup = time.Now().Add(lookupEvery)
					lookupPeers = len(h.host.Network().Peers())
					lookupUnreached = failed > 0
				}
			}
		}
		h.unreached.Store(unreached || lookupUnreached)
		var wait time.Duration
		wait, backoff = nextRound(ok, backoff, h.cfg.DiscoveryInterval)
		due = time.Now().Add(wait)
		timer.Reset(wait)
	}
}

// nextRound returns the wait before the next discovery round and the
// backoff after it: the interval when all is well, else the backoff,
// doubled each round up to the interval. (The backoff once doubled without
// bound: after ~34 rounds it overflowed to zero and an isolated node spun
// a core on discovery rounds.)
func nextRound(ok bool, backoff, interval time.Duration) (wait, next time.Duration) {
	if ok {
		return interval, firstBackoff
	}
	return min(backoff, interval), min(backoff*2, interval)
}

// nextFind returns the pause before the next DHT lookup of the rendezvous
// key, after a lookup that found unconnected peers not connected before it
// (dialled, whether the dial worked or not) and came pause apart: the
// discovery interval after one that found someone unconnected, else twice
// the last pause, up to maxFindStretch intervals. A peer found but not
// reachable keeps the pause short: it is usually on the far side of a
// partition, and the lookup after the heal must not wait minutes (an
// acceptance run once waited past 90 s for a region to come back because
// failed dials counted as "no one new"). A lookup asks
// a node's nearest peers for every provider of the key, so in a network
// where everyone is already connected each node's lookups cost every other
// node work, for nothing: a devnet's idle CPU grew with the square of its
// size. A node that joins still finds the others at once (its own first
// lookup), and the others then hear of it by its dial; discoveryLoop also
// looks up at once when the host has lost connections since the last
// lookup.
func nextFind(unconnected int, pause, interval time.Duration) time.Duration {
	if unconnected > 0 || pause <= 0 {
		return interval
	}
	return min(pause*2, maxFindStretch*interval)
}

// connectBootstrap dials the bootstrap peers not connected, and reports
// whether all of them are.
func (h *Host) connectBootstrap(ctx context.Context, bootstrap []peer.AddrInfo) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := true
	for _, ai := range bootstrap {
		if h.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.connect(ctx, ai); err != nil {
				h.log.Debug("bootstrap peer unreachable", "peer_id", ai.ID.String(), "err", err)
				mu.Lock()
				all = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return all
}

// findPeers looks up the rendezvous key and dials the hosts found, while
// this host has fewer connections than the low watermark. It returns how
// many it dialled, and how many of those dials failed.
func (h *Host) findPeers(ctx context.Context, rd *drouting.RoutingDiscovery) (dialed, failed int) {
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	found, err := rd.FindPeers(fctx, h.cfg.rendezvous(), discovery.Limit(max(findLimit, h.cfg.ConnLow)))
	if err != nil {
		h.log.Debug("dht find peers failed", "err", err)
		return 0, 0
	}
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for ai := range found {
		if ai.ID == h.host.ID() || len(ai.Addrs) == 0 ||
			h.host.Network().Connectedness(ai.ID) == network.Connected ||
			len(h.host.Network().Peers()) >= h.cfg.ConnLow {
			continue
		}
		sem <- struct{}{}
		dialed++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := h.connect(ctx, ai); err != nil {
				failures.Add(1)
				h.log.Debug("discovered peer unreachable", "peer_id", ai.ID.String(), "err", err)
				return
			}
			h.log.Debug("peer discovered", "peer_id", ai.ID.String(), "via", "dht")
		}()
	}
	wg.Wait()
	return dialed, int(failures.Load())
}

// connected is called for every new connection: it kicks the discovery
// loop while a known peer is unreached.
func (h *Host) connected() {
	if !h.unreached.Load() {
		return
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// connect dials ai within connectTimeout.
func (h *Host) connect(ctx context.Context, ai peer.AddrInfo) error {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := h.host.Connect(cctx, ai); err != nil {
		return fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	return nil
}

// mdnsNotifee dials the peers mDNS finds on the local network.
type mdnsNotifee func(peer.AddrInfo)

func (f mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { f(ai) }

func (h *Host) mdnsFound(ctx context.Context) mdnsNotifee {
	return func(ai peer.AddrInfo) {
		if ai.ID == h.host.ID() || h.host.Network().Connectedness(ai.ID) == network.Connected {
			return
		}
		h.goBG(func() {
			if err := h.connect(ctx, ai); err != nil {
				h.log.Debug("mdns peer unreachable", "peer_id", ai.ID.String(), "err", err)
				return
			}
			h.log.Debug("peer discovered", "peer_id", ai.ID.String(), "via", "mdns")
		})
	}
}
