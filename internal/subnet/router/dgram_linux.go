package router

import (
	"net"

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
