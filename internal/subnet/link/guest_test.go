//go:build linux

package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/subnet"
)

var (
	testAddr    = netip.MustParsePrefix("10.77.0.2/24")
	testGateway = netip.MustParseAddr("10.77.0.1")
	askerMAC    = net.HardwareAddr{0x02, 0x67, 10, 77, 0, 2}
)

// pair returns the device and QEMU's end as a connection with deadlines.
func pair(t testing.TB) (*net.UnixConn, subnet.Device) {
	t.Helper()
	q, dev, err := GuestPair(testAddr, testGateway)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.FileConn(q)
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); c.Close() })
	return c.(*net.UnixConn), dev
}

// ethFrame is an Ethernet frame to dst from src of type typ.
func ethFrame(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(typ>>8), byte(typ))
	return append(f, payload...)
}

// arpRequest is the guest's ARP request for target.
func arpRequest(op uint16, sender, target string) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:], askerMAC)
	s, t := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(a[14:], s[:])
	copy(a[24:], t[:])
	return ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, askerMAC, 0x0806, a)
}

// guestIPv4 is an IPv4 packet (header checksum not filled: nothing here checks
// it) of total length n from src to dst.
func guestIPv4(src, dst string, n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8], p[9] = 64, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	for i := 20; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// guestReader runs the device's Read loop like the router does and sends
// copies of the packets on a channel.
func guestReader(t testing.TB, dev subnet.Device, offset int) <-chan []byte {
	t.Helper()
	out := make(chan []byte, 64)
	go func() {
		defer close(out)
		bufs := make([][]byte, dev.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, offset+subnet.MTU)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := dev.Read(bufs, sizes, offset)
			if err != nil {
				return
			}
			for i := range n {
				out <- append([]byte(nil), bufs[i][offset:offset+sizes[i]]...)
			}
		}
	}()
	return out
}

func recvFrame(t *testing.T, c *net.UnixConn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 65536)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("QEMU's end: %v", err)
	}
	return b[:n]
}

func recvPacket(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatal("Read failed")
		}
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet from the device")
	}
	return nil
}

func TestGuestMAC(t *testing.T) {
	mac := GuestMAC(netip.MustParseAddr("10.77.0.2"))
	if mac.String() != "02:67:0a:4d:00:02" {
		t.Errorf("GuestMAC = %s", mac)
	}
	for _, m := range []net.HardwareAddr{mac, GatewayMAC()} {
		if m[0]&2 == 0 || m[0]&1 != 0 {
			t.Errorf("%s is not a locally administered unicast address", m)
		}
	}
	if bytes.Equal(mac, GatewayMAC()) || bytes.Equal(GuestMAC(netip.MustParseAddr("100.109.115.0")), GatewayMAC()) {
		t.Error("a guest MAC equals the gateway's")
	}
}

func TestGuestPairBadArgs(t *testing.T) {
	for _, c := range []struct{ addr, gw string }{
		{"10.77.0.2/24", "10.78.0.1"},
		{"10.77.0.2/24", "10.77.0.2"},
		{"10.77.0.2/32", "10.77.0.2"},
		{"fd00::2/64", "fd00::1"},
		{"10.77.0.2/24", "fd00::1"},
	} {
		q, dev, err := GuestPair(netip.MustParsePrefix(c.addr), netip.MustParseAddr(c.gw))
		if err == nil {
			q.Close()
			dev.Close()
			t.Errorf("GuestPair(%s, %s) succeeded", c.addr, c.gw)
		}
	}
}

