package p2p

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from blocked peers, and inbound
// connections over the host's limits: more than MaxConnsPerPeer from one
// peer, or, from a peer that is not protected, more than the inbound
// limit less the reserve kept for protected peers. The resource manager
// bounds what any one peer, address or subnet may use; the gater keeps
// room for the peers the node trusts or works with, and lets the node shut
// out a peer that misbehaves all the same.
type gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]struct{} // guarded by mu

	perPeer     int // inbound connections from one peer
	unprotected int // inbound connections held before only protected peers are admitted

	// admit serializes the inbound checks, so that concurrent handshakes
	// do not all pass on the same count.
	admit sync.Mutex
	net   atomic.Pointer[network.Network]     // set once the host runs
	cm    atomic.Pointer[connmgr.ConnManager] // set once the host runs
}

func newGater(perPeer, unprotected int) *gater {
	return &gater{blocked: map[peer.ID]struct{}{}, perPeer: perPeer, unprotected: unprotected}
}

// attach gives the gater the host's network and connection manager.
func (g *gater) attach(n network.Network, cm connmgr.ConnManager) {
	g.net.Store(&n)
	g.cm.Store(&cm)
}

func (g *gater) isBlocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.blocked[p]
	return ok
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return !g.isBlocked(p) }

func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBlocked(p) }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if g.isBlocked(p) {
		return false
	}
	if dir != network.DirInbound {
		return true
	}
	return g.admitInbound(p)
}

// admitInbound reports whether an inbound connection from p fits the
// limits (it is not yet among the network's connections).
func (g *gater) admitInbound(p peer.ID) bool {
	np, cp := g.net.Load(), g.cm.Load()
	if np == nil || cp == nil {
		return true
	}
	n, cm := *np, *cp
	g.admit.Lock()
	defer g.admit.Unlock()
	fromPeer := 0
	for _, c := range n.ConnsToPeer(p) {
		if c.Stat().Direction == network.DirInbound {
			fromPeer++
		}
	}
	if fromPeer >= g.perPeer {
		return false
	}
	if cm.IsProtected(p, "") {
		return true
	}
	inbound := 0
	for _, c := range n.Conns() {
		if c.Stat().Direction == network.DirInbound {
			inbound++
		}
	}
	return inbound < g.unprotected
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// protectTag marks the peers the host keeps room for (connmgr.Protect).
const (
	protectBootstrap = "dms-bootstrap"
	protectWorking   = "dms-working"
	// maxWorkingPeers bounds the peers protected by Protect; beyond it the
	// one protected longest ago is no longer.
	maxWorkingPeers = 1024
)

// Protect keeps room for the peer with ID id: its inbound connections are
// admitted from the reserve when the host is otherwise full, and the
// connection manager does not trim them. The actor runtime calls it for
// the peers it works with (see actor.Protector); the host remembers the
// last 1024 (bootstrap peers are protected besides).
func (h *Host) Protect(id string) error {
	pid, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("protect %q: bad peer ID: %w", id, err)
	}
	h.mu.Lock()
	if _, ok := h.working[pid]; ok {
		h.mu.Unlock()
		return nil
	}
	var evict peer.ID
	if len(h.workingOrder) >= maxWorkingPeers {
		evict = h.workingOrder[0]
		h.workingOrder = h.workingOrder[1:]
		delete(h.working, evict)
	}
	h.working[pid] = struct{}{}
	h.workingOrder = append(h.workingOrder, pid)
	h.mu.Unlock()
	cm := h.host.ConnManager()
	if evict != "" {
		cm.Unprotect(evict, protectWorking)
	}
	cm.Protect(pid, protectWorking)
	return nil
}

// Block refuses every connection to and from the peer with ID id and
// closes the open ones, until Unblock.
func (h *Host) Block(id string) error {
	pid, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("block %q: bad peer ID: %w", id, err)
	}
	h.gater.mu.Lock()
	h.gater.blocked[pid] = struct{}{}
	h.gater.mu.Unlock()
	if err := h.host.Network().ClosePeer(pid); err != nil {
		return fmt.Errorf("block %s: close connections: %w", id, err)
	}
	return nil
}

// Unblock lets the peer with ID id connect again.
func (h *Host) Unblock(id string) error {
	pid, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("unblock %q: bad peer ID: %w", id, err)
	}
	h.gater.mu.Lock()
	delete(h.gater.blocked, pid)
	h.gater.mu.Unlock()
	return nil
}
