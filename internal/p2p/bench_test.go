package p2p

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dmsnet/dms/internal/actor"
)

// The messaging anchors of docs/PERFORMANCE.md ("Messaging anchors"); run
// them with bench/run-messaging.sh.

const rawEchoProtocol = "/dms-bench/echo/1.0.0"

var transports = []string{"tcp", "quic-v1"}

// measureRTT runs roundTrip once untimed, then b.N times timed, and
// reports the latency percentiles.
func measureRTT(b *testing.B, roundTrip func()) {
	roundTrip()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		roundTrip()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the p50 and p99 of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p int) float64 {
		i := (len(lat)*p + 99) / 100
		return float64(lat[max(0, min(len(lat)-1, i-1))].Nanoseconds())
	}
	b.ReportMetric(at(50), "p50-ns")
	b.ReportMetric(at(99), "p99-ns")
}

// BenchmarkRawStreamRTT is a 64-byte round trip on an existing libp2p
// stream (Noise+yamux over TCP, or QUIC), with an echo handler: the floor
// under any request/response over libp2p.
func BenchmarkRawStreamRTT(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			a, c := newHost(b, testConfig()), newHost(b, testConfig())
			a.host.SetStreamHandler(rawEchoProtocol, func(s network.Stream) {
				defer s.Close()
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			})
			introduce(b, c, a, transport)
			ctx := testCtx(b, time.Minute)
			s, err := c.host.NewStream(ctx, a.host.ID(), rawEchoProtocol)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Reset()
			msg, reply := make([]byte, 64), make([]byte, 64)
			roundTrip := func() {
				if _, err := s.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, reply); err != nil {
					b.Fatal(err)
				}
			}
			measureRTT(b, roundTrip) // the first, untimed, negotiates the stream
		})
	}
}

// BenchmarkLinkRTT is a 64-byte round trip over an actor link (queue,
// writer goroutine, framing) to a peer whose link handler echoes.
func BenchmarkLinkRTT(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			a, c := newHost(b, testConfig()), newHost(b, testConfig())
			echo(a)
			introduce(b, c, a, transport)
			ctx := testCtx(b, time.Minute)
			l, err := c.Link(ctx, a.Self())
			if err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, 64)
			roundTrip := func() {
				if err := l.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			measureRTT(b, roundTrip)
		})
	}
}

// BenchmarkLinkThroughput sends 100-byte frames one way over a link as
// fast as the link takes them; the time runs until the last one arrives.
func BenchmarkLinkThroughput(b *testing.B) {
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			a, c := newHost(b, testConfig()), newHost(b, testConfig())
			got := make(chan int, 1)
			a.SetLinkHandler(func(l actor.Link) {
				n := 0
				for {
					if _, err := l.Recv(); err != nil {
						got <- n
						return
					}
					if n++; n == b.N+1 {
						got <- n
					}
				}
			})
			introduce(b, c, a, transport)
			ctx := testCtx(b, 5*time.Minute)
			l, err := c.Link(ctx, a.Self())
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 100)
			if err := l.Send(ctx, frame); err != nil { // opens the stream at a
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := l.Send(ctx, frame); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-got; n != b.N+1 {
				b.Fatalf("%d frames arrived, want %d", n, b.N+1)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
