package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/net/ipv4"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// newDgNode is a node whose router has a datagram socket on 127.0.0.1.
func newDgNode(t testing.TB) *node {
	t.Helper()
	h := newHost(t)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Host: h, Log: slog.New(slog.DiscardHandler), Datagram: conn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &node{h: h, r: r}
}

// outQ is n's queue to peer id of deployment dep.
func outQ(t testing.TB, n *node, dep string, id peer.ID) *outQueue {
	t.Helper()
	n.r.mu.Lock()
	defer n.r.mu.Unlock()
	o := n.r.deps[dep].outs[id]
	if o == nil {
		t.Fatalf("no queue to %s in %s", id, dep)
	}
	return o
}

// rawSession sets up a datagram session from n to m for dep, as a sender
// that may lie would: the test seals what it likes with it.
func rawSession(t testing.TB, n, m *node, dep string) (*session, error) {
	t.Helper()
	n.r.mu.Lock()
	d := n.r.deps[dep]
	n.r.mu.Unlock()
	o := &outQueue{r: n.r, dep: d, peer: m.h.ID()}
	if err := n.r.dg.setup(testCtx(t, 10e9), o); err != nil {
		return nil, err
	}
	return o.tx.Load(), nil
}

// sealed is pkt sealed as a datagram of s.
func sealed(t testing.TB, s *session, pkt []byte) []byte {
	t.Helper()
	p := getPacket()
	p.n = copy(p.buf[dgStartPlain():], pkt)
	b, err := s.sealPacket(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}

func dgStartPlain() int { return dgStart + dgHeader }

// udpTo sends datagrams to n's socket from a socket of the test.
func udpTo(t testing.TB, n *node) func([]byte) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, n.r.dg.conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return func(b []byte) {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDatagram: once the session is up, packets go both ways as
// datagrams, none on the streams.
func TestDatagram(t *testing.T) {
	A, B := newDgNode(t), newDgNode(t)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db := attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	// the first packet takes the stream and starts the setup
	first := subnettest.UDP(a2, a3, 1, 2, []byte("first"))
	inject(t, da, first)
	if got := recv(t, db); !bytes.Equal(got, first) {
		t.Fatalf("delivered % x", got)
	}
	oa, ob := outQ(t, A, "dep", B.h.ID()), outQ(t, B, "dep", A.h.ID())
	poll(t, "A's path to B up", func() bool { return oa.tx.Load() != nil && oa.up.Load() })
	poll(t, "B's path to A up (the handshake's other direction)", func() bool { return ob.tx.Load() != nil && ob.up.Load() })
	fwdA, fwdB := A.r.Stats().Forwarded, B.r.Stats().Forwarded
	sentA, sentB := A.r.dg.sent.Load(), B.r.dg.sent.Load()
	const n = 50
	for i := range n {
		for _, tc := range []struct {
			from, to *subnettest.Device
			pkt      []byte
		}{
			{da, db, subnettest.UDP(a2, a3, 1000, 2000, []byte{byte(i), 'a'})},
			{db, da, subnettest.ICMPEcho(a3, a2, 1, uint16(i))},
		} {
			inject(t, tc.from, tc.pkt)
			if got := recv(t, tc.to); !bytes.Equal(got, tc.pkt) {
				t.Fatalf("delivered % x, want % x", got, tc.pkt)
			}
		}
	}
	poll(t, "the counts", func() bool { return A.r.Stats().Forwarded == fwdA+n && B.r.Stats().Forwarded == fwdB+n })
	if got := A.r.dg.sent.Load() - sentA; got != n {
		t.Errorf("A sent %d datagrams, want %d (the rest took the stream)", got, n)
	}
	if got := B.r.dg.sent.Load() - sentB; got != n {
		t.Errorf("B sent %d datagrams, want %d", got, n)
	}
	if got := A.r.dg.received.Load(); got < n {
		t.Errorf("A received %d datagrams, want ≥ %d", got, n)
	}
}

// TestDatagramBurst: a burst of packets of the same size and a few
// shorter ones (sent in segmented writes where the kernel can) all
// arrive, as datagrams.
func TestDatagramBurst(t *testing.T) {
	A, B := newDgNode(t), newDgNode(t)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db := subnettest.NewDevice(512), attach(t, B, "dep", "b")
	if err := A.r.Attach("dep", "a", da); err != nil {
		t.Fatal(err)
	}
	inject(t, da, subnettest.UDP(a2, a3, 1, 2, []byte("first")))
	recv(t, db)
	oa := outQ(t, A, "dep", B.h.ID())
	poll(t, "A's path to B up", func() bool { return oa.tx.Load() != nil && oa.up.Load() })
	sent := A.r.dg.sent.Load()
	const n = 300
	want := map[string]bool{}
	for i := range n {
		size := 1000
		if i%50 == 49 {
			size = 100 // a shorter one ends a run of segments
		}
		payload := make([]byte, size)
		copy(payload, fmt.Sprint(i))
		pkt := subnettest.UDP(a2, a3, 1, 2, payload)
		want[string(pkt)] = true
		inject(t, da, pkt)
	}
	for range n {
		got := recv(t, db)
		if !want[string(got)] {
			t.Fatalf("delivered % x", got[:40])
		}
		delete(want, string(got))
	}
	// the sender counts a batch just after it has gone
	poll(t, fmt.Sprintf("%d datagrams sent", n), func() bool { return A.r.dg.sent.Load()-sent == n })
	if gsoSupported && !A.r.dg.gso.Load() {
		t.Error("the segmented writes failed on loopback")
	}
}

// TestDatagramChecks sends what a lying peer of the table could: each bad
// datagram is dropped and counted, and the next good one is delivered.
func TestDatagramChecks(t *testing.T) {
	A, B := newDgNode(t), newDgNode(t)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}, at{"c", 4, A.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da := attach(t, A, "dep", "a")
	s, err := rawSession(t, B, A, "dep")
	if err != nil {
		t.Fatal(err)
	}
	send := udpTo(t, A)
	good := sealed(t, s, subnettest.UDP(a3, a2, 1, 2, []byte("good")))
	send(good)
	if got := recv(t, da); !isUDP(got, a3, a2, "good") {
		t.Fatalf("delivered % x", got)
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name string
		dg   func() []byte
		why  string
	}{
		{"spoofed inner source", func() []byte { return sealed(t, s, subnettest.UDP(a4, a2, 1, 2, []byte("x"))) }, "spoofed"},
		{"to an allocation not attached", func() []byte { return sealed(t, s, subnettest.UDP(a3, a4, 1, 2, []byte("x"))) }, "no-route"},
		{"not IPv4", func() []byte { return sealed(t, s, append([]byte{0x60}, make([]byte, 40)...)) }, "malformed"},
		{"replayed", func() []byte { return good }, "bad-datagram"},
		{"ciphertext altered", func() []byte {
			return flip(sealed(t, s, subnettest.UDP(a3, a2, 1, 2, []byte("x"))), dgHeader+3)
		}, "bad-datagram"},
		{"counter altered", func() []byte {
			return flip(sealed(t, s, subnettest.UDP(a3, a2, 1, 2, []byte("x"))), 11)
		}, "bad-datagram"},
		{"unknown index", func() []byte {
			return flip(sealed(t, s, subnettest.UDP(a3, a2, 1, 2, []byte("x"))), 0)
		}, "unauthorized"},
		{"too short", func() []byte { return good[:40] }, "bad-datagram"},
		{"a probe answer never asked for", func() []byte { return sealed(t, s, []byte{ctlAnswer, 0, 0, 1, 0, 0, 0, 0, 0}) }, "bad-datagram"},
		{"a probe of the wrong length", func() []byte { return sealed(t, s, []byte{ctlProbe, 0, 0}) }, "bad-datagram"},
		{"an unknown control type", func() []byte { return sealed(t, s, []byte{7, 0, 0, 0, 0, 0, 0, 0, 1}) }, "bad-datagram"},
		{"IPv4 shorter than a header", func() []byte { return sealed(t, s, []byte{0x45, 0, 0, 10, 0, 0, 0, 0, 64, 17}) }, "malformed"},
		{"garbage", func() []byte { return bytes.Repeat([]byte{0xa5}, 300) }, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := A.r.Stats().Dropped[tc.why]
			send(tc.dg())
			dropped(t, A, tc.why, before+1)
			send(sealed(t, s, subnettest.UDP(a3, a2, 1, 2, []byte(tc.name))))
			if got := recv(t, da); !isUDP(got, a3, a2, tc.name) {
				t.Fatalf("delivered % x", got)
			}
		})
	}
}

// TestDatagramUnauthorized: a peer outside the deployment's table cannot
// set up a session.
func TestDatagramUnauthorized(t *testing.T) {
	A, B, C := newDgNode(t), newDgNode(t), newDgNode(t)
	connect(t, A, B, C)
	A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}))
	// C believes it is in the deployment
	C.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"c", 3, C.h.ID()}))
	if _, err := rawSession(t, C, A, "dep"); err == nil {
		t.Fatal("C set up a session with A")
	}
	dropped(t, A, "unauthorized", 1)
	// nor for a deployment A has no table of
	C.r.SetTable(table(t, "other", 1, block, at{"a", 2, A.h.ID()}, at{"c", 3, C.h.ID()}))
	if _, err := rawSession(t, C, A, "other"); err == nil {
		t.Fatal("C set up a session with A for a deployment A does not have")
	}
	dropped(t, A, "unauthorized", 2)
}

