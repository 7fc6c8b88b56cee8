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
// they are zero).
func newResourceManager(c Config) (network.ResourceManager, error) {
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
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return mgr, nil
}
