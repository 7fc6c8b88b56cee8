//go:build linux

package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/internal/subnet"
)

// A VM guest's end of the subnet is a virtio-net device whose frames QEMU
// exchanges over a datagram socket, one Ethernet frame per datagram
// (-netdev socket,fd=N; QEMU 7.2's dgram netdev, local.type=fd, works as
// well). GuestPair makes the socket pair: QEMU gets one end, the data
// path the other, wrapped as a subnet.Device that speaks Ethernet to the
// guest and plain IPv4 packets to the router.
//
// The guest's link is a point-to-point Ethernet: every other address of
// the subnet (the gateway included) answers ARP with GatewayMAC(), so every
// frame the guest sends is for the device, and the router decides where
// its packet goes. Nothing else is emulated: no DHCP (the guest init sets
// the address), no IPv6 (dropped, like every ethertype but IPv4 and ARP).

// gatewayMAC is GatewayMAC's.
var gatewayMAC = [6]byte{0x02, 0x64, 0x6d, 0x73, 0x00, 0x01}

// GatewayMAC is the Ethernet address of every address of a guest's subnet
// but its own, as the guest sees it: locally administered, unicast,
// 02:64:6d:73:00:01.
func GatewayMAC() net.HardwareAddr { return append(net.HardwareAddr(nil), gatewayMAC[:]...) }

// GuestMAC is the Ethernet address of the guest whose subnet address is
// addr: locally administered, unicast, 02:67 and the four bytes of the
// address (02:67:0a:4d:00:02 for 10.77.0.2), so never GatewayMAC(). The
// executor gives it to QEMU's virtio-net device (mac=).
func GuestMAC(addr netip.Addr) net.HardwareAddr {
	a := addr.Unmap().As4()
	return net.HardwareAddr{0x02, 0x67, a[0], a[1], a[2], a[3]}
}

// Ethernet framing.
const (
	ethHeader = 14
	ethIPv4   = 0x0800
	ethARP    = 0x0806
	arpLen    = 28
	maxFrame  = ethHeader + 65535
	// sockBuf is the send buffer of each end: a few hundred full-size
	// frames queued toward the guest or from it.
	sockBuf = 1 << 20
)

// GuestPair returns a connected pair of unix datagram sockets for a VM
// guest with address addr (10.77.0.2/24) on a subnet whose gateway is
// gateway: qemu is the end for QEMU's -netdev socket (pass it to the child
// process; the caller closes it once QEMU holds it), dev the data path's.
//
// dev reads the guest's IPv4 packets (its Ethernet header stripped,
// Ethernet padding trimmed), answers the guest's ARP requests for any
// other address of the subnet with GatewayMAC(), and drops every other
// frame. It writes packets to the guest in frames from GatewayMAC() to
// GuestMAC(addr). Writes never block: a packet the guest's queue has no
// room for (a stalled or paused VM) is dropped, as a NIC would. With
// offset >= 14 both directions use the headroom before each packet for
// the Ethernet header and copy nothing.
//
// When QEMU ends, writes fail and Read blocks until Close.
func GuestPair(addr netip.Prefix, gateway netip.Addr) (qemu *os.File, dev subnet.Device, err error) {
	if !addr.IsValid() || !addr.Addr().Is4() || addr.Bits() > 30 {
		return nil, nil, fmt.Errorf("link: guest address %s is not an IPv4 address with a prefix of at most 30 bits", addr)
	}
	if !gateway.Is4() || !addr.Contains(gateway) || gateway == addr.Addr() {
		return nil, nil, fmt.Errorf("link: gateway %s is not another address of %s", gateway, addr.Masked())
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("link: socketpair: %w", err)
	}
	for _, fd := range fds {
		// Above the default (wmem_max) only as root; the default of about
		// 200 KiB is still some 90 frames.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
		}
	}
	// Ours is nonblocking, so the runtime's poller waits for it (Close
	// then wakes a blocked Read). QEMU's stays blocking: QEMU sets its
	// own mode, and the two ends are separate open files.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("link: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "subnet-guest")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("link: %w", err)
	}
	d := &guestDevice{file: f, conn: rc, prefix: addr.Masked(), own: addr.Addr().As4()}
	copy(d.guestMAC[:], GuestMAC(addr.Addr()))
	d.readFn, d.writeFn = d.readFrames, d.writeFrames
	return os.NewFile(uintptr(fds[1]), "subnet-guest-qemu"), d, nil
}

