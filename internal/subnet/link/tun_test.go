//go:build linux

package link_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/link"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

const ifname = "dms0"

func handle(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func openTUN(t testing.TB, path string, addr string) subnet.Device {
	t.Helper()
	dev, err := link.OpenTUN(path, ifname, netip.MustParsePrefix(addr))
	if err != nil {
		t.Fatalf("OpenTUN: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

// reader reads packets from a device in the background.
type reader struct {
	pkts chan []byte
	errc chan error
}

func newReader(dev subnet.Device) *reader {
	r := &reader{pkts: make(chan []byte, 1024), errc: make(chan error, 1)}
	go func() {
		n := dev.BatchSize()
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, subnet.Offset+65535)
		}
		sizes := make([]int, n)
		for {
			k, err := dev.Read(bufs, sizes, subnet.Offset)
			if err != nil {
				r.errc <- err
				close(r.pkts)
				return
			}
			for i := range k {
				r.pkts <- bytes.Clone(bufs[i][subnet.Offset : subnet.Offset+sizes[i]])
			}
		}
	}()
	return r
}

// next returns the first packet that match accepts.
func (r *reader) next(t testing.TB, match func(p []byte) bool) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p, ok := <-r.pkts:
			if !ok {
				t.Fatalf("device read: %v", <-r.errc)
			}
			if match(p) {
				return p
			}
		case <-deadline:
			t.Fatal("no matching packet read from the device within 10s")
		}
	}
}

// udpAP is subnettest.UDP between two address-ports.
func udpAP(src, dst netip.AddrPort, data []byte) []byte {
	return subnettest.UDP(src.Addr(), dst.Addr(), src.Port(), dst.Port(), data)
}

func src4(p []byte) netip.Addr { return netip.AddrFrom4([4]byte(p[12:16])) }
func dst4(p []byte) netip.Addr { return netip.AddrFrom4([4]byte(p[16:20])) }

// write writes pkts to dev in one batch, with subnet.Offset headroom.
func write(t testing.TB, dev subnet.Device, pkts ...[]byte) {
	t.Helper()
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(make([]byte, subnet.Offset, subnet.Offset+len(p)), p...)
	}
	if _, err := dev.Write(bufs, subnet.Offset); err != nil {
		t.Fatalf("write to the device: %v", err)
	}
}

func TestOpenTUNConfigures(t *testing.T) {
	subnettest.RequireRoot(t)
	ns := subnettest.NewNetns(t)
	dev := openTUN(t, ns, "10.77.0.2/24")
	if dev.BatchSize() < 1 {
		t.Errorf("BatchSize = %d", dev.BatchSize())
	}
	h := handle(t, ns)
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("no %s in the namespace: %v", ifname, err)
	}
	a := l.Attrs()
	if a.MTU != subnet.MTU {
		t.Errorf("MTU = %d, want %d", a.MTU, subnet.MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Errorf("%s is not up: %v", ifname, a.Flags)
	}
	if l.Type() != "tuntap" {
		t.Errorf("type = %s, want tuntap", l.Type())
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ad := range addrs {
		got = append(got, ad.IPNet.String())
	}
	if len(got) != 1 || got[0] != "10.77.0.2/24" {
		t.Errorf("addresses = %v, want only 10.77.0.2/24 (no IPv6: the subnet is IPv4)", got)
	}
	routes, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	connected := false
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "10.77.0.0/24" {
			connected = true
		}
	}
	if !connected {
		t.Errorf("no route for 10.77.0.0/24 via %s: %v", ifname, routes)
	}
	// Not in dms's own namespace.
	if _, err := netlink.LinkByName(ifname); err == nil {
		t.Errorf("%s exists in the test's own namespace", ifname)
	}
}

