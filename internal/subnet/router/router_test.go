package router

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dmsnet/dms/internal/subnet"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

const block = "10.77.0.0/24"

var (
	gw = ip("10.77.0.1")
	a2 = ip("10.77.0.2")
	a3 = ip("10.77.0.3")
	a4 = ip("10.77.0.4")
)

// TestForward sends packets both ways between allocations on two hosts.
func TestForward(t *testing.T) {
	A, B := newNode(t, nil), newNode(t, nil)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	for _, n := range []*node{A, B} {
		if !n.r.SetTable(tb) {
			t.Fatal("SetTable = false for a new deployment")
		}
	}
	da, db := attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	for i, tc := range []struct {
		name     string
		from, to *subnettest.Device
		pkt      []byte
	}{
		{"udp a→b", da, db, subnettest.UDP(a2, a3, 1000, 2000, []byte("ping"))},
		{"udp b→a", db, da, subnettest.UDP(a3, a2, 2000, 1000, []byte("pong"))},
		{"icmp a→b", da, db, subnettest.ICMPEcho(a2, a3, 1, 1)},
		{"icmp b→a", db, da, subnettest.ICMPEcho(a3, a2, 1, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inject(t, tc.from, tc.pkt)
			if got := recv(t, tc.to); !bytes.Equal(got, tc.pkt) {
				t.Fatalf("packet %d delivered as % x, want % x", i, got, tc.pkt)
			}
		})
	}
	// a delivery is counted just after the device has the packet
	poll(t, "A's stats: 2 forwarded, 2 delivered", func() bool {
		s := A.r.Stats()
		return s.Forwarded == 2 && s.Delivered == 2
	})
	poll(t, "B's deployment stats: 2 forwarded, 2 delivered", func() bool {
		s := B.r.DeploymentStats("dep")
		return s.Forwarded == 2 && s.Delivered == 2
	})
}

// TestLocal delivers between two allocations of one host, and drops what
// a device must not send.
func TestLocal(t *testing.T) {
	A, B := newNode(t, nil), newNode(t, nil)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, A.h.ID()}, at{"c", 4, B.h.ID()}, at{"d", 5, A.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db := attach(t, A, "dep", "a"), attach(t, A, "dep", "b")
	dc := attach(t, B, "dep", "c")
	for _, tc := range []struct {
		name string
		pkt  []byte
		why  string // "" delivered to db
	}{
		{"delivered", subnettest.UDP(a2, a3, 1, 2, []byte("x")), ""},
		{"forged source of a local allocation", subnettest.UDP(a3, a3, 1, 2, []byte("x")), "spoofed"},
		{"forged source of a remote allocation", subnettest.UDP(a4, a3, 1, 2, []byte("x")), "spoofed"},
		{"source outside the subnet", subnettest.UDP(ip("192.168.1.1"), a3, 1, 2, []byte("x")), "spoofed"},
		{"to the gateway", subnettest.ICMPEcho(a2, gw, 1, 1), "gateway"},
		{"to the gateway, UDP not DNS", subnettest.UDP(a2, gw, 1, 80, []byte("x")), "gateway"},
		{"DNS without a server", subnettest.UDP(a2, gw, 1, 53, []byte("x")), "gateway"},
		{"to the DNS address, UDP not DNS", subnettest.UDP(a2, subnet.Resolver, 1, 80, []byte("x")), "gateway"},
		{"to the DNS address, ICMP", subnettest.ICMPEcho(a2, subnet.Resolver, 1, 1), "gateway"},
		{"DNS address without a server", subnettest.UDP(a2, subnet.Resolver, 1, 53, []byte("x")), "gateway"},
		{"forged source to the DNS address", subnettest.UDP(a3, subnet.Resolver, 1, 53, []byte("x")), "spoofed"},
		{"broadcast", subnettest.UDP(a2, ip("10.77.0.255"), 1, 2, []byte("x")), "no-route"},
		{"limited broadcast", subnettest.UDP(a2, ip("255.255.255.255"), 1, 2, []byte("x")), "no-route"},
		{"multicast", subnettest.UDP(a2, ip("224.0.0.251"), 1, 5353, []byte("x")), "no-route"},
		{"unknown address", subnettest.UDP(a2, ip("10.77.0.9"), 1, 2, []byte("x")), "no-route"},
		{"outside the subnet", subnettest.UDP(a2, ip("8.8.8.8"), 1, 2, []byte("x")), "no-route"},
		{"local allocation not attached", subnettest.UDP(a2, ip("10.77.0.5"), 1, 2, []byte("x")), "no-route"},
		{"not IPv4", append([]byte{0x60}, make([]byte, 40)...), "malformed"},
		{"truncated", subnettest.UDP(a2, a3, 1, 2, []byte("x"))[:18], "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := A.r.Stats().Dropped[tc.why]
			inject(t, da, tc.pkt)
			if tc.why != "" {
				dropped(t, A, tc.why, before+1)
				// the next good packet is the next one delivered
				tc.pkt = subnettest.UDP(a2, a3, 1, 2, []byte(tc.name))
				inject(t, da, tc.pkt)
			}
			if got := recv(t, db); !bytes.Equal(got, tc.pkt) {
				t.Fatalf("delivered % x, want % x", got, tc.pkt)
			}
		})
	}
	// and to the remote one, from b
	p := subnettest.UDP(a3, a4, 1, 2, []byte("remote"))
	inject(t, db, p)
	if got := recv(t, dc); !bytes.Equal(got, p) {
		t.Fatalf("delivered % x, want % x", got, p)
	}
}

