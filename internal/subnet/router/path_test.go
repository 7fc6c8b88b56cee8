package router

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// fast is a timing for tests: probes every few tens of milliseconds.
var fast = timing{
	tick:          10 * time.Millisecond,
	probeEvery:    50 * time.Millisecond,
	probeTimeout:  50 * time.Millisecond,
	maxMissed:     3,
	downProbeMax:  100 * time.Millisecond,
	setupRetry:    100 * time.Millisecond,
	setupRetryMax: 200 * time.Millisecond,
	rekeyAfter:    time.Hour,
	rejectAfter:   2 * time.Hour,
	overlap:       time.Hour,
	idleAfter:     time.Hour,
}

// newTimedNode is a node with a datagram socket on 127.0.0.1 and tm as
// its path timing.
func newTimedNode(t testing.TB, tm timing) *node {
	t.Helper()
	n := &node{h: newHost(t)}
	n.r = newTimedRouter(t, n, tm)
	return n
}

// newTimedRouter is a new router on n's host (a restart of n's router).
func newTimedRouter(t testing.TB, n *node, tm timing) *Router {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Host: n.h, Log: testLogger(t), Datagram: conn, timing: &tm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// pair is two timed nodes in one deployment "dep", a on A and b on B,
// with their paths up both ways.
func pair(t *testing.T, tm timing) (A, B *node, da, db *subnettest.Device) {
	t.Helper()
	A, B = newTimedNode(t, tm), newTimedNode(t, tm)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db = attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	exchange(t, da, db, 0)
	pathUp(t, A, B)
	pathUp(t, B, A)
	return A, B, da, db
}

// pathUp waits until n's path to m in "dep" is up.
func pathUp(t testing.TB, n, m *node) {
	t.Helper()
	o := outQ(t, n, "dep", m.h.ID())
	poll(t, "the datagram path up", func() bool { return o.tx.Load() != nil && o.up.Load() })
}

// exchange sends a packet each way and waits for each.
func exchange(t testing.TB, da, db *subnettest.Device, i int) {
	t.Helper()
	for _, tc := range []struct {
		from, to *subnettest.Device
		pkt      []byte
	}{
		{da, db, subnettest.UDP(a2, a3, 1, 2, []byte{byte(i), byte(i >> 8), 'a'})},
		{db, da, subnettest.UDP(a3, a2, 2, 1, []byte{byte(i), byte(i >> 8), 'b'})},
	} {
		inject(t, tc.from, tc.pkt)
		got := recv(t, tc.to)
		for isLate(got) {
			got = recv(t, tc.to)
		}
		if !bytes.Equal(got, tc.pkt) {
			t.Fatalf("delivered % x, want % x", got, tc.pkt)
		}
	}
}

// isLate reports whether pkt is one of eventually's, arriving late.
func isLate(pkt []byte) bool {
	return len(pkt) >= 28 && pkt[9] == 17 && pkt[22] == 0 && pkt[23] == 7
}

// eventually injects a packet from from to to until one arrives (the
// ones sent into a path not yet known to be down are lost).
func eventually(t testing.TB, from, to *subnettest.Device, src, dst netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		pkt := subnettest.UDP(src, dst, 7, 7, []byte{byte(i)})
		inject(t, from, pkt)
		ctx := testCtx(t, 20*time.Millisecond)
		if _, err := to.Recv(ctx); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no packet got through")
		}
	}
}

// TestDatagramBlocked: a UDP path that starts dropping everything (a
// firewall) is noticed by the probes; the packets go back to the stream
// (a fallback, counted) and come back to datagrams when the path does.
func TestDatagramBlocked(t *testing.T) {
	A, B, da, db := pair(t, fast)
	oa, ob := outQ(t, A, "dep", B.h.ID()), outQ(t, B, "dep", A.h.ID())
	B.r.dg.blackhole.Store(true) // nothing reaches B's UDP port
	eventually(t, da, db, a2, a3)
	poll(t, "A's path down", func() bool { return !oa.up.Load() })
	// B's probes reach A, A's answers do not reach B
	poll(t, "B's path down", func() bool { return !ob.up.Load() })
	if A.r.Stats().Fallbacks < 1 || B.r.Stats().Fallbacks < 1 {
		t.Fatalf("fallbacks: A %d, B %d, want ≥ 1 each", A.r.Stats().Fallbacks, B.r.Stats().Fallbacks)
	}
	sentA, sentB := A.r.dg.sent.Load(), B.r.dg.sent.Load()
	fwdA := A.r.Stats().Forwarded
	for i := range 30 {
		exchange(t, da, db, i)
	}
	if A.r.dg.sent.Load() != sentA || B.r.dg.sent.Load() != sentB {
		t.Errorf("datagrams sent on a path that is down: A %d, B %d", A.r.dg.sent.Load()-sentA, B.r.dg.sent.Load()-sentB)
	}
	if got := A.r.Stats().Forwarded - fwdA; got != 30 {
		t.Errorf("A forwarded %d packets, want 30 (on the stream)", got)
	}
	// the firewall opens: the path comes back
	B.r.dg.blackhole.Store(false)
	pathUp(t, A, B)
	pathUp(t, B, A)
	asDatagrams(t, A, func() {
		for i := range 10 {
			exchange(t, da, db, i)
		}
	}, 10)
}

