//go:build linux

package featureenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// nsPair is two network namespaces the test creates, joined by a veth
// pair: a at 10.251.0.1, b at 10.251.0.2.
type nsPair struct {
	a, b         string // /run/netns/... paths
	addrA, addrB netip.Addr
	subnet       netip.Prefix
}

func newNSPair(t testing.TB) nsPair {
	t.Helper()
	if err := hostTools(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	var b [4]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	na, nb := "dmsfe-test-"+id+"-a", "dmsfe-test-"+id+"-b"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", na)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", na).Run() })
	ip("netns", "add", nb)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nb).Run() })
	ip("link", "add", "fe"+id, "netns", na, "type", "veth", "peer", "name", "fe"+id+"b", "netns", nb)
	ip("-n", na, "addr", "add", "10.251.0.1/24", "dev", "fe"+id)
	ip("-n", nb, "addr", "add", "10.251.0.2/24", "dev", "fe"+id+"b")
	for _, ns := range []string{na, nb} {
		ip("-n", ns, "link", "set", "lo", "up")
	}
	ip("-n", na, "link", "set", "fe"+id, "up")
	ip("-n", nb, "link", "set", "fe"+id+"b", "up")
	return nsPair{a: "/run/netns/" + na, b: "/run/netns/" + nb,
		addrA: netip.MustParseAddr("10.251.0.1"), addrB: netip.MustParseAddr("10.251.0.2"),
		subnet: netip.MustParsePrefix("10.251.0.0/24")}
}

// udpIn opens a UDP socket on addr:0 inside the namespace at ns.
func udpIn(t testing.TB, ns string, addr netip.Addr) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := inNetns(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr.String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// echo answers every datagram pc receives.
func echo(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

// roundTrip sends one datagram from c to to and waits up to wait for the
// echo: its round trip, or an error on timeout.
func roundTrip(c net.PacketConn, to net.Addr, wait time.Duration) (time.Duration, error) {
	start := time.Now()
	if _, err := c.WriteTo([]byte(start.String()), to); err != nil {
		return 0, err
	}
	c.SetReadDeadline(start.Add(wait))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		if string(buf[:n]) == start.String() {
			return time.Since(start), nil
		}
	}
}

// The shaper holds packets between regions for half the round trip each
// way, passes them within a region, drops them across a partition or to
// and from a disconnected node, and lets them through again once healed.
func TestShaper(t *testing.T) {
	p := newNSPair(t)
	s := shapedPair(t, p, 40*time.Millisecond, nil, p.addrA, p.addrB)
	ctx := context.Background()
	srv := udpIn(t, p.b, p.addrB)
	go echo(srv)
	cli := udpIn(t, p.a, p.addrA)

	minRTT := func(n int) time.Duration {
		t.Helper()
		best := time.Hour
		for range n {
			rtt, err := roundTrip(cli, srv.LocalAddr(), 2*time.Second)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			best = min(best, rtt)
		}
		return best
	}
	if rtt := minRTT(5); rtt < 40*time.Millisecond || rtt > 60*time.Millisecond {
		t.Errorf("between regions: round trip %s, want 40ms to 60ms", rtt)
	}
	if tr := s.traffic(p.addrA); tr.Delayed == 0 {
		t.Errorf("traffic of a = %+v, want packets delayed", tr)
	}

	// TCP: two small writes in a row, then the answer: one round trip
	// (holding packets on their way out, where they count against the
	// socket's TCP Small Queues budget, made it one and a half).
	if rtt := tcpTwoWrites(t, p); rtt < 40*time.Millisecond || rtt > 55*time.Millisecond {
		t.Errorf("TCP between regions, two writes then the answer: %s, want 40ms to 55ms", rtt)
	}

	// Within a region, packets stay in the kernel: the queue sees none.
	s.setRegion(p.addrB, "eu")
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.traffic(p.addrB)
	if rtt := minRTT(5); rtt > 10*time.Millisecond {
		t.Errorf("within a region: round trip %s, want under 10ms", rtt)
	}
	if after := s.traffic(p.addrB); after != before {
		t.Errorf("within a region, the queue saw packets: %+v, then %+v", before, after)
	}
	s.setRegion(p.addrB, "us")
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}

	s.setParted("us", "eu", true)
	if _, err := roundTrip(cli, srv.LocalAddr(), 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("across a partition: %v, want a timeout", err)
	}
	if tr := s.traffic(p.addrB); tr.Dropped == 0 {
		t.Errorf("traffic of b = %+v, want packets dropped", tr)
	}
	s.setParted("eu", "us", false)
	minRTT(1)

	// Disconnected, in another region or in the same one: the rules drop
	// every packet both ways.
	for _, region := range []string{"us", "eu"} {
		s.setRegion(p.addrB, region)
		if err := s.setCut(ctx, p.addrB, true); err != nil {
			t.Fatal(err)
		}
		if _, err := roundTrip(cli, srv.LocalAddr(), 300*time.Millisecond); !isTimeout(err) {
			t.Errorf("to a disconnected node in %s: %v, want a timeout", region, err)
		}
		if err := s.healAll(ctx); err != nil {
			t.Fatal(err)
		}
		minRTT(1)
	}
	s.setRegion(p.addrB, "us")
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Loss: about half of the packets each way are lost, so about three
	// round trips in four fail.
	s.setLink(0, 0.5)
	lost := 0
	const tries = 40
	for range tries {
		if _, err := roundTrip(cli, srv.LocalAddr(), 50*time.Millisecond); err != nil {
			lost++
		}
	}
	if lost < tries/2 || lost == tries {
		t.Errorf("with loss 0.5 each way: %d of %d round trips lost, want about %d", lost, tries, tries*3/4)
	}
}