// TestDatagramIsolation: a session belongs to one deployment; two
// deployments on the same block never see each other's packets.
func TestDatagramIsolation(t *testing.T) {
	A, B := newDgNode(t), newDgNode(t)
	connect(t, A, B)
	for _, dep := range []string{"one", "two"} {
		tb := table(t, dep, 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
		A.r.SetTable(tb)
		B.r.SetTable(tb)
	}
	d1, d2 := attach(t, A, "one", "a"), attach(t, A, "two", "a")
	s1, err := rawSession(t, B, A, "one")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := rawSession(t, B, A, "two")
	if err != nil {
		t.Fatal(err)
	}
	send := udpTo(t, A)
	send(sealed(t, s1, subnettest.UDP(a3, a2, 1, 2, []byte("one"))))
	send(sealed(t, s2, subnettest.UDP(a3, a2, 1, 2, []byte("two"))))
	if got := recv(t, d1); !isUDP(got, a3, a2, "one") {
		t.Fatalf("deployment one got % x", got)
	}
	if got := recv(t, d2); !isUDP(got, a3, a2, "two") {
		t.Fatalf("deployment two got % x", got)
	}
	// removing a deployment ends its sessions
	A.r.Remove("one")
	before := A.r.Stats().Dropped["unauthorized"]
	send(sealed(t, s1, subnettest.UDP(a3, a2, 1, 2, []byte("gone"))))
	dropped(t, A, "unauthorized", before+1)
	send(sealed(t, s2, subnettest.UDP(a3, a2, 1, 2, []byte("still"))))
	if got := recv(t, d2); !isUDP(got, a3, a2, "still") {
		t.Fatalf("deployment two got % x", got)
	}
}

// TestDatagramFallback: a peer without a datagram socket refuses the
// setup, and the packets keep taking the stream.
func TestDatagramFallback(t *testing.T) {
	A, B := newDgNode(t), newNode(t, nil)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db := attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	if _, err := rawSession(t, A, B, "dep"); err == nil {
		t.Fatal("a session with a peer without a datagram socket")
	}
	oa := outQ(t, A, "dep", B.h.ID())
	for i := range 20 {
		pkt := subnettest.UDP(a2, a3, 1, 2, []byte{byte(i)})
		inject(t, da, pkt)
		if got := recv(t, db); !bytes.Equal(got, pkt) {
			t.Fatalf("delivered % x", got)
		}
		back := subnettest.UDP(a3, a2, 2, 1, []byte{byte(i)})
		inject(t, db, back)
		if got := recv(t, da); !bytes.Equal(got, back) {
			t.Fatalf("delivered % x", got)
		}
	}
	poll(t, "A's setup attempt to end", func() bool { return !oa.settingUp.Load() })
	if oa.tx.Load() != nil || A.r.dg.sent.Load() != 0 {
		t.Fatalf("A has a datagram session to B (%d sent)", A.r.dg.sent.Load())
	}
}

// TestReplayWindow: each counter once, none older than the window.
func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, tc := range []struct {
		c    uint64
		want bool
	}{
		{0, true}, {0, false}, {1, true}, {5, true}, {3, true}, {3, false}, {5, false},
		{5000, true}, {5000 - replaySize, true}, {5000 - replaySize - 1, false}, {4999, true},
		{1 << 40, true}, {1<<40 - 1, true}, {4999, false}, {dgMaxCounter, false},
	} {
		if got := w.accept(tc.c); got != tc.want {
			t.Errorf("accept(%d) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// offlineSession is a session of p1 (initiator) to o's router for "dep",
// with both ends' keys, as a handshake would make them.
func offlineSession(t testing.TB, o *offline) (rx, tx *session) {
	t.Helper()
	secret := bytes.Repeat([]byte{7}, 32)
	i2r, r2i, err := keys(secret, o.p1, o.self, "dep")
	if err != nil {
		t.Fatal(err)
	}
	rx = &session{dep: o.d, peer: o.p1, open: i2r, seal: r2i}
	o.r.dg.register(rx)
	tx = &session{dep: o.d, peer: o.self, seal: i2r, remote: rx.index, addr: netip.MustParseAddrPort("127.0.0.1:9")}
	return rx, tx
}

// newOfflineDgram is an offline router with a datagram side (no socket).
func newOfflineDgram(t testing.TB) *offline {
	t.Helper()
	o := newOffline(t)
	g := &dgram{r: o.r}
	g.sessions.Store(&map[uint32]*session{})
	o.r.dg = g
	return o
}

// FuzzDatagram feeds datagrams to the receive path of a router with one
// session of p1: never a panic, and only sane IPv4 packets with p1's
// source address reach an attached allocation.
func FuzzDatagram(f *testing.F) {
	o := newOfflineDgram(f)
	_, tx := offlineSession(f, o)
	f.Add(sealed(f, tx, subnettest.UDP(a3, a2, 1, 2, []byte("x"))))
	f.Add(sealed(f, tx, subnettest.ICMPEcho(a3, a4, 1, 1)))
	f.Add(sealed(f, tx, subnettest.UDP(a2, a2, 1, 2, nil)))
	f.Add(sealed(f, tx, []byte{0x45, 0, 0, 20}))
	f.Add([]byte{0, 0, 0, 1})
	f.Add(sealed(f, tx, []byte{ctlProbe, 0, 0, 0, 0, 0, 0, 0, 1}))
	f.Add(sealed(f, tx, []byte{ctlAnswer, 0, 0, 0, 0, 0, 0, 0, 1}))
	one := make([][]byte, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := getPacket()
		defer putPacket(p)
		n := copy(p.buf[dgStart:], data)
		o.r.dg.handle(p, n, one)
		for _, dev := range []*subnettest.Device{o.dev, o.local} {
			for {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				got, err := dev.Recv(ctx)
				if err != nil {
					break
				}
				m, _, _, ok := header(got)
				if !ok || m != len(got) || netip.AddrFrom4([4]byte(got[12:16])) != a3 {
					t.Fatalf("delivered % x", got)
				}
				dev.Release(got)
			}
		}
	})
}

// TestDatagramZeroAllocs: sealing and sending a datagram, and opening,
// checking and delivering one, allocate nothing per packet.
func TestDatagramZeroAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocations are not counted under -race or -short")
	}
	o := newOfflineDgram(t)
	_, tx := offlineSession(t, o)
	const n = 1000
	var dgs [][]byte
	pkt := subnettest.UDP(a3, a2, 1, 2, make([]byte, 1000))
	for range n {
		dgs = append(dgs, sealed(t, tx, pkt))
	}
	ctx := context.Background()
	p := getPacket()
	one := make([][]byte, 1)
	i := 0
	run := func() {
		for range n {
			m := copy(p.buf[dgStart:], dgs[i%n])
			i++
			o.r.dg.handle(p, m, one)
			got, err := o.dev.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			o.dev.Release(got)
		}
	}
	run() // the window takes the first n; later rounds are replays
	if got := o.r.Stats().Delivered; got != n {
		t.Fatalf("%d delivered, want %d", got, n)
	}
	// fresh counters for each round
	runs := 0
	run = func() {
		runs++
		for range n {
			q := getPacket()
			q.n = copy(q.buf[dgStartPlain():], pkt)
			b, err := tx.sealPacket(q)
			if err != nil {
				t.Fatal(err)
			}
			m := copy(p.buf[dgStart:], b)
			putPacket(q)
			o.r.dg.handle(p, m, one)
			got, err := o.dev.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			o.dev.Release(got)
		}
	}
	if per := testing.AllocsPerRun(20, run) / n; per > 0.01 {
		t.Errorf("seal, open and deliver: %.3f allocations per packet, want 0", per)
	}
	// and the socket write
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o.r.dg.conn, o.r.dg.pc = conn, ipv4.NewPacketConn(conn)
	tx.addr = sink.LocalAddr().(*net.UDPAddr).AddrPort()
	tx.udpAddr = net.UDPAddrFromAddrPort(tx.addr)
	oq := &outQueue{r: o.r, dep: o.d, q: make(chan *packet, QueueLen)}
	run = func() {
		for i := range n {
			q := getPacket()
			q.n = copy(q.buf[dgStartPlain():], pkt)
			if i%8 != 7 {
				oq.q <- q // sent in the batch of the 8th
				continue
			}
			oq.sendBatch(tx, q)
		}
	}
	for _, gso := range []bool{false, gsoSupported} {
		o.r.dg.gso.Store(gso)
		if per := testing.AllocsPerRun(5, run) / n; per > 0.01 {
			t.Errorf("send (batches of 8, gso %v): %.3f allocations per packet, want 0", gso, per)
		}
	}
	// sealed by the device reader (the path is up), then sent
	oq.tx.Store(tx)
	oq.up.Store(true)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	run = func() {
		for i := range n {
			q := getPacket()
			q.n = copy(q.buf[dgStartPlain():], pkt)
			oq.preseal(q, nonce)
			if q.sealed != tx {
				t.Fatal("not presealed with the path up")
			}
			if i%8 != 7 {
				oq.q <- q
				continue
			}
			oq.sendBatch(q.sealed, q)
		}
	}
	for _, gso := range []bool{false, gsoSupported} {
		o.r.dg.gso.Store(gso)
		if per := testing.AllocsPerRun(5, run) / n; per > 0.01 {
			t.Errorf("preseal and send (batches of 8, gso %v): %.3f allocations per packet, want 0", gso, per)
		}
	}
}

// TestDatagramPipeline: the receive pipeline (read, open on the workers,
// check and deliver in order) delivers every packet of a session in the
// order it was sent, refuses the replays, and allocates nothing per
// packet.
func TestDatagramPipeline(t *testing.T) {
	o := newOfflineDgram(t)
	_, tx := offlineSession(t, o)
	g := o.r.dg
	g.done = make(chan struct{})
	// the socket: groups of sealed datagrams, each a read
	feed := make(chan []*packet, 1)
	consumed := make(chan struct{}, 1)
	g.read = func(ms []ipv4.Message) (int, error) {
		var group []*packet
		select {
		case group = <-feed:
		case <-g.done:
			return 0, net.ErrClosed
		}
		for i, q := range group {
			ms[i].N = copy(ms[i].Buffers[0], q.buf[dgStart:dgStart+dgOverhead+q.n])
			putPacket(q)
		}
		consumed <- struct{}{} // the group's slice is the test's again
		return len(group), nil
	}
	o.r.wg.Add(1)
	go g.receive() // the router's Close (newOffline's cleanup) ends it

	const group = 8 // the test device holds 64
	groups := make([][]*packet, 2)
	for i := range groups {
		groups[i] = make([]*packet, group)
	}
	seq := uint32(0)
	ctx := context.Background()
	pkt := subnettest.UDP(a3, a2, 1, 2, make([]byte, 1000)) // the payload starts with the sequence
	send := func(k int, replay bool) {
		for i := range group {
			q := getPacket()
			q.n = copy(q.buf[dgStartPlain():], pkt)
			binary.BigEndian.PutUint32(q.buf[dgStartPlain()+28:], seq+uint32(i))
			if _, err := tx.sealPacket(q); err != nil {
				t.Fatal(err)
			}
			groups[k][i] = q
		}
		if replay { // the same datagrams again: refused
			dup := groups[k^1]
			for i, q := range groups[k] {
				d := getPacket()
				d.n = q.n
				copy(d.buf[dgStart:], q.buf[dgStart:dgStart+dgOverhead+q.n])
				dup[i] = d
			}
			feed <- groups[k]
			<-consumed
			feed <- dup
			<-consumed
		} else {
			feed <- groups[k]
			<-consumed
		}
	}
	recv := func() {
		for i := range group {
			got, err := o.dev.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.BigEndian.Uint32(got[28:]); n != seq+uint32(i) {
				t.Fatalf("packet %d delivered as %d (out of order)", seq+uint32(i), n)
			}
			o.dev.Release(got)
		}
		seq += group
	}
	for range 50 {
		send(0, true)
		recv()
	}
	// the last replays may still be on their way through the pipeline
	poll(t, "the replays checked", func() bool { return o.r.Stats().Dropped[reasonBadDatagram.String()] >= 50*group })
	st := o.r.Stats()
	if st.Delivered != 50*group || st.Dropped[reasonBadDatagram.String()] != 50*group {
		t.Fatalf("delivered %d, dropped as replays %d; want %d each", st.Delivered, st.Dropped[reasonBadDatagram.String()], 50*group)
	}
	if raceEnabled || testing.Short() {
		return // allocations are not counted under -race
	}
	if per := testing.AllocsPerRun(50, func() { send(0, false); recv() }) / group; per > 0.05 {
		t.Errorf("receive pipeline: %.3f allocations per packet, want 0", per)
	}
}

// TestDatagramPipelineInline: reads of a few datagrams are opened and
// delivered by the reader itself while the pipeline is idle, larger ones
// go through the workers; mixed, and with reads following each other
// before the earlier ones are delivered, every packet arrives once, in
// the order sent, and the replays are refused.
func TestDatagramPipelineInline(t *testing.T) {
	o := newOfflineDgram(t)
	_, tx := offlineSession(t, o)
	g := o.r.dg
	g.done = make(chan struct{})
	feed := make(chan [][]byte, 8)
	g.read = func(ms []ipv4.Message) (int, error) {
		var read [][]byte
		select {
		case read = <-feed:
		case <-g.done:
			return 0, net.ErrClosed
		}
		for i, d := range read {
			ms[i].N = copy(ms[i].Buffers[0], d)
		}
		return len(read), nil
	}
	o.r.wg.Add(1)
	go g.receive() // the router's Close (newOffline's cleanup) ends it

	seq := uint32(0)
	next := func() []byte {
		pkt := subnettest.UDP(a3, a2, 1, 2, binary.BigEndian.AppendUint32(nil, seq))
		seq++
		return sealed(t, tx, pkt)
	}
	ctx := context.Background()
	want, replays := uint32(0), uint64(0)
	recv := func(n int) {
		t.Helper()
		for range n {
			got, err := o.dev.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v := binary.BigEndian.Uint32(got[28:]); v != want {
				t.Fatalf("packet %d delivered as %d (out of order, or a replay)", want, v)
			}
			want++
			o.dev.Release(got)
		}
	}
	for _, tc := range []struct {
		name  string
		reads []int // datagrams per read, fed without waiting in between
	}{
		{"one small read", []int{1}},
		{"small reads one by one", []int{rxInline}},
		{"a large read", []int{rxInline + 1}},
		{"small behind large", []int{rxInline + 5, 1, 2, rxInline + 3, 1}},
		{"large behind small", []int{1, rxInline + 7, rxInline}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 {
				total := 0
				var last [][]byte
				for _, n := range tc.reads {
					read := make([][]byte, n)
					for i := range read {
						read[i] = next()
					}
					feed <- read
					total += n
					last = read
				}
				feed <- last // replayed: refused
				replays += uint64(len(last))
				recv(total)
			}
		})
	}
	poll(t, "the replays counted", func() bool {
		return o.r.Stats().Dropped[reasonBadDatagram.String()] == replays && g.inflight.Load() == 0
	})
	if g.inlineReads.Load() == 0 {
		t.Error("no read was delivered by the reader itself")
	}
	if st := o.r.Stats(); st.Delivered != uint64(want) {
		t.Errorf("delivered %d, want %d", st.Delivered, want)
	}
}