// asDatagrams runs f and checks that n's packets meanwhile, at least
// min, all went as datagrams (a packet of the test still queued may go
// too).
func asDatagrams(t testing.TB, n *node, f func(), least uint64) {
	t.Helper()
	before := n.r.Stats()
	f()
	// the sender counts a batch just after it has gone
	var fwd, dg uint64
	poll(t, "the counts", func() bool {
		after := n.r.Stats()
		fwd, dg = after.Forwarded-before.Forwarded, after.Datagrams-before.Datagrams
		return fwd >= least
	})
	if dg < least || fwd != dg {
		t.Errorf("%d packets forwarded, %d as datagrams; want ≥ %d, all as datagrams", fwd, dg, least)
	}
}

// TestDatagramBlockedStall: the path is blocked and the sender sends a
// single packet (a flow that stalls, its retransmissions far apart):
// with periodic probes too slow to matter, the missed probe is followed
// by the next ones at once and the path goes down.
func TestDatagramBlockedStall(t *testing.T) {
	tm := fast
	tm.probeEvery = time.Hour
	A, B, da, _ := pair(t, tm)
	oa := outQ(t, A, "dep", B.h.ID())
	B.r.dg.blackhole.Store(true)
	inject(t, da, subnettest.UDP(a2, a3, 1, 2, []byte("lost")))
	poll(t, "A's path down", func() bool { return !oa.up.Load() })
	if f := A.r.Stats().Fallbacks; f != 1 {
		t.Errorf("%d fallbacks, want 1", f)
	}
}

// TestDatagramBlockedFromStart: a path blocked before the first probe is
// never used; the packets take the stream and no fallback is counted
// (the path was never up).
func TestDatagramBlockedFromStart(t *testing.T) {
	A, B := newTimedNode(t, fast), newTimedNode(t, fast)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	A.r.dg.blackhole.Store(true)
	B.r.dg.blackhole.Store(true)
	da, db := attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	oa := outQ(t, A, "dep", B.h.ID())
	exchange(t, da, db, 0)
	poll(t, "A's sessions set up", func() bool { return A.r.Stats().Sessions >= 3 }) // both sides' first ones and a fresh one
	for i := range 30 {
		exchange(t, da, db, i)
	}
	if oa.up.Load() || A.r.dg.sent.Load() != 0 || B.r.dg.sent.Load() != 0 {
		t.Errorf("datagrams on a blocked path: up %v, sent A %d, B %d", oa.up.Load(), A.r.dg.sent.Load(), B.r.dg.sent.Load())
	}
	if f := A.r.Stats().Fallbacks; f != 0 {
		t.Errorf("%d fallbacks, want 0", f)
	}
}

// TestDatagramPeerRestart: B's router restarts on the same host (the
// libp2p connection stays): its sessions and its UDP port are new. A's
// probes go unanswered, its packets take the stream and it sets up a
// fresh session, on which the datagrams flow again.
func TestDatagramPeerRestart(t *testing.T) {
	A, B, da, _ := pair(t, fast)
	_ = B.r.Close()
	B.r = newTimedRouter(t, B, fast)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	B.r.SetTable(tb)
	db := attach(t, B, "dep", "b")
	sessions := A.r.Stats().Sessions
	eventually(t, da, db, a2, a3)
	pathUp(t, A, B)
	if got := A.r.Stats().Sessions; got <= sessions {
		t.Fatalf("A keyed %d sessions, want more than %d", got, sessions)
	}
	recvd := B.r.dg.received.Load()
	for i := range 10 {
		exchange(t, da, db, i)
	}
	if B.r.dg.received.Load()-recvd < 10 {
		t.Errorf("B's new router received %d datagrams, want ≥ 10", B.r.dg.received.Load()-recvd)
	}
}

