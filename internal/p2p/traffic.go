package p2p

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// traffic counts the bytes of every libp2p stream, all protocols and peers
// together (libp2p's bandwidth reporter, without its per-peer and
// per-protocol meters): two atomic adds per stream read or write.
type traffic struct {
	in, out atomic.Uint64
}

var _ metrics.Reporter = (*traffic)(nil)

func (t *traffic) LogSentMessage(n int64) {
	if n > 0 {
		t.out.Add(uint64(n))
	}
}

func (t *traffic) LogRecvMessage(n int64) {
	if n > 0 {
		t.in.Add(uint64(n))
	}
}

func (t *traffic) LogSentMessageStream(int64, protocol.ID, peer.ID) {}
func (t *traffic) LogRecvMessageStream(int64, protocol.ID, peer.ID) {}
func (t *traffic) GetBandwidthForPeer(peer.ID) metrics.Stats        { return metrics.Stats{} }
func (t *traffic) GetBandwidthForProtocol(protocol.ID) metrics.Stats {
	return metrics.Stats{}
}

func (t *traffic) GetBandwidthTotals() metrics.Stats {
	return metrics.Stats{TotalIn: int64(t.in.Load()), TotalOut: int64(t.out.Load())}
}
func (t *traffic) GetBandwidthByPeer() map[peer.ID]metrics.Stats         { return nil }
func (t *traffic) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats { return nil }
func (t *traffic) Reset()                                                {}
func (t *traffic) TrimIdle(time.Time)                                    {}

// Traffic returns the bytes read from and written to this host's libp2p
// streams since it started (every protocol: actor links, gossip, DHT,
// identify…; the transports' own framing and handshakes not included).
func (h *Host) Traffic() (in, out uint64) { return h.traffic.in.Load(), h.traffic.out.Load() }