// TestSendNow: a device reader sends a small sealed read itself only
// while its queue has nothing unsent and no one else is sending on it,
// and what it sends arrives in order.
func TestSendNow(t *testing.T) {
	o := newOfflineDgram(t)
	rx, tx := offlineSession(t, o)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o.r.dg.conn, o.r.dg.pc = conn, ipv4.NewPacketConn(conn)
	o.r.dg.gso.Store(gsoSupported)
	tx.addr = sink.LocalAddr().(*net.UDPAddr).AddrPort()
	tx.udpAddr = net.UDPAddrFromAddrPort(tx.addr)
	oq := &outQueue{r: o.r, dep: o.d, q: make(chan *packet, QueueLen)} // no writer runs
	oq.tx.Store(tx)
	oq.up.Store(true)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	seq := uint32(0)
	read := func(n int) []*packet {
		ps := make([]*packet, n)
		for i := range ps {
			ps[i] = getPacket()
			ps[i].n = copy(ps[i].buf[dgStartPlain():], subnettest.UDP(a3, a2, 1, 2, binary.BigEndian.AppendUint32(nil, seq)))
			seq++
			oq.preseal(ps[i], nonce)
		}
		return ps
	}
	buf := make([]byte, 2048)
	want := uint32(0)
	arrive := func(n int) {
		t.Helper()
		_ = sink.SetReadDeadline(time.Now().Add(10 * time.Second))
		for range n {
			m, err := sink.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			p := getPacket()
			s, _, _ := o.r.dg.unseal(buf[:m], p, make([]byte, chacha20poly1305.NonceSize))
			if s != rx {
				t.Fatal("a datagram that does not open")
			}
			if v := binary.BigEndian.Uint32(p.data()[28:]); v != want {
				t.Fatalf("datagram %d arrived as %d", want, v)
			}
			want++
			putPacket(p)
		}
	}

	if !oq.sendNow(read(3)) {
		t.Fatal("an idle queue refused to send at once")
	}
	arrive(3)

	queued := read(1)[0]
	if !oq.send(queued) {
		t.Fatal("queue full")
	}
	if later := read(2); oq.sendNow(later) {
		t.Fatal("sent at once past a packet still queued")
	} else {
		putPacket(later[0])
		putPacket(later[1])
	}
	seq -= 2 // those were not sent: the test's sequence goes on from the queued one

	oq.wmu.Lock()
	oq.sendBatch(queued.sealed, <-oq.q) // the writer's part
	oq.queued.Add(-int64(oq.took))
	if later := read(1); oq.sendNow(later) {
		t.Fatal("sent at once while the writer sends")
	} else {
		putPacket(later[0])
	}
	seq--
	oq.wmu.Unlock()
	arrive(1)

	if !oq.sendNow(read(2)) {
		t.Fatal("the queue is idle again but refused to send at once")
	}
	arrive(2)
	if got := oq.queued.Load(); got != 0 {
		t.Errorf("queued %d, want 0", got)
	}

	if raceEnabled || testing.Short() {
		return // allocations are not counted under -race
	}
	ps := make([]*packet, 2)
	pkt := subnettest.UDP(a3, a2, 1, 2, make([]byte, 100))
	if per := testing.AllocsPerRun(200, func() {
		for i := range ps {
			ps[i] = getPacket()
			ps[i].n = copy(ps[i].buf[dgStartPlain():], pkt)
			oq.preseal(ps[i], nonce)
		}
		if !oq.sendNow(ps) {
			t.Fatal("refused")
		}
	}); per > 0.01 {
		t.Errorf("sendNow: %.3f allocations per read, want 0", per)
	}
}