// TestUDPBothWays: a datagram a socket in the namespace sends to another
// subnet address is read from the device with the right source; a packet
// written to the device reaches a socket in the namespace.
func TestUDPBothWays(t *testing.T) {
	subnettest.RequireRoot(t)
	ns := subnettest.NewNetns(t)
	dev := openTUN(t, ns, "10.77.0.2/24")
	r := newReader(dev)

	var conn *net.UDPConn
	subnettest.InNetns(t, ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 4000})
		return err
	})
	defer conn.Close()

	// Out of the namespace.
	peer := netip.MustParseAddrPort("10.77.0.9:5000")
	if _, err := conn.WriteToUDPAddrPort([]byte("to the subnet"), peer); err != nil {
		t.Fatal(err)
	}
	p := r.next(t, func(p []byte) bool { return len(p) >= 28 && p[9] == 17 && dst4(p) == peer.Addr() })
	if got := src4(p); got != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("source = %s, want 10.77.0.2", got)
	}
	if got := string(p[28:]); got != "to the subnet" {
		t.Errorf("payload = %q", got)
	}

	// Into the namespace, several in one batch.
	var pkts [][]byte
	for i := range 3 {
		pkts = append(pkts, udpAP(peer, netip.MustParseAddrPort("10.77.0.2:4000"), fmt.Appendf(nil, "from the subnet %d", i)))
	}
	write(t, dev, pkts...)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	for i := range 3 {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d written to the device did not arrive: %v", i, err)
		}
		if from != peer {
			t.Errorf("from = %s, want %s", from, peer)
		}
		if want := fmt.Sprintf("from the subnet %d", i); string(buf[:n]) != want {
			t.Errorf("got %q, want %q", buf[:n], want)
		}
	}
}

// TestResolverRoute: a query to subnet.Resolver, the DNS address every
// subnet shares, from a socket bound to no address, leaves through the
// device from the allocation's address — also in a namespace whose
// default route goes elsewhere (a container's on its Docker network).
func TestResolverRoute(t *testing.T) {
	subnettest.RequireRoot(t)
	ns := subnettest.NewNetns(t)
	h := handle(t, ns)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	other, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(other, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(172, 30, 0, 2), Mask: net.CIDRMask(16, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(other); err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.IPv4(172, 30, 0, 1), LinkIndex: other.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	dev := openTUN(t, ns, "10.77.0.2/24")
	r := newReader(dev)
	var conn *net.UDPConn
	subnettest.InNetns(t, ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", nil)
		return err
	})
	defer conn.Close()
	if _, err := conn.WriteToUDPAddrPort([]byte("query"), netip.AddrPortFrom(subnet.Resolver, 53)); err != nil {
		t.Fatal(err)
	}
	p := r.next(t, func(p []byte) bool { return len(p) >= 28 && p[9] == 17 && dst4(p) == subnet.Resolver })
	if got := src4(p); got != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("source = %s, want 10.77.0.2", got)
	}
}

// TestPing: an ICMP echo request sent in the namespace is read from the
// device; the reply written to the device reaches the pinger.
func TestPing(t *testing.T) {
	subnettest.RequireRoot(t)
	ns := subnettest.NewNetns(t)
	dev := openTUN(t, ns, "10.77.0.2/24")
	r := newReader(dev)
	var conn net.PacketConn
	subnettest.InNetns(t, ns, func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "10.77.0.2")
		return err
	})
	defer conn.Close()
	echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'd', 'm', 's'}
	binary.BigEndian.PutUint16(echo[2:], subnettest.Checksum(echo, 0))
	if _, err := conn.WriteTo(echo, &net.IPAddr{IP: net.IPv4(10, 77, 0, 9)}); err != nil {
		t.Fatal(err)
	}
	p := r.next(t, func(p []byte) bool { return len(p) >= 28 && p[9] == 1 && p[20] == 8 })
	if src4(p) != netip.MustParseAddr("10.77.0.2") || dst4(p) != netip.MustParseAddr("10.77.0.9") {
		t.Errorf("echo request %s -> %s, want 10.77.0.2 -> 10.77.0.9", src4(p), dst4(p))
	}
	reply := bytes.Clone(p[20:])
	reply[0] = 0
	reply[2], reply[3] = 0, 0
	binary.BigEndian.PutUint16(reply[2:], subnettest.Checksum(reply, 0))
	write(t, dev, subnettest.IPv4(dst4(p), src4(p), subnettest.ProtoICMP, reply))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no echo reply: %v", err)
	}
	if from.String() != "10.77.0.9" || n < 8 || buf[0] != 0 || string(buf[8:n]) != "dms" {
		t.Errorf("reply from %s: % x", from, buf[:n])
	}
}

