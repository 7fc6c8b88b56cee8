//go:build !linux

package router

import (
	"errors"
	"net"
	"net/netip"
)

// growBuffers gives the datagram socket large kernel buffers.
func growBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(dgSocketBuffer)
	_ = c.SetWriteBuffer(dgSocketBuffer)
}

// gsoSupported: only Linux has UDP_SEGMENT.
const gsoSupported = false

func (g *dgram) writeGSO([]byte, int, netip.AddrPort) error {
	return errors.New("no UDP segmentation offload")
}

// enableGRO: only Linux has UDP_GRO.
func enableGRO(*net.UDPConn) bool { return false }

const groOOB = 0

func groSize([]byte) int { return 0 }

// newReadyWaiter: busy polling is Linux's only.
func newReadyWaiter(*net.UDPConn, *poller) func(int64) (bool, error) { return nil }