// A queue closed while packets are held: nothing blocks, and the
// namespace's packets are no longer shaped (the kernel drops them).
func TestShaperCloseWhileHolding(t *testing.T) {
	p := newNSPair(t)
	s := shapedPair(t, p, 2*time.Second, nil, p.addrB)
	srv := udpIn(t, p.b, p.addrB)
	cli := udpIn(t, p.a, p.addrA)
	for range 10 {
		cli.WriteTo([]byte("x"), srv.LocalAddr())
	}
	poll.Eventually(t, 5*time.Second, "the datagrams held", func() bool { return s.traffic(p.addrB).Delayed >= 10 })
	done := make(chan struct{})
	go func() { s.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close blocked with packets held")
	}
}

// tcpTwoWrites connects from a to a server in b that answers once it has
// read two lines, writes them one at a time, and returns the least time,
// over a few tries, from the first write to the answer.
func tcpTwoWrites(t *testing.T, p nsPair) time.Duration {
	t.Helper()
	var ln net.Listener
	if err := inNetns(p.b, func() (err error) {
		ln, err = net.Listen("tcp4", p.addrB.String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					for range 2 {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
					}
					c.Write([]byte("ok\n"))
				}
			}()
		}
	}()
	var c net.Conn
	if err := inNetns(p.a, func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	best := time.Hour
	for range 5 {
		start := time.Now()
		c.Write([]byte("one\n"))
		c.Write([]byte("two\n"))
		c.SetReadDeadline(start.Add(2 * time.Second))
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("TCP answer: %v", err)
		}
		best = min(best, time.Since(start))
	}
	return best
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// shapedPair puts p's ends in regions eu and us of a new shaper with the
// round trip rtt, closed when the test ends, and shapes the packets that
// reach the ends at (p.addrA, p.addrB or both); configure, when not nil,
// sets the shaper up before it attaches.
func shapedPair(tb testing.TB, p nsPair, rtt time.Duration, configure func(*shaper), at ...netip.Addr) *shaper {
	tb.Helper()
	s := newShaper(rtt, 0, tb.Logf)
	tb.Cleanup(s.close)
	s.setRegion(p.addrA, "eu")
	s.setRegion(p.addrB, "us")
	if configure != nil {
		configure(s)
	}
	for _, addr := range at {
		ns := p.a
		if addr == p.addrB {
			ns = p.b
		}
		if err := s.attach(context.Background(), addr, ns, p.subnet); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}
