package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/pbnjay/memory"
)

// Per-peer limits of the actor protocol. One link per pair of peers is the
// rule; a few more cover both sides dialling at once and a link being
// re-established while the old stream is torn down. A peer opening more is
// refused by the resource manager.
const (
	actorStreamsInPerPeer  = 4
	actorStreamsOutPerPeer = 4
	// actorMemoryPerPeer lets yamux grow a link's receive window to its
	// 16 MiB maximum on a few streams.
	actorMemoryPerPeer = 64 << 20
	// defaultMaxFDs is the resource manager's file descriptor budget when
	// only MaxMemory is given.
	defaultMaxFDs = 512
)

// newResourceManager builds libp2p's resource manager from the default
// scaling limits, the bundled services' limits and our actor protocol's,
// scaled to the memory and file descriptors given (or to the machine when
// they are zero), with c's inbound and per-IP connection limits. It
// returns how many inbound connections it admits.
func newResourceManager(c Config) (_ network.ResourceManager, inbound int, _ error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	proto := c.actorProtocol()
	limits.AddProtocolLimit(proto,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 128 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 128 << 20})
	limits.AddProtocolPeerLimit(proto,
		rcmgr.BaseLimit{StreamsInbound: actorStreamsInPerPeer, StreamsOutbound: actorStreamsOutPerPeer,
			Streams: actorStreamsInPerPeer + actorStreamsOutPerPeer, Memory: actorMemoryPerPeer},
		rcmgr.BaseLimitIncrease{})
	var concrete rcmgr.ConcreteLimitConfig
	if c.MaxMemory == 0 && c.MaxFDs == 0 {
		concrete = limits.AutoScale()
	} else {
		mem, fds := c.MaxMemory, c.MaxFDs
		if mem == 0 {
			mem = int64(memory.TotalMemory() / 8)
		}
		if fds == 0 {
			fds = defaultMaxFDs
		}
		concrete = limits.Scale(mem, fds)
	}
	part := concrete.ToPartialLimitConfig()
	if c.MaxInboundConns > 0 {
		part.System.ConnsInbound = rcmgr.LimitVal(c.MaxInboundConns)
		if int(part.System.Conns) < c.MaxInboundConns {
			part.System.Conns = rcmgr.LimitVal(c.MaxInboundConns)
		}
	}
	concrete = part.Build(concrete)
	inbound = int(part.System.ConnsInbound)

	n := c.MaxConnsPerIP
	opts := []rcmgr.Option{rcmgr.WithLimitPerSubnet(
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: n}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: n}, {PrefixLength: 48, ConnCount: 8 * n}})}
	if c.LimitLoopback {
		// libp2p exempts 127.0.0.0/8 and ::1 with a prefix limit of
		// its own; no prefix limits leaves the per-subnet limits above.
		opts = append(opts, rcmgr.WithNetworkPrefixLimit([]rcmgr.NetworkPrefixLimit{}, []rcmgr.NetworkPrefixLimit{}))
	}
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete), opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("resource manager: %w", err)
	}
	return mgr, inbound, nil
}

// inboundReserve is the reserve of c for a host holding at most inbound
// inbound connections.
func (c Config) inboundReserve(inbound int) int {
	if c.InboundReserve > 0 {
		return min(c.InboundReserve, inbound-1)
	}
	return min(max(inbound/8, minInboundReserve), inbound/2)
}
