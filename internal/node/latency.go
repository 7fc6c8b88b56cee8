package node

import (
	"context"
	"slices"
	"time"
)

// Round trips to the connected peers, for the latencies bids carry (the
// ensemble's rtt edges) and for `dms peers list`.
//
// The transport of a connection measures its round trip anyway: yamux pings
// its session every 30 s (TCP), QUIC estimates it from its acknowledgements
// (p2p.Host.ConnRTT). probeLatencies reads those every probeInterval, and
// pings with libp2p's ping protocol only the peers whose connections have
// no such measurement, at most maxPingsPerRound of them a round. It once
// pinged every connected peer every 10 s: a ping is a new stream (its
// negotiation, the echo, a reset) on both sides, so an idle node's work grew
// with its peers and a devnet's with the square of its size (see
// docs/PERFORMANCE.md, "Scale: a hundred real nodes").

const (
	// probeInterval is the pause between two rounds of probeLatencies.
	probeInterval = 10 * time.Second
	// maxPingsPerRound bounds the pings of one round, so that a node pings
	// at most one peer a second whatever its number of peers: with more
	// peers to ping than that, each is pinged less often.
	maxPingsPerRound = 10
	// rttSamples is how many measurements latencies keeps per peer.
	rttSamples = 5
)

// latencies returns the round trips to connected peers: the least of the
// last few measurements (a load spike on either side makes one slow, never
// the network faster), else the transport's current one.
func (n *Node) latencies() map[string]time.Duration {
	out := map[string]time.Duration{}
	connected := n.host.Connected()
	n.rttMu.Lock()
	defer n.rttMu.Unlock()
	for _, p := range connected {
		if w := n.rtts[p]; len(w) > 0 {
			out[p] = slices.Min(w)
		} else if d := n.host.ConnRTT(p); d > 0 {
			out[p] = d
		}
	}
	return out
}

func (n *Node) recordRTT(peer string, d time.Duration) {
	n.rttMu.Lock()
	defer n.rttMu.Unlock()
	if n.rtts == nil {
		n.rtts = map[string][]time.Duration{}
	}
	w := append(n.rtts[peer], d)
	if len(w) > rttSamples {
		w = w[len(w)-rttSamples:]
	}
	n.rtts[peer] = w
}

// probeLatencies records a round trip to every connected peer every
// probeInterval: the one its connection's transport measured, else one ping
// of ours, within maxPingsPerRound (see pingTurn).
func (n *Node) probeLatencies(ctx context.Context) {
	pinged := map[string]time.Time{} // when each peer was last pinged
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		connected := n.host.Connected()
		var unmeasured []string
		for _, p := range connected {
			if d := n.host.ConnRTT(p); d > 0 {
				n.recordRTT(p, d)
			} else {
				unmeasured = append(unmeasured, p)
			}
		}
		for _, p := range pingTurn(unmeasured, pinged, maxPingsPerRound) {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if d, err := n.host.Ping(pctx, p); err == nil {
				n.recordRTT(p, d)
			}
			cancel()
			pinged[p] = time.Now()
		}
		for p := range pinged { // forget peers gone
			if _, ok := slices.BinarySearch(connected, p); !ok {
				delete(pinged, p)
			}
		}
		n.rttMu.Lock()
		for p := range n.rtts {
			if _, ok := slices.BinarySearch(connected, p); !ok {
				delete(n.rtts, p)
			}
		}
		n.rttMu.Unlock()
		t.Reset(probeInterval)
	}
}

// pingTurn returns the peers to ping in this round: at most limit of peers,
// those never pinged (absent from last) first, then those pinged longest
// ago, ties in the order of peers. Every peer thus gets its turn: with p
// peers to ping, each is pinged every ⌈p/limit⌉ rounds.
func pingTurn(peers []string, last map[string]time.Time, limit int) []string {
	turn := slices.Clone(peers)
	slices.SortStableFunc(turn, func(a, b string) int {
		return last[a].Compare(last[b]) // the zero time (never) first
	})
	if len(turn) > limit {
		turn = turn[:max(limit, 0)]
	}
	return turn
}

// connectedPeers lists the peers the host is connected to, sorted by ID.
func (n *Node) connectedPeers() []string { return n.host.Connected() }