// TestCloseRemoves: closing the device removes the interface, ends a
// blocked Read, and a new TUN of the same name can then be opened.
func TestCloseRemoves(t *testing.T) {
	subnettest.RequireRoot(t)
	ns := subnettest.NewNetns(t)
	goroutines := runtime.NumGoroutine()
	dev, err := link.OpenTUN(ns, ifname, netip.MustParsePrefix("10.77.0.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	r := newReader(dev)
	if _, err := link.OpenTUN(ns, ifname, netip.MustParsePrefix("10.77.0.3/24")); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second %s in the namespace: err = %v, want already exists", ifname, err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.errc:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10s after Close")
	}
	h := handle(t, ns)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := h.LinkByName(ifname)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 10s after Close (err %v)", ifname, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The device's goroutines (wireguard's listeners, the event drain)
	// end with it.
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	openTUN(t, ns, "10.77.0.2/24")
}

// TestTCPAcrossTwoTUNs carries a TCP transfer between two namespaces
// whose TUNs are joined by a pump in userspace: the offloads (large
// segments split on Read, coalesced on Write) keep every byte.
func TestTCPAcrossTwoTUNs(t *testing.T) {
	subnettest.RequireRoot(t)
	const size = 32 << 20
	got, elapsed := tcpAcross(t, size)
	t.Logf("%d MiB in %s: %.0f Mbit/s", size>>20, elapsed, float64(size)*8/elapsed.Seconds()/1e6)
	_ = got
}

func BenchmarkTCPAcrossTwoTUNs(b *testing.B) {
	subnettest.RequireRoot(b)
	const size = 256 << 20
	for b.Loop() {
		_, elapsed := tcpAcross(b, size)
		b.ReportMetric(float64(size)*8/elapsed.Seconds()/1e6, "Mbit/s")
	}
}

func tcpAcross(t testing.TB, size int) (int64, time.Duration) {
	nsA, nsB := subnettest.NewNetns(t), subnettest.NewNetns(t)
	a := openTUN(t, nsA, "10.77.0.2/24")
	b := openTUN(t, nsB, "10.77.0.3/24")
	var wg sync.WaitGroup
	pumpErr := make(chan error, 2)
	wg.Add(2)
	go pump(&wg, a, b, pumpErr)
	go pump(&wg, b, a, pumpErr)

	var ln net.Listener
	subnettest.InNetns(t, nsB, func() (err error) {
		ln, err = net.Listen("tcp4", "10.77.0.3:5001")
		return err
	})
	defer ln.Close()
	var conn net.Conn
	subnettest.InNetns(t, nsA, func() (err error) {
		conn, err = net.DialTimeout("tcp4", "10.77.0.3:5001", 10*time.Second)
		return err
	})
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	sent := sha256.New()
	start := time.Now()
	go func() {
		defer conn.Close()
		for n := 0; n < size; n += len(data) {
			sent.Write(data)
			if _, err := conn.Write(data); err != nil {
				return
			}
		}
	}()
	recv := sha256.New()
	srv.SetReadDeadline(time.Now().Add(2 * time.Minute))
	n, err := io.Copy(recv, srv)
	elapsed := time.Since(start)
	srv.Close()
	if err != nil || n != int64(size) {
		select {
		case perr := <-pumpErr:
			t.Fatalf("received %d of %d bytes: %v (pump: %v)", n, size, err, perr)
		default:
		}
		t.Fatalf("received %d of %d bytes: %v", n, size, err)
	}
	if !bytes.Equal(sent.Sum(nil), recv.Sum(nil)) {
		t.Fatal("the bytes received differ from those sent")
	}
	a.Close()
	b.Close()
	wg.Wait()
	return n, elapsed
}

// pump copies packets from one device to the other until either closes.
func pump(wg *sync.WaitGroup, from, to subnet.Device, errc chan<- error) {
	defer wg.Done()
	n := from.BatchSize()
	full := make([][]byte, n)
	for i := range full {
		full[i] = make([]byte, subnet.Offset+65535)
	}
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for {
		for i := range bufs {
			bufs[i] = full[i]
		}
		k, err := from.Read(bufs, sizes, subnet.Offset)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				errc <- fmt.Errorf("read: %w", err)
			}
			return
		}
		for i := range k {
			bufs[i] = full[i][:subnet.Offset+sizes[i]]
		}
		if _, err := to.Write(bufs[:k], subnet.Offset); err != nil {
			if !errors.Is(err, os.ErrClosed) {
				errc <- fmt.Errorf("write: %w", err)
			}
			return
		}
	}
}