// rawStream opens a data stream from n to m for deployment, as a sender
// that may lie would.
func rawStream(t *testing.T, n, m *node, deployment string) (network.Stream, *bufio.Writer) {
	t.Helper()
	s, err := n.h.NewStream(testCtx(t, 10e9), m.h.ID(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	bw := bufio.NewWriter(s)
	_, _ = bw.Write(hello(deployment))
	return s, bw
}

func frame(t *testing.T, bw *bufio.Writer, pkt []byte) {
	t.Helper()
	if err := writeFrame(bw, pkt); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

// isReset waits until writing on s fails: the receiver reset it. (It
// writes empty frames, which a receiver skips.)
func isReset(t *testing.T, s network.Stream) {
	t.Helper()
	poll(t, "the stream reset", func() bool {
		_, err := s.Write([]byte{0, 0})
		return err != nil
	})
}

// TestInboundChecks sends packets on a raw stream from a peer of the
// table: what is not its to send is dropped and counted.
func TestInboundChecks(t *testing.T) {
	A, B := newNode(t, nil), newNode(t, nil)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}, at{"c", 4, A.h.ID()})
	A.r.SetTable(tb)
	da := attach(t, A, "dep", "a")
	first, bw := rawStream(t, B, A, "dep")
	for _, tc := range []struct {
		name string
		pkt  []byte
		why  string
	}{
		{"good", subnettest.UDP(a3, a2, 1, 2, []byte("x")), ""},
		{"source of the receiver's allocation", subnettest.UDP(a2, a2, 1, 2, []byte("x")), "spoofed"},
		{"source of another allocation", subnettest.UDP(a4, a2, 1, 2, []byte("x")), "spoofed"},
		{"source outside the subnet", subnettest.UDP(ip("10.0.0.1"), a2, 1, 2, []byte("x")), "spoofed"},
		{"to an allocation not attached", subnettest.UDP(a3, a4, 1, 2, []byte("x")), "no-route"},
		{"to the gateway", subnettest.UDP(a3, gw, 1, 53, []byte("x")), "no-route"},
		{"to the DNS address", subnettest.UDP(a3, subnet.Resolver, 1, 53, []byte("x")), "no-route"},
		{"to the sender's own allocation", subnettest.UDP(a3, a3, 1, 2, []byte("x")), "no-route"},
		{"not IPv4", append([]byte{0x60}, make([]byte, 40)...), "malformed"},
		{"bad header length", func() []byte { p := subnettest.UDP(a3, a2, 1, 2, []byte("x")); p[0] = 0x44; return p }(), "malformed"},
		{"total length beyond the frame", func() []byte { p := subnettest.UDP(a3, a2, 1, 2, []byte("x")); p[3] += 10; return p }(), "malformed"},
		{"frame too short", []byte{0x45, 0}, "malformed"},
		{"frame too long", make([]byte, 4000), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := A.r.Stats().Dropped[tc.why]
			frame(t, bw, tc.pkt)
			if tc.why != "" {
				dropped(t, A, tc.why, before+1)
				tc.pkt = subnettest.UDP(a3, a2, 1, 2, []byte(tc.name))
				frame(t, bw, tc.pkt)
			}
			if got := recv(t, da); !bytes.Equal(got, tc.pkt) {
				t.Fatalf("delivered % x, want % x", got, tc.pkt)
			}
		})
	}
	if d := A.r.DeploymentStats("dep").Dropped["spoofed"]; d != 3 {
		t.Errorf("deployment's spoofed drops = %d, want 3", d)
	}
	// a second stream of the same peer and deployment replaces the first
	_, bw2 := rawStream(t, B, A, "dep")
	good := subnettest.UDP(a3, a2, 1, 2, []byte("second"))
	frame(t, bw2, good)
	if got := recv(t, da); !bytes.Equal(got, good) {
		t.Fatalf("delivered % x, want % x", got, good)
	}
	isReset(t, first)
}

