package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

func TestPingTurn(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name  string
		peers []string
		last  map[string]time.Time
		limit int
		want  []string
	}{
		{"none", nil, nil, 10, []string{}},
		{"fewer than the limit: all", []string{"a", "b", "c"}, nil, 10, []string{"a", "b", "c"}},
		{"never pinged first", []string{"a", "b", "c"}, map[string]time.Time{"a": at(1), "c": at(2)}, 2, []string{"b", "a"}},
		{"longest ago first", []string{"a", "b", "c", "d"}, map[string]time.Time{"a": at(4), "b": at(3), "c": at(2), "d": at(1)}, 3, []string{"d", "c", "b"}},
		{"ties keep the order", []string{"b", "a", "c"}, map[string]time.Time{"a": at(1), "b": at(1), "c": at(1)}, 2, []string{"b", "a"}},
		{"zero limit", []string{"a"}, nil, 0, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pingTurn(tt.peers, tt.last, tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("pingTurn(%v, %v, %d) = %v, want %v", tt.peers, tt.last, tt.limit, got, tt.want)
			}
		})
	}
}

// TestPingTurnRoundRobin: with more peers to ping than a round allows, each
// is pinged once every ⌈peers/limit⌉ rounds, never twice before another
// has had its turn.
func TestPingTurnRoundRobin(t *testing.T) {
	peers := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6"}
	last := map[string]time.Time{}
	count := map[string]int{}
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	for round := range 6 { // 6 rounds of 3: 18 pings, 7 peers
		for _, p := range pingTurn(peers, last, 3) {
			now = now.Add(time.Millisecond)
			last[p] = now
			count[p]++
		}
		lo, hi := len(peers), 0
		for _, p := range peers {
			lo, hi = min(lo, count[p]), max(hi, count[p])
		}
		if hi-lo > 1 {
			t.Fatalf("after round %d: pings per peer %v, want them within one of each other", round, count)
		}
	}
}

// TestLatenciesWithoutPings: a connected peer's round trip comes from the
// connection's own measurement (yamux on TCP), shows in the peer list and
// in latencies, and the probe records it.
func TestLatenciesWithoutPings(t *testing.T) {
	a, b := newTestNode(t, nil), newTestNode(t, nil)
	a.connect(t, b)
	bID := b.host.ID()
	poll.Eventually(t, 10*time.Second, "the connection's own round trip", func() bool { return a.host.ConnRTT(bID) > 0 })
	var listed time.Duration
	for _, p := range a.host.Peers() {
		if p.ID == bID {
			listed = p.Latency
		}
	}
	if listed <= 0 {
		t.Errorf("Peers: latency to %s = %s, want > 0", bID, listed)
	}
	if d := a.latencies()[bID]; d <= 0 {
		t.Errorf("latencies()[%s] = %s, want > 0", bID, d)
	}
	if got := a.host.Connected(); !slices.Equal(got, []string{bID}) {
		t.Errorf("Connected() = %v, want [%s]", got, bID)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.probeLatencies(ctx) }()
	poll.Eventually(t, 10*time.Second, "a round trip recorded by probeLatencies", func() bool {
		a.rttMu.Lock()
		defer a.rttMu.Unlock()
		return len(a.rtts[bID]) > 0
	})
	cancel()
	<-done
}
