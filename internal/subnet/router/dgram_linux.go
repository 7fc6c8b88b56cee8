package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"syscall"
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

// enableGRO asks the kernel to hand the socket runs of datagrams of one
// sender as one (UDP_GRO): a sender's segmented write that reaches it
// whole (a veth, loopback) or datagrams the receiving interface coalesced.
// The read then carries the segment size in a control message (groSize).
// As wireguard-go, only on Linux 5.12 and later (UDP_GRO had bugs before).
func enableGRO(c *net.UDPConn) bool {
	if !kernelAtLeast(5, 12) {
		return false
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	})
	return ok
}

// groOOB is the room for the control message of a read with UDP_GRO.
const groOOB = 24 // unix.CmsgSpace(4)

// groSize is the segment size a read's control messages name, 0 if none
// (the read is one datagram).
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO {
			// the kernel puts an int; older ones a 16-bit value
			switch d := oob[unix.CmsgLen(0):l]; {
			case len(d) >= 4:
				return int(binary.NativeEndian.Uint32(d))
			case len(d) >= 2:
				return int(binary.NativeEndian.Uint16(d))
			}
			return 0
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// groCmsg is the control message a UDP_GRO read carries for segments of
// seg bytes (tests).
func groCmsg(seg int) []byte {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(seg))
	return oob
}

// kernelAtLeast reports whether the running kernel is major.minor or later.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	maj, mnr, ok := parseRelease(unix.ByteSliceToString(u.Release[:]))
	return ok && (maj > major || maj == major && mnr >= minor)
}

// parseRelease reads the major and minor numbers of a kernel release
// ("6.1.0-18-amd64").
func parseRelease(r string) (major, minor int, ok bool) {
	num := func() (int, bool) {
		n, digits := 0, 0
		for digits < len(r) && digits < 6 && r[digits] >= '0' && r[digits] <= '9' {
			n = n*10 + int(r[digits]-'0')
			digits++
		}
		r = r[digits:]
		return n, digits > 0
	}
	if major, ok = num(); !ok || len(r) == 0 || r[0] != '.' {
		return 0, 0, false
	}
	r = r[1:]
	minor, ok = num()
	return major, minor, ok
}

// readyWaiter polls the datagram socket for something to read, without
// blocking, until a deadline (busy polling, busypoll.go).
type readyWaiter struct {
	rc    syscall.RawConn
	clock *poller
	end   int64
	ready bool
	fds   [1]unix.PollFd
	fn    func(uintptr) bool // check, made once
}

// newReadyWaiter returns the busy poll of c: wait(end) polls until c has
// something to read (true) or p's clock passes end (false).
func newReadyWaiter(c *net.UDPConn, p *poller) func(end int64) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	w := &readyWaiter{rc: rc, clock: p}
	w.fn = w.check
	return w.wait
}

func (w *readyWaiter) wait(end int64) (bool, error) {
	w.end, w.ready = end, false
	err := w.rc.Read(w.fn) // fails at once if the read deadline has passed
	return w.ready, err
}

// check polls fd (under the socket's read lock) until it is readable or
// the deadline passes, yielding the processor between polls.
func (w *readyWaiter) check(fd uintptr) bool {
	w.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	for {
		n, err := unix.Poll(w.fds[:], 0)
		if n > 0 {
			w.ready = true // readable, or an error the read will tell
			return true
		}
		if err != nil && err != unix.EINTR || w.clock.now() >= w.end {
			return true
		}
		runtime.Gosched()
	}
}