func TestGuestARP(t *testing.T) {
	c, dev := pair(t)
	guestReader(t, dev, subnet.Offset)
	for _, tc := range []struct {
		name  string
		frame []byte
		reply bool
	}{
		{"gateway", arpRequest(1, "10.77.0.2", "10.77.0.1"), true},
		{"another allocation", arpRequest(1, "10.77.0.2", "10.77.0.9"), true},
		{"probe", arpRequest(1, "0.0.0.0", "10.77.0.3"), true},
		{"own address", arpRequest(1, "0.0.0.0", "10.77.0.2"), false},
		{"outside the subnet", arpRequest(1, "10.77.0.2", "10.78.0.1"), false},
		{"a reply", arpRequest(2, "10.77.0.2", "10.77.0.1"), false},
		{"short", arpRequest(1, "10.77.0.2", "10.77.0.1")[:30], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			// A request that is answered follows, so the next reply tells
			// whether this one was.
			marker := arpRequest(1, "10.77.0.2", "10.77.0.254")
			if _, err := c.Write(marker); err != nil {
				t.Fatal(err)
			}
			got := recvFrame(t, c)
			answered := marker
			if tc.reply {
				answered = tc.frame
			}
			want := ethFrame(askerMAC, GatewayMAC(), 0x0806, nil)
			want = append(want, 0, 1, 8, 0, 6, 4, 0, 2)
			want = append(want, GatewayMAC()...)
			want = append(want, answered[14+24:14+28]...)
			want = append(want, askerMAC...)
			want = append(want, answered[14+14:14+18]...)
			if !bytes.Equal(got, want) {
				t.Errorf("reply\n%x, want\n%x", got, want)
			}
			if tc.reply {
				recvFrame(t, c) // the marker's
			}
		})
	}
}

func TestGuestRead(t *testing.T) {
	for _, offset := range []int{subnet.Offset, 0, 14, 20} {
		c, dev := pair(t)
		packets := guestReader(t, dev, offset)
		to := net.HardwareAddr(GatewayMAC())
		p := guestIPv4("10.77.0.2", "10.77.0.3", 84)
		frames := [][]byte{
			ethFrame(to, askerMAC, 0x86dd, make([]byte, 60)),                          // IPv6: dropped
			ethFrame(to, askerMAC, 0x8100, p),                                         // VLAN: dropped
			ethFrame(to, askerMAC, 0x0800, append([]byte{0x65}, p[1:]...)),            // version 6
			ethFrame(to, askerMAC, 0x0800, p[:60]),                                    // shorter than its length
			ethFrame(to, askerMAC, 0x0800, guestIPv4("10.77.0.2", "10.77.0.3", 2000)), // larger than the buffers
			ethFrame(to, askerMAC, 0x0800, p[:10]),                                    // no header
			{1, 2, 3},                                                                 // no Ethernet header
			ethFrame(to, askerMAC, 0x0800, p),
			ethFrame(to, askerMAC, 0x0800, append(guestIPv4("10.77.0.2", "10.77.0.4", 28), make([]byte, 18)...)), // padded
		}
		for _, f := range frames {
			if _, err := c.Write(f); err != nil {
				t.Fatal(err)
			}
		}
		if got := recvPacket(t, packets); !bytes.Equal(got, p) {
			t.Errorf("offset %d: first packet %x, want %x", offset, got, p)
		}
		if got, want := recvPacket(t, packets), guestIPv4("10.77.0.2", "10.77.0.4", 28); !bytes.Equal(got, want) {
			t.Errorf("offset %d: padded packet %x, want %x", offset, got, want)
		}
	}
}

func TestGuestWrite(t *testing.T) {
	for _, offset := range []int{subnet.Offset, 0, 14} {
		c, dev := pair(t)
		p1, p2 := guestIPv4("10.77.0.3", "10.77.0.2", 1420), guestIPv4("10.77.0.1", "10.77.0.2", 40)
		bufs := [][]byte{append(make([]byte, offset), p1...), append(make([]byte, offset), p2...)}
		if n, err := dev.Write(bufs, offset); n != 2 || err != nil {
			t.Fatalf("offset %d: Write = %d, %v", offset, n, err)
		}
		for _, p := range [][]byte{p1, p2} {
			want := ethFrame(GuestMAC(testAddr.Addr()), GatewayMAC(), 0x0800, p)
			if got := recvFrame(t, c); !bytes.Equal(got, want) {
				t.Errorf("offset %d: frame %x…, want %x…", offset, got[:min(len(got), 40)], want[:40])
			}
		}
	}
}