// TestUnauthorized: a stream from a peer without a route in the
// deployment, or for a deployment without a table, is reset.
func TestUnauthorized(t *testing.T) {
	A, B, C := newNode(t, nil), newNode(t, nil), newNode(t, nil)
	connect(t, A, B, C)
	A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}))
	A.r.SetTable(table(t, "other", 1, block, at{"a", 2, A.h.ID()}, at{"c", 3, C.h.ID()}))
	da := attach(t, A, "dep", "a")
	for i, tc := range []struct {
		name string
		from *node
		dep  string
		why  string
	}{
		{"peer not in the table", C, "dep", "unauthorized"},
		{"peer of another deployment's table", C, "dep", "unauthorized"},
		{"deployment without a table", B, "nope", "unauthorized"},
		{"bad version", B, "", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := A.r.Stats().Dropped[tc.why]
			s, bw := rawStream(t, tc.from, A, tc.dep)
			if tc.dep == "" {
				bw.Reset(s)
				_, _ = bw.Write([]byte{9, 1, 'x'})
			}
			frame(t, bw, subnettest.UDP(a3, a2, 1, 2, []byte{byte(i)}))
			dropped(t, A, tc.why, before+1)
			isReset(t, s)
		})
	}
	// nothing got through: the next packet delivered is B's good one
	_, bw := rawStream(t, B, A, "dep")
	good := subnettest.UDP(a3, a2, 1, 2, []byte("good"))
	frame(t, bw, good)
	if got := recv(t, da); !bytes.Equal(got, good) {
		t.Fatalf("delivered % x, want % x", got, good)
	}
}