// guestDevice is the data path's end of a guest's socket pair.
type guestDevice struct {
	file     *os.File
	conn     syscall.RawConn
	prefix   netip.Prefix
	own      [4]byte
	guestMAC [6]byte

	closeOnce sync.Once
	closeErr  error

	// Read's state, for readFn (one Read at a time).
	rmu      sync.Mutex
	rbufs    [][]byte
	rsizes   []int
	roff     int
	rn       int
	rerr     error
	readFn   func(fd uintptr) bool
	rscratch []byte // a frame when offset < ethHeader, made on first need

	// Write's state, for writeFn; also guards the ARP reply.
	wmu      sync.Mutex
	wbufs    [][]byte
	woff     int
	wn       int
	werr     error
	writeFn  func(fd uintptr) bool
	wscratch []byte
	arp      [ethHeader + arpLen]byte
}

// BatchSize implements subnet.Device: one Read drains up to this many
// frames the socket has queued.
func (d *guestDevice) BatchSize() int { return 64 }

// Read implements subnet.Device.
func (d *guestDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	if len(sizes) < len(bufs) || offset < 0 {
		return 0, errors.New("link: Read: fewer sizes than buffers, or a negative offset")
	}
	for _, b := range bufs {
		if len(b) <= offset {
			return 0, errors.New("link: Read: a buffer has no room after the offset")
		}
	}
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.rbufs, d.rsizes, d.roff, d.rn, d.rerr = bufs, sizes, offset, 0, nil
	err := d.conn.Read(d.readFn)
	n, rerr := d.rn, d.rerr
	d.rbufs, d.rsizes = nil, nil
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, fmt.Errorf("link: guest read: %w", err)
	}
	return 0, nil
}

// readFrames receives frames until the buffers are full or none is
// queued; it returns false (wait for the socket) when it got no packet.
func (d *guestDevice) readFrames(fd uintptr) bool {
	for d.rn < len(d.rbufs) {
		buf := d.rbufs[d.rn]
		direct := d.roff >= ethHeader
		var frame []byte
		if direct {
			frame = buf[d.roff-ethHeader:]
		} else {
			if d.rscratch == nil {
				d.rscratch = make([]byte, maxFrame)
			}
			frame = d.rscratch[:min(maxFrame, ethHeader+len(buf)-d.roff)]
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)), unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return d.rn > 0
		default:
			d.rerr = errno
			return true
		}
		n := int(r)
		if n > len(frame) { // longer than the buffer: dropped whole
			continue
		}
		kind, size := d.frame(frame[:n])
		switch kind {
		case frameIPv4:
			if !direct {
				copy(buf[d.roff:], frame[ethHeader:ethHeader+size])
			}
			d.rsizes[d.rn] = size
			d.rn++
		case frameARP:
			d.wmu.Lock()
			d.arpReply(frame[:n])
			d.send(fd, d.arp[:]) // no room: the guest asks again
			d.wmu.Unlock()
		}
	}
	return true
}

// What a frame from the guest is.
const (
	frameDrop = iota
	frameIPv4 // an IPv4 packet of the returned size after the header
	frameARP  // an ARP request the device answers
)