func TestGuestWriteFullQueueDrops(t *testing.T) {
	_, dev := pair(t) // QEMU's end never reads
	buf := append(make([]byte, subnet.Offset), guestIPv4("10.77.0.3", "10.77.0.2", subnet.MTU)...)
	for i := range 10000 { // far more than the socket holds
		if n, err := dev.Write([][]byte{buf}, subnet.Offset); n != 1 || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
}

func TestGuestClose(t *testing.T) {
	c, dev := pair(t)
	packets := guestReader(t, dev, subnet.Offset)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-packets:
		if ok {
			t.Fatal("a packet after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := dev.Write([][]byte{make([]byte, 40)}, 0); err == nil {
		t.Error("Write after Close succeeded")
	}
	_ = c
}

func TestGuestQEMUGone(t *testing.T) {
	c, dev := pair(t)
	c.Close()
	buf := append(make([]byte, subnet.Offset), guestIPv4("10.77.0.3", "10.77.0.2", 40)...)
	var err error
	for range 2 {
		_, err = dev.Write([][]byte{buf}, subnet.Offset)
	}
	if err == nil {
		t.Error("Write to a guest whose QEMU is gone succeeded")
	}
}

func TestGuestNoAllocs(t *testing.T) {
	c, dev := pair(t)
	frame := ethFrame(GatewayMAC(), askerMAC, 0x0800, guestIPv4("10.77.0.2", "10.77.0.3", 1420))
	bufs := [][]byte{make([]byte, subnet.Offset+subnet.MTU)}
	sizes := []int{0}
	out := make([]byte, 2048)
	wbuf := [][]byte{append(make([]byte, subnet.Offset), guestIPv4("10.77.0.3", "10.77.0.2", 1420)...)}
	var failed error
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(frame); err != nil {
			failed = err
		}
		if n, err := dev.Read(bufs, sizes, subnet.Offset); n != 1 || err != nil {
			failed = errors.Join(failed, err, errors.New("no packet"))
		}
		if _, err := dev.Write(wbuf, subnet.Offset); err != nil {
			failed = err
		}
		if _, err := c.Read(out); err != nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per packet each way, want 0", allocs)
	}
}

func BenchmarkGuestRoundTrip(b *testing.B) {
	q, dev, err := GuestPair(testAddr, testGateway)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	defer q.Close()
	frame := ethFrame(GatewayMAC(), askerMAC, 0x0800, guestIPv4("10.77.0.2", "10.77.0.3", 1420))
	bufs := [][]byte{make([]byte, subnet.Offset+subnet.MTU)}
	sizes := []int{0}
	out := make([]byte, 2048)
	wbuf := [][]byte{append(make([]byte, subnet.Offset), guestIPv4("10.77.0.3", "10.77.0.2", 1420)...)}
	b.SetBytes(2 * 1420)
	b.ReportAllocs()
	for b.Loop() {
		q.Write(frame)
		dev.Read(bufs, sizes, subnet.Offset)
		dev.Write(wbuf, subnet.Offset)
		q.Read(out)
	}
}

func FuzzGuestFrame(f *testing.F) {
	f.Add(arpRequest(1, "10.77.0.2", "10.77.0.1"))
	f.Add(arpRequest(1, "10.77.0.2", "10.77.0.2"))
	f.Add(ethFrame(GatewayMAC(), askerMAC, 0x0800, guestIPv4("10.77.0.2", "10.77.0.3", 60)))
	f.Add(ethFrame(GatewayMAC(), askerMAC, 0x0800, append(guestIPv4("10.77.0.2", "10.77.0.3", 28), 0, 0)))
	f.Add(ethFrame(GatewayMAC(), askerMAC, 0x86dd, make([]byte, 40)))
	f.Add([]byte{})
	q, dev, err := GuestPair(testAddr, testGateway)
	if err != nil {
		f.Fatal(err)
	}
	q.Close()
	defer dev.Close()
	d := dev.(*guestDevice)
	f.Fuzz(func(t *testing.T, frame []byte) {
		kind, size := d.frame(frame)
		switch kind {
		case frameIPv4:
			if size < 20 || 14+size > len(frame) || frame[14]>>4 != 4 {
				t.Fatalf("IPv4 packet of %d bytes from a frame of %d", size, len(frame))
			}
		case frameARP:
			d.arpReply(frame)
			r := d.arp[14:]
			target := netip.AddrFrom4([4]byte(r[14:18]))
			if !testAddr.Contains(target) || target == testAddr.Addr() || !bytes.Equal(r[8:14], GatewayMAC()) {
				t.Fatalf("ARP reply %x", d.arp)
			}
		case frameDrop:
		default:
			t.Fatalf("kind %d", kind)
		}
	})
}
