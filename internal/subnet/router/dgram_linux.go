package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// growBuffers gives the datagram socket large kernel buffers (a burst of
// a TCP flow is thousands of packets): SetReadBuffer is capped by
// net.core.rmem_max, the FORCE options (root or CAP_NET_ADMIN) are not.
func growBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(dgSocketBuffer)
	_ = c.SetWriteBuffer(dgSocketBuffer)
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, dgSocketBuffer)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, dgSocketBuffer)
	})
}

// gsoSupported: Linux cuts a UDP_SEGMENT write into datagrams.
const gsoSupported = true

// writeGSO sends b, datagrams of seg bytes back to back (the last may be
// shorter), in one write.
func (g *dgram) writeGSO(b []byte, seg int, to netip.AddrPort) error {
	if len(b) <= seg { // one datagram
		_, err := g.conn.WriteToUDPAddrPort(b, to)
		return err
	}
	var oob [24]byte // unix.CmsgSpace(2)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
	_, _, err := g.conn.WriteMsgUDPAddrPort(b, oob[:unix.CmsgSpace(2)], to)
	return err
}