func TestOpenTUNBadInput(t *testing.T) {
	good := netip.MustParsePrefix("10.77.0.2/24")
	tests := []struct {
		name   string
		ns     string
		ifname string
		addr   netip.Prefix
		want   string
	}{
		{"no namespace", "", ifname, good, "no network namespace path"},
		{"missing namespace", "/var/run/netns/dmst-does-not-exist", ifname, good, "no such network namespace"},
		{"invalid prefix", "/proc/self/ns/net", ifname, netip.Prefix{}, "invalid address prefix"},
		{"ipv6", "/proc/self/ns/net", ifname, netip.MustParsePrefix("fd00::2/64"), "not IPv4"},
		{"ipv4 in ipv6", "/proc/self/ns/net", ifname, netip.MustParsePrefix("::ffff:10.77.0.2/120"), "not IPv4"},
		{"network address", "/proc/self/ns/net", ifname, netip.MustParsePrefix("10.77.0.0/24"), "network address"},
		{"broadcast address", "/proc/self/ns/net", ifname, netip.MustParsePrefix("10.77.0.255/24"), "broadcast address"},
		{"host prefix", "/proc/self/ns/net", ifname, netip.MustParsePrefix("10.77.0.2/32"), "/1 to /30"},
		{"no name", "/proc/self/ns/net", "", good, "no interface name"},
		{"long name", "/proc/self/ns/net", "dms0123456789abc", good, "longer than 15"},
		{"bad name", "/proc/self/ns/net", "dms/0", good, "not a valid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev, err := link.OpenTUN(tt.ns, tt.ifname, tt.addr)
			if err == nil {
				dev.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
			if tt.ns != "" && !strings.Contains(err.Error(), tt.ns) {
				t.Errorf("err = %v, does not name the namespace", err)
			}
		})
	}
}

// TestNotANetns: a path that is not a network namespace is refused at
// setns, with the step named.
func TestNotANetns(t *testing.T) {
	subnettest.RequireRoot(t)
	for _, p := range []string{"/proc/self/ns/uts", "/etc/hostname"} {
		_, err := link.OpenTUN(p, ifname, netip.MustParsePrefix("10.77.0.2/24"))
		if err == nil || !strings.Contains(err.Error(), "not a network namespace") || !strings.Contains(err.Error(), "enter the namespace") {
			t.Errorf("%s: err = %v, want not a network namespace", p, err)
		}
	}
}

// TestWriteNeedsHeadroom: a write without room for the offload header is
// refused, not a panic.
func TestWriteNeedsHeadroom(t *testing.T) {
	subnettest.RequireRoot(t)
	dev := openTUN(t, subnettest.NewNetns(t), "10.77.0.2/24")
	p := udpAP(netip.MustParseAddrPort("10.77.0.9:1"), netip.MustParseAddrPort("10.77.0.2:2"), []byte("x"))
	if _, err := dev.Write([][]byte{p}, 0); err == nil || !strings.Contains(err.Error(), "headroom") {
		t.Errorf("err = %v, want a headroom error", err)
	}
}

// TestThreadsStayHome: after many concurrent OpenTUNs, every thread of
// the process is back in the process's own network namespace.
func TestThreadsStayHome(t *testing.T) {
	subnettest.RequireRoot(t)
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for range 4 {
		paths = append(paths, subnettest.NewNetns(t))
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			dev, err := link.OpenTUN(paths[i%len(paths)], fmt.Sprintf("dms%d", i), netip.MustParsePrefix(fmt.Sprintf("10.77.%d.2/24", i)))
			if err != nil {
				t.Error(err)
				return
			}
			dev.Close()
		})
	}
	wg.Wait()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if ns != home {
			t.Errorf("thread %s is in %s, not the process's %s", task.Name(), ns, home)
		}
	}
}

// BenchmarkOpenTUN: what attaching a container to its subnet costs
// (create, configure, close).
func BenchmarkOpenTUN(b *testing.B) {
	subnettest.RequireRoot(b)
	ns := subnettest.NewNetns(b)
	addr := netip.MustParsePrefix("10.77.0.2/24")
	var open, closing time.Duration
	for b.Loop() {
		t0 := time.Now()
		dev, err := link.OpenTUN(ns, ifname, addr)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		dev.Close()
		open, closing = open+t1.Sub(t0), closing+time.Since(t1)
	}
	b.ReportMetric(float64(open.Microseconds())/float64(b.N), "µs-open/op")
	b.ReportMetric(float64(closing.Microseconds())/float64(b.N), "µs-close/op")
}
