package router

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// The data path's benchmarks (issue 16; anchors in
// shared/reference/next-wave-anchors.md section 2): run them with
//
//	go test -run XXX -bench . -benchtime 2s ./internal/subnet/router/
//
// BenchmarkForward/raw-stream is the anchor of BenchmarkForward/router:
// the same framed bytes pumped over a bare libp2p stream between the same
// two hosts, the ceiling of any stream-based data path.

// fullPacket is a UDP packet of the subnet's MTU from a (.2) to b (.3).
func fullPacket() []byte {
	return subnettest.UDP(a2, a3, 1000, 2000, make([]byte, subnet.MTU-28))
}

// window is how many packets a benchmark keeps in flight: below the
// router's queue, so that nothing is dropped.
const window = 512

// pump sends n packets with send, keeping at most window in flight: sem
// holds one token per packet not yet received.
func pump(b *testing.B, ctx context.Context, sem chan struct{}, n int, send func() error, idle func() error) {
	for range n {
		select {
		case sem <- struct{}{}:
		default:
			if idle != nil {
				if err := idle(); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				b.Fatal("packets lost: the window never opened")
			}
		}
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	if idle != nil {
		if err := idle(); err != nil {
			b.Fatal(err)
		}
	}
	for range window { // wait for all to arrive
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			b.Fatal("packets lost")
		}
	}
	for range window {
		<-sem
	}
}

func reportRate(b *testing.B, size int) {
	b.ReportMetric(float64(b.N)*float64(size)*8/b.Elapsed().Seconds()/1e6, "Mbit/s")
}

// BenchmarkForward: one-way packets of the MTU from a device on one host
// to a device on another, over real libp2p hosts on loopback TCP.
func BenchmarkForward(b *testing.B) {
	pkt := fullPacket()
	b.Run("raw-stream", func(b *testing.B) {
		A, B := newNode(b, nil), newNode(b, nil)
		connect(b, A, B)
		ctx := testCtx(b, 5*time.Minute)
		sem := make(chan struct{}, window)
		const proto = "/dms-bench/raw/1"
		B.h.SetStreamHandler(proto, func(s network.Stream) {
			defer s.Reset()
			br := bufio.NewReaderSize(s, bufSize)
			buf := make([]byte, 1<<16)
			for {
				h, err := br.Peek(2)
				if err != nil {
					return
				}
				n := int(h[0])<<8 | int(h[1])
				_, _ = br.Discard(2)
				if _, err := io.ReadFull(br, buf[:n]); err != nil {
					return
				}
				<-sem
			}
		})
		s, err := A.h.NewStream(ctx, B.h.ID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Reset()
		bw := bufio.NewWriterSize(s, bufSize)
		send := func() error { return writeFrame(bw, pkt) }
		pump(b, ctx, sem, 4*window, send, bw.Flush)
		b.SetBytes(int64(len(pkt)))
		b.ReportAllocs()
		b.ResetTimer()
		pump(b, ctx, sem, b.N, send, bw.Flush)
		b.StopTimer()
		reportRate(b, len(pkt))
	})
	b.Run("router", func(b *testing.B) {
		A, B := newNode(b, nil), newNode(b, nil)
		connect(b, A, B)
		tb := table(b, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
		A.r.SetTable(tb)
		B.r.SetTable(tb)
		da, db := subnettest.NewDevice(64), subnettest.NewDevice(64)
		if err := A.r.Attach("dep", "a", da); err != nil {
			b.Fatal(err)
		}
		if err := B.r.Attach("dep", "b", db); err != nil {
			b.Fatal(err)
		}
		ctx := testCtx(b, 5*time.Minute)
		sem := make(chan struct{}, window)
		go func() {
			for {
				p, err := db.Recv(ctx)
				if err != nil {
					return
				}
				db.Release(p)
				<-sem
			}
		}()
		send := func() error { return da.Inject(pkt) }
		pump(b, ctx, sem, 4*window, send, nil)
		b.SetBytes(int64(len(pkt)))
		b.ReportAllocs()
		b.ResetTimer()
		pump(b, ctx, sem, b.N, send, nil)
		b.StopTimer()
		reportRate(b, len(pkt))
		if s := A.r.Stats(); s.Dropped["queue-full"] != 0 {
			b.Errorf("A dropped %v", s.Dropped)
		}
	})
}

// BenchmarkClassify is the per-packet decision alone.
func BenchmarkClassify(b *testing.B) {
	o := newOffline(b)
	v, a := o.d.view.Load(), o.d.atts["a"]
	for _, bc := range []struct {
		name string
		pkt  []byte
		peer bool // as read from p1's stream
		want verdict
	}{
		{"device-to-peer", fullPacket(), false, verdictPeer},
		{"device-to-local", subnettest.UDP(a2, a4, 1, 2, make([]byte, 1000)), false, verdictLocal},
		{"device-spoofed", subnettest.UDP(a3, a4, 1, 2, make([]byte, 1000)), false, verdictDrop},
		{"peer-to-device", subnettest.UDP(a3, a2, 1, 2, make([]byte, 1000)), true, verdictLocal},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var got verdict
			for b.Loop() {
				if bc.peer {
					_, got, _, _ = v.fromPeer(o.p1, bc.pkt)
				} else {
					_, got, _, _ = v.fromDevice(a, bc.pkt)
				}
			}
			if got != bc.want {
				b.Fatalf("verdict %d, want %d", got, bc.want)
			}
		})
	}
}