// TestIsolation: two deployments with the same block, addresses and
// peers never see each other's packets.
func TestIsolation(t *testing.T) {
	A, B := newNode(t, nil), newNode(t, nil)
	connect(t, A, B)
	devs := map[string][2]*subnettest.Device{}
	for _, dep := range []string{"one", "two"} {
		tb := table(t, dep, 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
		A.r.SetTable(tb)
		B.r.SetTable(tb)
		devs[dep] = [2]*subnettest.Device{attach(t, A, dep, "a"), attach(t, B, dep, "b")}
	}
	for round := range 3 {
		for _, dep := range []string{"one", "two"} {
			inject(t, devs[dep][0], subnettest.UDP(a2, a3, 1, 2, []byte(dep)))
			inject(t, devs[dep][1], subnettest.UDP(a3, a2, 1, 2, []byte(dep)))
		}
		for _, dep := range []string{"one", "two"} {
			if got := recv(t, devs[dep][1]); !isUDP(got, a2, a3, dep) {
				t.Fatalf("round %d: %s's b got % x", round, dep, got)
			}
			if got := recv(t, devs[dep][0]); !isUDP(got, a3, a2, dep) {
				t.Fatalf("round %d: %s's a got % x", round, dep, got)
			}
		}
	}
	poll(t, "A's stats: 6 forwarded and delivered", func() bool {
		s := A.r.Stats()
		return s.Delivered == 6 && s.Forwarded == 6
	})
}

// TestRedeploy moves an allocation to a third host: packets follow it at
// once, and the stream to the old host is closed.
func TestRedeploy(t *testing.T) {
	A, B, C := newNode(t, nil), newNode(t, nil), newNode(t, nil)
	connect(t, A, B, C)
	v1 := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	for _, n := range []*node{A, B, C} {
		n.r.SetTable(v1)
	}
	da, dbOld := attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	p := subnettest.UDP(a2, a3, 1, 2, []byte("to B"))
	inject(t, da, p)
	if got := recv(t, dbOld); !bytes.Equal(got, p) {
		t.Fatalf("B got % x", got)
	}
	v2 := table(t, "dep", 2, block, at{"a", 2, A.h.ID()}, at{"b", 3, C.h.ID()})
	for _, n := range []*node{A, B, C} {
		if !n.r.SetTable(v2) {
			t.Fatal("SetTable(v2) = false")
		}
		if n.r.SetTable(v1) {
			t.Fatal("SetTable(v1) after v2 = true")
		}
	}
	if got := A.r.Table("dep"); got.Version != 2 || got.Routes[1].Peer != C.h.ID().String() {
		t.Fatalf("Table = %+v, want version 2", got)
	}
	B.r.Detach("dep", "b")
	dbNew := attach(t, C, "dep", "b")
	p = subnettest.UDP(a2, a3, 1, 2, []byte("to C"))
	inject(t, da, p)
	if got := recv(t, dbNew); !bytes.Equal(got, p) {
		t.Fatalf("C got % x", got)
	}
	p = subnettest.UDP(a3, a2, 1, 2, []byte("from C"))
	inject(t, dbNew, p)
	if got := recv(t, da); !bytes.Equal(got, p) {
		t.Fatalf("A got % x", got)
	}
	// B left the table: A's queue to it is gone, B's inbound stream reset
	poll(t, "B's inbound stream closed", func() bool {
		B.r.mu.Lock()
		defer B.r.mu.Unlock()
		return len(B.r.deps["dep"].ins) == 0
	})
	A.r.mu.Lock()
	_, ok := A.r.deps["dep"].outs[B.h.ID()]
	A.r.mu.Unlock()
	if ok {
		t.Error("A still has a queue to B")
	}
	// B, no longer in the table, cannot send as b any more
	_, bw := rawStream(t, B, A, "dep")
	before := A.r.Stats().Dropped["unauthorized"]
	frame(t, bw, subnettest.UDP(a3, a2, 1, 2, []byte("stale")))
	dropped(t, A, "unauthorized", before+1)
}

// TestLifecycle: Attach refuses what the table does not route here;
// Detach, a second Attach, Remove and Close close the devices.
func TestLifecycle(t *testing.T) {
	A, B := newNode(t, nil), newNode(t, nil)
	if err := A.r.Attach("dep", "a", subnettest.NewDevice(1)); err == nil {
		t.Error("Attach without a table succeeded")
	}
	A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}, at{"c", 4, A.h.ID()}))
	for _, alloc := range []string{"b", "x"} {
		if err := A.r.Attach("dep", alloc, subnettest.NewDevice(1)); err == nil {
			t.Errorf("Attach(%s) succeeded, want an error (not routed here)", alloc)
		}
	}
	if A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()})) {
		t.Error("SetTable of the same version = true")
	}
	bad := table(t, "dep", 2, block, at{"a", 2, A.h.ID()})
	bad.Routes[0].Addr = ip("10.99.0.2")
	if A.r.SetTable(bad) || A.r.SetTable(nil) || A.r.Table("dep").Version != 1 {
		t.Error("an invalid table was installed")
	}
	d1 := attach(t, A, "dep", "a")
	d2 := attach(t, A, "dep", "a")
	if !d1.Closed() || d2.Closed() {
		t.Errorf("after a second Attach: first closed %v, second closed %v; want true, false", d1.Closed(), d2.Closed())
	}
	A.r.Detach("dep", "a")
	if !d2.Closed() {
		t.Error("Detach did not close the device")
	}
	A.r.Detach("dep", "a") // twice is fine
	d3, d4 := attach(t, A, "dep", "a"), attach(t, A, "dep", "c")
	A.r.SetTable(table(t, "dep2", 1, block, at{"a", 2, A.h.ID()}))
	d5 := attach(t, A, "dep2", "a")
	A.r.Remove("dep")
	if !d3.Closed() || !d4.Closed() || d5.Closed() {
		t.Errorf("after Remove: closed %v %v %v, want true true false", d3.Closed(), d4.Closed(), d5.Closed())
	}
	if A.r.Table("dep") != nil {
		t.Error("Table after Remove is not nil")
	}
	if err := A.r.Attach("dep", "a", subnettest.NewDevice(1)); err == nil {
		t.Error("Attach after Remove succeeded")
	}
	_ = A.r.Close()
	if !d5.Closed() {
		t.Error("Close did not close the device")
	}
	if A.r.SetTable(table(t, "dep3", 1, block, at{"a", 2, A.h.ID()})) {
		t.Error("SetTable after Close = true")
	}
}

