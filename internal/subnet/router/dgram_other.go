//go:build !linux

package router

import "net"

// growBuffers gives the datagram socket large kernel buffers.
func growBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(dgSocketBuffer)
	_ = c.SetWriteBuffer(dgSocketBuffer)
}
