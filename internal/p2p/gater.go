package p2p

import (
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from blocked peers. The resource
// manager bounds what any one peer may use; the gater lets the node shut
// out a peer that misbehaves all the same.
type gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]struct{} // guarded by mu
}

func newGater() *gater { return &gater{blocked: map[peer.ID]struct{}{}} }

func (g *gater) isBlocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.blocked[p]
	return ok
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return !g.isBlocked(p) }

func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBlocked(p) }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.isBlocked(p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

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