// fakeDNS answers every query with "answer" from gateway:53, and records
// what it saw.
type fakeDNS struct {
	mu    sync.Mutex
	names map[string]netip.Addr
	later bool // reply from another goroutine
}

func (f *fakeDNS) ServePacket(names map[string]netip.Addr, gateway netip.Addr, pkt []byte, reply func([]byte)) {
	f.mu.Lock()
	f.names = map[string]netip.Addr{}
	for k, v := range names {
		f.names[k] = v
	}
	f.mu.Unlock()
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	sport := uint16(pkt[20])<<8 | uint16(pkt[21])
	ans := subnettest.UDP(gateway, src, 53, sport, append([]byte("answer to "), pkt[28:]...))
	if f.later {
		go reply(ans)
		return
	}
	reply(ans)
}

// TestDNS: queries to gateway:53 reach the DNS server, with the names of
// the table, and its answers come back to the asking device.
func TestDNS(t *testing.T) {
	for _, later := range []bool{false, true} {
		dns := &fakeDNS{later: later}
		A, B := newNode(t, dns), newNode(t, nil)
		A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}))
		da := attach(t, A, "dep", "a")
		inject(t, da, subnettest.UDP(a2, gw, 5353, 53, []byte("q")))
		if got := recv(t, da); !isUDP(got, gw, a2, "answer to q") {
			t.Fatalf("later=%v: got % x, want the answer", later, got)
		}
		dns.mu.Lock()
		if dns.names["a"] != a2 || dns.names["b"] != a3 || len(dns.names) != 2 {
			t.Errorf("DNS saw names %v", dns.names)
		}
		dns.mu.Unlock()
		inject(t, da, subnettest.UDP(a2, gw, 5353, 80, []byte("q")))
		dropped(t, A, "gateway", 1)
		// The same at subnet.Resolver, answered from there.
		inject(t, da, subnettest.UDP(a2, subnet.Resolver, 5354, 53, []byte("r")))
		if got := recv(t, da); !isUDP(got, subnet.Resolver, a2, "answer to r") {
			t.Fatalf("later=%v: got % x, want the answer from %s", later, got, subnet.Resolver)
		}
		inject(t, da, subnettest.UDP(a2, subnet.Resolver, 5354, 80, []byte("r")))
		dropped(t, A, "gateway", 2)
	}
}

