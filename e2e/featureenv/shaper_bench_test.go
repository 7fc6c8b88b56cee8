//go:build linux

package featureenv

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkShaperRoundTrip measures what the shaper adds to a UDP round
// trip between two regions (netns pairs, 20 ms shaped): the round trip
// less 20 ms, p50, p99 and max, and the packets it passed late. Run it
// beside a load (busy loops on every core) to see the shaper keep up or
// not; as root.
func BenchmarkShaperRoundTrip(b *testing.B) {
	p := newNSPair(b)
	const rtt = 20 * time.Millisecond
	s := shapedPair(b, p, rtt, nil, p.addrA, p.addrB)
	srv := udpIn(b, p.b, p.addrB)
	go echo(srv)
	cli := udpIn(b, p.a, p.addrA)
	extra := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := roundTrip(cli, srv.LocalAddr(), 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		extra = append(extra, d-rtt)
	}
	b.StopTimer()
	slices.Sort(extra)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(extra[len(extra)/2]), "extra-p50-ms")
	b.ReportMetric(ms(extra[len(extra)*99/100]), "extra-p99-ms")
	b.ReportMetric(ms(extra[len(extra)-1]), "extra-max-ms")
	ta, tb := s.traffic(p.addrA), s.traffic(p.addrB)
	b.ReportMetric(float64(ta.Late+tb.Late)/float64(ta.Delayed+tb.Delayed), "late/pkt")
}