// frame classifies a frame from the guest.
func (d *guestDevice) frame(f []byte) (kind, size int) {
	if len(f) < ethHeader {
		return frameDrop, 0
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case ethIPv4:
		p := f[ethHeader:]
		if len(p) < 20 || p[0]>>4 != 4 || p[0]&0x0f < 5 {
			return frameDrop, 0
		}
		total := int(binary.BigEndian.Uint16(p[2:4]))
		if total < int(p[0]&0x0f)*4 || total > len(p) {
			return frameDrop, 0
		}
		return frameIPv4, total // trailing bytes are Ethernet padding
	case ethARP:
		a := f[ethHeader:]
		if len(a) < arpLen ||
			binary.BigEndian.Uint16(a[0:2]) != 1 || // Ethernet
			binary.BigEndian.Uint16(a[2:4]) != ethIPv4 ||
			a[4] != 6 || a[5] != 4 ||
			binary.BigEndian.Uint16(a[6:8]) != 1 { // request
			return frameDrop, 0
		}
		target := [4]byte(a[24:28])
		if target == d.own || !d.prefix.Contains(netip.AddrFrom4(target)) {
			return frameDrop, 0
		}
		return frameARP, 0
	}
	return frameDrop, 0
}

// arpReply writes into d.arp the answer to the ARP request req (a frame
// classified frameARP): the target address is at GatewayMAC().
func (d *guestDevice) arpReply(req []byte) {
	a := req[ethHeader:]
	out := d.arp[:]
	copy(out[0:6], a[8:14]) // to the asker's hardware address
	copy(out[6:12], gatewayMAC[:])
	binary.BigEndian.PutUint16(out[12:14], ethARP)
	r := out[ethHeader:]
	binary.BigEndian.PutUint16(r[0:2], 1)
	binary.BigEndian.PutUint16(r[2:4], ethIPv4)
	r[4], r[5] = 6, 4
	binary.BigEndian.PutUint16(r[6:8], 2) // reply
	copy(r[8:14], gatewayMAC[:])
	copy(r[14:18], a[24:28]) // the address asked for
	copy(r[18:24], a[8:14])
	copy(r[24:28], a[14:18])
}

// Write implements subnet.Device: each packet goes to the guest in one
// frame, or is dropped if the guest's queue is full.
func (d *guestDevice) Write(bufs [][]byte, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	if offset < 0 {
		return 0, errors.New("link: Write: negative offset")
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.wbufs, d.woff, d.wn, d.werr = bufs, offset, 0, nil
	err := d.conn.Write(d.writeFn)
	n, werr := d.wn, d.werr
	d.wbufs = nil
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, fmt.Errorf("link: guest write: %w", err)
	}
	return n, nil
}

// writeFrames sends every packet of d.wbufs; it never waits.
func (d *guestDevice) writeFrames(fd uintptr) bool {
	for ; d.wn < len(d.wbufs); d.wn++ {
		b := d.wbufs[d.wn]
		if len(b) < d.woff {
			d.werr = errors.New("a buffer is shorter than the offset")
			return true
		}
		pkt := b[d.woff:]
		var frame []byte
		if d.woff >= ethHeader {
			frame = b[d.woff-ethHeader:]
		} else {
			if len(pkt) > maxFrame-ethHeader {
				continue // no IPv4 packet is that long
			}
			if d.wscratch == nil {
				d.wscratch = make([]byte, maxFrame)
			}
			frame = d.wscratch[:ethHeader+len(pkt)]
			copy(frame[ethHeader:], pkt)
		}
		copy(frame[0:6], d.guestMAC[:])
		copy(frame[6:12], gatewayMAC[:])
		binary.BigEndian.PutUint16(frame[12:14], ethIPv4)
		if errno := d.send(fd, frame); errno != 0 && errno != unix.EAGAIN && errno != unix.ENOBUFS {
			d.werr = errno
			return true
		}
	}
	return true
}

// send sends one datagram without waiting and returns the error number
// (EAGAIN: no room).
func (d *guestDevice) send(fd uintptr, b []byte) unix.Errno {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		if errno != unix.EINTR {
			return errno
		}
	}
}

// Close implements subnet.Device: a blocked Read returns an error. The
// guest's link stays until QEMU closes its end.
func (d *guestDevice) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.file.Close() })
	return d.closeErr
}