// TestQueueFull: a peer that does not read makes its queue fill; the
// packets past it are dropped and counted, and the device is still read
// (local delivery goes on).
func TestQueueFull(t *testing.T) {
	A := newNode(t, nil)
	B := &node{h: newHost(t)}
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	B.h.SetStreamHandler(Protocol, func(s network.Stream) { <-hold; _ = s.Reset() })
	connect(t, A, B)
	A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}, at{"c", 4, A.h.ID()}))
	da, dc := attach(t, A, "dep", "a"), attach(t, A, "dep", "c")
	pkt := subnettest.UDP(a2, a3, 1, 2, make([]byte, subnet.MTU-28))
	for i := 0; A.r.Stats().Dropped["queue-full"] == 0; i++ {
		if i > 100000 {
			t.Fatalf("no queue-full drop after %d packets: %v", i, A.r.Stats())
		}
		inject(t, da, pkt)
	}
	p := subnettest.UDP(a2, a4, 1, 2, []byte("still read"))
	inject(t, da, p)
	if got := recv(t, dc); !bytes.Equal(got, p) {
		t.Fatalf("delivered % x", got)
	}
}

// logCount counts debug records.
type logCount struct{ n atomic.Int64 }

func (l *logCount) Enabled(context.Context, slog.Level) bool  { return true }
func (l *logCount) Handle(context.Context, slog.Record) error { l.n.Add(1); return nil }
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler        { return l }
func (l *logCount) WithGroup(string) slog.Handler             { return l }

// TestDropLog: drops are all counted but logged at most once a second per
// reason.
func TestDropLog(t *testing.T) {
	o := newOffline(t)
	h := &logCount{}
	o.r.log = slog.New(h)
	spoofed := frames(subnettest.UDP(a2, a2, 1, 2, nil))
	start := time.Now()
	for range 50 {
		o.r.readFrames(o.d, o.p1, bufio.NewReader(bytes.NewReader(spoofed)))
	}
	most := 1 + int64(time.Since(start)/time.Second)
	if got := o.r.Stats().Dropped["spoofed"]; got != 50 {
		t.Errorf("spoofed drops = %d, want 50", got)
	}
	if n := h.n.Load(); n < 1 || n > most {
		t.Errorf("%d log records for 50 drops, want 1 to %d", n, most)
	}
}

// TestSendWithin: a device's reader queues into a queue with room at
// once, gives up on one that stays full (QueueWait) or is closed, and
// gets in as soon as the writer takes a packet.
func TestSendWithin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outQueue{q: make(chan *packet, 2), ctx: ctx, cancel: cancel}
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	p := &packet{}
	if !o.sendWithin(p, tm) || !o.sendWithin(p, tm) {
		t.Fatal("a queue with room refused a packet")
	}
	if o.sendWithin(p, tm) {
		t.Fatal("a full queue took a packet")
	}
	// the writer takes one while the reader waits: the wait may time out
	// first on a loaded machine, so try again until it gets in
	deadline := time.Now().Add(10 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("the reader never got into a queue the writer drained")
		}
		done := make(chan bool)
		go func() { done <- o.sendWithin(p, tm) }()
		<-o.q
		if got = <-done; !got {
			o.q <- p // it timed out before the take: full again
		}
	}
	cancel()
	if o.sendWithin(p, tm) {
		t.Fatal("a closed, full queue took a packet")
	}
}