// TestZeroAllocs: the inbound path (frames read from a stream, checked,
// written to a device in batches) and the device path to a local
// allocation allocate nothing per packet in steady state.
func TestZeroAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocations are not counted under -race or -short")
	}
	o := newOffline(t)
	const n = 1000
	var pkts [][]byte
	for range n {
		pkts = append(pkts, subnettest.UDP(a3, a2, 1, 2, make([]byte, 1000)))
	}
	data := frames(pkts...)
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, bufSize)
	ctx := context.Background()
	run := func() {
		rd.Reset(data)
		br.Reset(rd)
		o.r.readFrames(o.d, o.p1, br)
		for range n {
			p, err := o.dev.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			o.dev.Release(p)
		}
	}
	if per := testing.AllocsPerRun(20, run) / n; per > 0.01 {
		t.Errorf("inbound: %.3f allocations per packet, want 0", per)
	}
	local := subnettest.UDP(a2, a4, 1, 2, make([]byte, 1000))
	run = func() {
		for range n {
			if err := o.dev.Inject(local); err != nil {
				t.Fatal(err)
			}
			p, err := o.local.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			o.local.Release(p)
		}
	}
	if per := testing.AllocsPerRun(20, run) / n; per > 0.01 {
		t.Errorf("device to local: %.3f allocations per packet, want 0", per)
	}
}

// BenchmarkDatagramRTT: one packet at a time from a device on one host to
// a device on another over the datagram path (real libp2p hosts, UDP on
// loopback), answered from there: the router's part of a ping's round
// trip, with its p50 and p99 (µs). The memory devices hand each packet
// between goroutines (a TUN's reader is woken by the kernel instead), so
// this is an upper bound of the router's own wait. Its anchor,
// raw-udp, is the same ping-pong of a datagram of the same size between
// two bare UDP sockets, each read by a goroutine that answers.
func BenchmarkDatagramRTT(b *testing.B) {
	b.Run("raw-udp", func(b *testing.B) {
		ca, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer ca.Close()
		cb, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer cb.Close()
		go func() { // the echo
			buf := make([]byte, 2048)
			for {
				n, from, err := cb.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if _, err := cb.WriteToUDPAddrPort(buf[:n], from); err != nil {
					return
				}
			}
		}()
		to := cb.LocalAddr().(*net.UDPAddr).AddrPort()
		pkt := make([]byte, 84+dgOverhead) // a ping's size, sealed
		buf := make([]byte, 2048)
		rtts := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := ca.WriteToUDPAddrPort(pkt, to); err != nil {
				b.Fatal(err)
			}
			if _, _, err := ca.ReadFromUDPAddrPort(buf); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(t0))
		}
		reportRTT(b, rtts)
	})
	b.Run("router", func(b *testing.B) {
		A, B := newDgNode(b), newDgNode(b)
		connect(b, A, B)
		tb := table(b, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
		A.r.SetTable(tb)
		B.r.SetTable(tb)
		da, db := attach(b, A, "dep", "a"), attach(b, B, "dep", "b")
		req, rep := subnettest.ICMPEcho(a2, a3, 1, 1), subnettest.ICMPEcho(a3, a2, 1, 1)
		inject(b, da, req) // the first takes the stream and starts the setup
		db.Release(recv(b, db))
		oa, ob := outQ(b, A, "dep", B.h.ID()), outQ(b, B, "dep", A.h.ID())
		poll(b, "both paths up", func() bool { return oa.up.Load() && ob.up.Load() })
		ctx := testCtx(b, time.Minute)
		rtts := make([]time.Duration, 0, b.N)
		sent := A.r.dg.sent.Load()
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if err := da.Inject(req); err != nil {
				b.Fatal(err)
			}
			p, err := db.Recv(ctx)
			if err != nil {
				b.Fatal(err)
			}
			db.Release(p)
			if err := db.Inject(rep); err != nil {
				b.Fatal(err)
			}
			if p, err = da.Recv(ctx); err != nil {
				b.Fatal(err)
			}
			da.Release(p)
			rtts = append(rtts, time.Since(t0))
		}
		b.StopTimer()
		// counted after the write, which the answer may overtake
		poll(b, "every packet sent as a datagram", func() bool { return A.r.dg.sent.Load()-sent == uint64(b.N) })
		reportRTT(b, rtts)
	})
}

// reportRTT reports the p50 and p99 of rtts in µs.
func reportRTT(b *testing.B, rtts []time.Duration) {
	slices.Sort(rtts)
	at := func(q float64) float64 { return float64(rtts[int(q*float64(len(rtts)-1))]) / 1e3 }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
