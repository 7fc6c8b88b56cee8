package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-yamux/v5"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
)

// PeerInfo describes a peer this host knows of.
type PeerInfo struct {
	ID        string
	Addrs     []string // multiaddrs, without /p2p/<ID>
	Connected bool
	// Latency is the round trip to the peer: the one the connection's
	// transport measured (ConnRTT) while connected, else the peerstore's
	// moving average of pings; zero if none yet.
	Latency time.Duration
}

// Peers returns the peers this host is connected to or knows addresses of,
// sorted by ID.
func (h *Host) Peers() []PeerInfo {
	ps := h.host.Peerstore()
	ids := append(ps.PeersWithAddrs(), h.host.Network().Peers()...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		if id == h.host.ID() {
			continue
		}
		info := PeerInfo{
			ID:        id.String(),
			Connected: h.host.Network().Connectedness(id) == network.Connected,
		}
		if info.Connected {
			info.Latency = h.connRTT(id)
		}
		if info.Latency == 0 {
			info.Latency = ps.LatencyEWMA(id)
		}
		for _, a := range ps.Addrs(id) {
			info.Addrs = append(info.Addrs, a.String())
		}
		slices.Sort(info.Addrs)
		out = append(out, info)
	}
	return out
}

// Connected returns the IDs of the peers this host is connected to, sorted.
// Unlike Peers it reads no addresses, so a caller that only needs the IDs
// does not build the whole peer table.
func (h *Host) Connected() []string {
	ids := h.host.Network().Peers()
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if h.host.Network().Connectedness(id) == network.Connected {
			out = append(out, id.String())
		}
	}
	slices.Sort(out)
	return out
}

// ConnRTT returns the round trip to the peer with ID id as the transport of
// a connection to it measures it anyway, without a ping of ours: yamux's
// session ping on TCP and WebSocket connections (every 30 s, halved into
// the previous value) or QUIC's smoothed estimate from its acknowledgements.
// With several connections to the peer it is the least of theirs. It is
// zero when the host is not connected to the peer, the transport has not
// measured yet, or id is not a peer ID.
func (h *Host) ConnRTT(id string) time.Duration {
	pid, err := peer.Decode(id)
	if err != nil {
		return 0
	}
	return h.connRTT(pid)
}

func (h *Host) connRTT(id peer.ID) time.Duration {
	var best time.Duration
	for _, c := range h.host.Network().ConnsToPeer(id) {
		var d time.Duration
		var ys *yamux.Session
		var qc *quic.Conn
		switch {
		case c.As(&ys):
			d = ys.RTT()
		case c.As(&qc):
			d = qc.ConnectionStats().SmoothedRTT
		}
		if d > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	return best
}

// Connect dials the peer at addr, a multiaddr ending in /p2p/<peer ID>,
// and returns its peer ID.
func (h *Host) Connect(ctx context.Context, addr string) (string, error) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return "", fmt.Errorf("connect %q: %w: want a multiaddr ending in /p2p/<peer ID>: %w", addr, ErrBadAddress, err)
	}
	if ai.ID == h.host.ID() {
		return "", fmt.Errorf("connect %q: %w: that is this host", addr, ErrBadAddress)
	}
	if err := h.host.Connect(ctx, *ai); err != nil {
		return "", fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	return ai.ID.String(), nil
}

// Ping measures one round trip to the peer with ID id with the libp2p
// ping protocol, connecting first if needed.
func (h *Host) Ping(ctx context.Context, id string) (time.Duration, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return 0, fmt.Errorf("ping %q: %w: %w", id, ErrBadAddress, err)
	}
	if pid == h.host.ID() {
		return 0, fmt.Errorf("ping %s: %w: that is this host", id, ErrBadAddress)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case res, ok := <-ping.Ping(pctx, h.host, pid):
		if !ok {
			return 0, fmt.Errorf("ping %s: %w", id, errors.New("no answer"))
		}
		if res.Error != nil {
			return 0, fmt.Errorf("ping %s: %w", id, res.Error)
		}
		return res.RTT, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", id, ctx.Err())
	}
}

// Addrs returns the full multiaddrs (ending in /p2p/<peer ID>) this host
// can be dialled at.
func (h *Host) Addrs() []string {
	suffix, err := ma.NewComponent("p2p", h.host.ID().String())
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range h.host.Addrs() {
		out = append(out, a.Encapsulate(suffix.Multiaddr()).String())
	}
	return out
}