// TestDatagramLostSession: B forgets the deployment and gets it back
// (same router, same port): A's datagrams name a session B no longer
// has, and B, seeing them, sets up a fresh one at once — with probes too
// slow to matter.
func TestDatagramLostSession(t *testing.T) {
	slow := fast
	slow.probeEvery, slow.probeTimeout = time.Hour, time.Hour
	A, B, da, _ := pair(t, slow)
	t.Cleanup(func() {
		if t.Failed() {
			oa := outQ(t, A, "dep", B.h.ID())
			s := oa.tx.Load()
			t.Logf("A %+v\nB %+v\nA up %v tx %p remote %d addr %s; A sent %d recv %d, B sent %d recv %d; B port %d",
				A.r.Stats(), B.r.Stats(), oa.up.Load(), s, s.remote, s.addr, A.r.dg.sent.Load(), A.r.dg.received.Load(), B.r.dg.sent.Load(), B.r.dg.received.Load(), B.r.dg.port)
		}
	})
	B.r.Remove("dep")
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	B.r.SetTable(tb)
	db := attach(t, B, "dep", "b")
	before := B.r.Stats().Dropped["unauthorized"]
	eventually(t, da, db, a2, a3)
	if B.r.Stats().Dropped["unauthorized"] == before {
		t.Error("no datagram for the lost session was seen")
	}
	pathUp(t, A, B)
	asDatagrams(t, A, func() {
		for i := range 10 {
			exchange(t, da, db, i)
		}
	}, 10)
}

// TestDatagramRekey: sessions are replaced while packets flow, and none
// is lost; a datagram of a replaced session is accepted during the
// overlap, refused after it.
func TestDatagramRekey(t *testing.T) {
	tm := fast
	tm.rekeyAfter = 30 * time.Millisecond
	A, B, da, db := pair(t, tm)
	start := A.r.Stats().Sessions + B.r.Stats().Sessions
	oa := outQ(t, A, "dep", B.h.ID())
	old := oa.tx.Load()
	for i := 0; A.r.Stats().Sessions+B.r.Stats().Sessions < start+4; i++ {
		if i > 5000 {
			t.Fatal("no rekey")
		}
		exchange(t, da, db, i)
	}
	if oa.tx.Load() == old {
		t.Fatal("A still sends on its first session")
	}
	// the overlap: B still opens the old session's datagrams
	send := udpTo(t, B)
	inject := func(what string) []byte {
		return sealed(t, old, subnettest.UDP(a2, a3, 1, 2, []byte(what)))
	}
	B.r.dg.mu.Lock()
	_, kept := (*B.r.dg.sessions.Load())[old.remote]
	B.r.dg.mu.Unlock()
	if kept {
		send(inject("overlap"))
		if got := recv(t, db); !isUDP(got, a2, a3, "overlap") {
			t.Fatalf("delivered % x", got)
		}
	}
	// past the overlap, or too old, it is gone
	B.r.dg.expire(time.Now().Add(2*time.Hour), time.Now())
	before := B.r.Stats().Dropped["unauthorized"]
	send(inject("late"))
	dropped(t, B, "unauthorized", before+1)
}

// TestReadBackoff: the waits after read errors in a row.
func TestReadBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, 0}, {1, 0}, {2, time.Millisecond}, {3, 2 * time.Millisecond}, {11, 512 * time.Millisecond},
		{12, time.Second}, {13, time.Second}, {1000, time.Second},
	} {
		if got := readBackoff(tc.n); got != tc.want {
			t.Errorf("readBackoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// TestReadErrors: a read error that persists is counted and waited on,
// and does not keep Close from returning.
func TestReadErrors(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{log: slog.New(slog.DiscardHandler), timing: fast}
	g, err := newDgram(r, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r.dg = g
	calls := make(chan struct{}, 100)
	g.read = func([]ipv4.Message) (int, error) {
		select {
		case calls <- struct{}{}:
		default:
		}
		return 0, net.UnknownNetworkError("broken")
	}
	r.wg.Add(1)
	go g.receive()
	poll(t, "5 read errors", func() bool { return r.Stats().ReadErrors >= 5 })
	g.closeDone.Do(func() { close(g.done) })
	r.wg.Wait()
	n := r.Stats().ReadErrors
	// the backoff grows: far fewer than a spinning loop's millions
	if n > 1000 {
		t.Errorf("%d read errors counted before Close: no backoff", n)
	}
}

// testLogger logs to the test at debug level when DMS_TEST_DEBUG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DMS_TEST_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
