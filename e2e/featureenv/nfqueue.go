//go:build linux

package featureenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The netfilter queue protocol (linux/netfilter/nfnetlink_queue.h): just
// what a queue that reads packet headers and gives verdicts needs.
const (
	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	nfqnlMsgPacket  = 0 // NFQNL_MSG_PACKET: kernel → us, one queued packet
	nfqnlMsgVerdict = 1 // NFQNL_MSG_VERDICT: us → kernel
	nfqnlMsgConfig  = 2 // NFQNL_MSG_CONFIG

	nfqaPacketHdr  = 1  // NFQA_PACKET_HDR: packet_id, hw_protocol, hook
	nfqaVerdictHdr = 2  // NFQA_VERDICT_HDR: verdict, packet_id
	nfqaTimestamp  = 4  // NFQA_TIMESTAMP: when the packet arrived (with timestamping on)
	nfqaPayload    = 10 // NFQA_PAYLOAD: the packet, from its IP header

	nfqaCfgCmd    = 1 // NFQA_CFG_CMD
	nfqaCfgParams = 2 // NFQA_CFG_PARAMS: copy range and mode
	nfqaCfgMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN
	nfqaCfgMask   = 4 // NFQA_CFG_MASK
	nfqaCfgFlags  = 5 // NFQA_CFG_FLAGS

	nfqnlCfgCmdBind  = 1      // NFQNL_CFG_CMD_BIND
	nfqnlCopyPacket  = 2      // NFQNL_COPY_PACKET
	nfqaCfgFFailOpen = 1 << 0 // NFQA_CFG_F_FAIL_OPEN
	nfqaCfgFGSO      = 1 << 2 // NFQA_CFG_F_GSO

	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT

	// copyRange is how much of each packet the kernel copies to us: the
	// IPv4 header without options, which holds both addresses.
	copyRange = 20
	// queueMaxLen is how many packets the kernel holds for us before it
	// passes new ones unshaped (the queue fails open); at the
	// environment's rates, far more than a round trip's worth.
	queueMaxLen = 8192
	// queueRcvBuf is the netlink socket's receive buffer (the kernel
	// doubles it): room for thousands of notifications the reader has
	// not read yet. A notification that does not fit passes its packet
	// unshaped (fail open).
	queueRcvBuf = 4 << 20
)

// queueConfig sizes a queue; the zero value is the environment's.
type queueConfig struct {
	maxLen uint32 // queueMaxLen if 0
	rcvBuf int    // queueRcvBuf if 0
	// failClosed drops what the queue cannot take instead of passing it
	// (the kernel's default; for tests that show the difference).
	failClosed bool
}

// nfqueue is one bound netfilter queue: the kernel hands it the packets an
// iptables NFQUEUE rule sends there and holds each until it is given a
// verdict, in any order.
type nfqueue struct {
	f   *os.File // the netlink socket, non-blocking, in the netns it was opened in
	fd  int      // f's descriptor, for ReadNow and poll (f.Fd would make it blocking)
	num uint16
}

// packet is one queued packet: its queue ID and addresses.
type packet struct {
	id       uint32
	src, dst netip.Addr
	arrived  time.Time // when the kernel received it; zero without timestamping
}

// openNFQueue opens a netlink socket in the calling thread's network
// namespace and binds queue num, copying the IPv4 header of each packet.
//
// The queue fails open: a packet it cannot hold (cfg.maxLen reached) or
// notify us of (the socket's buffer full: we fell behind) is accepted
// at once, unshaped, where the kernel's default drops it and costs the
// connection a TCP retransmission (200 ms, a second for a SYN). A lost
// notification shows in QueueStats.Lost; a full queue, in Held.
func openNFQueue(num uint16, cfg queueConfig) (*nfqueue, error) {
	if cfg.maxLen == 0 {
		cfg.maxLen = queueMaxLen
	}
	if cfg.rcvBuf == 0 {
		cfg.rcvBuf = queueRcvBuf
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	// Room for bursts, and no ENOBUFS error: a notification that does
	// not fit is not queued, and its packet is passed (fail open).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.rcvBuf)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	q := &nfqueue{f: os.NewFile(uintptr(fd), "nfqueue"), fd: fd, num: num}
	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, pad, pf (unused since Linux 3.8)
	if err := q.request(nfqnlMsgConfig, attr(nfqaCfgCmd, cmd)); err != nil {
		q.f.Close()
		return nil, fmt.Errorf("bind queue %d: %w", num, err)
	}
	params := binary.BigEndian.AppendUint32(nil, copyRange)
	params = append(params, nfqnlCopyPacket)
	maxLen := binary.BigEndian.AppendUint32(nil, cfg.maxLen)
	f := uint32(nfqaCfgFGSO | nfqaCfgFFailOpen)
	if cfg.failClosed {
		f = nfqaCfgFGSO
	}
	flags := binary.BigEndian.AppendUint32(nil, f)
	mask := binary.BigEndian.AppendUint32(nil, nfqaCfgFGSO|nfqaCfgFFailOpen)
	if err := q.request(nfqnlMsgConfig, attr(nfqaCfgParams, params), attr(nfqaCfgMaxLen, maxLen),
		attr(nfqaCfgFlags, flags), attr(nfqaCfgMask, mask)); err != nil {
		q.f.Close()
		return nil, fmt.Errorf("configure queue %d: %w", num, err)
	}
	return q, nil
}

// Close unbinds the queue (the kernel drops the packets it still holds
// for it). While a goroutine reads it, only that goroutine may close it.
func (q *nfqueue) Close() error { return q.f.Close() }

// request sends a message with NLM_F_ACK and waits for its
// acknowledgement. Only for setup: ReadNow must not be running.
func (q *nfqueue) request(msg int, attrs ...[]byte) error {
	seq := uint32(1)
	if err := q.send(msg, unix.NLM_F_ACK, seq, attrs...); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, err := readFile(q.f, buf)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq != seq || len(m.Data) < 4 {
				continue
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return syscall.Errno(-errno)
			}
			return nil
		}
	}
}

// readFile reads one datagram; a file closed under it reads as
// os.ErrClosed.
func readFile(f *os.File, buf []byte) (int, error) {
	n, err := f.Read(buf)
	if err != nil {
		return 0, fmt.Errorf("read netlink: %w", err)
	}
	return n, nil
}

// send writes one nfnetlink message of the queue subsystem.
func (q *nfqueue) send(msg int, flags uint16, seq uint32, attrs ...[]byte) error {
	if _, err := q.f.Write(q.appendMsg(nil, msg, flags, seq, attrs...)); err != nil {
		return fmt.Errorf("write netlink: %w", err)
	}
	return nil
}

// appendMsg appends one nfnetlink message of the queue subsystem to b.
func (q *nfqueue) appendMsg(b []byte, msg int, flags uint16, seq uint32, attrs ...[]byte) []byte {
	size := unix.SizeofNlMsghdr + 4
	for _, a := range attrs {
		size += len(a)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(size))
	b = binary.NativeEndian.AppendUint16(b, nfnlSubsysQueue<<8|uint16(msg))
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST|flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)  // port ID: the kernel fills it in
	b = append(b, unix.AF_UNSPEC, 0)            // nfgenmsg: family, version
	b = binary.BigEndian.AppendUint16(b, q.num) // nfgenmsg: res_id, the queue
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

// Verdict accepts or drops the packet with the given ID.
func (q *nfqueue) Verdict(id uint32, accept bool) error {
	v := uint32(nfDrop)
	if accept {
		v = nfAccept
	}
	hdr := binary.BigEndian.AppendUint32(nil, v)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	return q.send(nfqnlMsgVerdict, 0, 0, attr(nfqaVerdictHdr, hdr))
}

// Verdicts gives the same verdict to the packets with the given IDs, in
// one write of one message per packet; errors go to onErr.
func (q *nfqueue) Verdicts(ids []uint32, accept bool, onErr func(error)) {
	if len(ids) == 0 {
		return
	}
	v := uint32(nfDrop)
	if accept {
		v = nfAccept
	}
	const perMsg = unix.SizeofNlMsghdr + 4 + unix.SizeofNlAttr + 8
	const batch = 64 << 10 / perMsg
	for len(ids) > 0 {
		n := min(len(ids), batch)
		b := make([]byte, 0, n*perMsg)
		for _, id := range ids[:n] {
			hdr := binary.BigEndian.AppendUint32(nil, v)
			hdr = binary.BigEndian.AppendUint32(hdr, id)
			b = q.appendMsg(b, nfqnlMsgVerdict, 0, 0, attr(nfqaVerdictHdr, hdr))
		}
		if _, err := q.f.Write(b); err != nil {
			onErr(fmt.Errorf("write netlink: %w", err))
		}
		ids = ids[n:]
	}
}

// ReadNow reads what the kernel queued without waiting (unix.EAGAIN
// when there is nothing) and appends the packets to pkts. Packets that
// are not IPv4 are appended with invalid addresses.
func (q *nfqueue) ReadNow(buf []byte, pkts []packet) ([]packet, error) {
	n, _, err := unix.Recvfrom(q.fd, buf, unix.MSG_DONTWAIT)
	if err != nil {
		return pkts, err
	}
	return q.parse(buf[:n], pkts)
}

// parse appends the packets of the datagram b to pkts.
func (q *nfqueue) parse(b []byte, pkts []packet) ([]packet, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return pkts, fmt.Errorf("parse netlink message: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
			continue // acknowledgements of failed verdicts, among others
		}
		var p packet
		var hasID bool
		for typ, val := range attrs(m.Data[4:]) {
			switch typ {
			case nfqaPacketHdr:
				if len(val) >= 4 {
					p.id, hasID = binary.BigEndian.Uint32(val), true
				}
			case nfqaTimestamp:
				if len(val) >= 16 {
					sec, usec := binary.BigEndian.Uint64(val), binary.BigEndian.Uint64(val[8:])
					if sec > 0 && sec < 1<<40 && usec < 1e6 {
						p.arrived = time.Unix(int64(sec), int64(usec)*1e3)
					}
				}
			case nfqaPayload:
				if len(val) >= 20 && val[0]>>4 == 4 {
					p.src = netip.AddrFrom4([4]byte(val[12:16]))
					p.dst = netip.AddrFrom4([4]byte(val[16:20]))
				}
			}
		}
		if hasID {
			pkts = append(pkts, p)
		}
	}
	return pkts, nil
}

// attr encodes one netlink attribute, padded to 4 bytes.
func attr(typ uint16, val []byte) []byte {
	l := unix.SizeofNlAttr + len(val)
	b := binary.NativeEndian.AppendUint16(nil, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// attrs iterates over the netlink attributes in b, by type (flags
// masked out); it stops at the first malformed one.
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofNlAttr {
			l := int(binary.NativeEndian.Uint16(b))
			typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
			if l < unix.SizeofNlAttr || l > len(b) {
				return
			}
			if !yield(typ, b[unix.SizeofNlAttr:l]) {
				return
			}
			l = (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
			if l > len(b) {
				return
			}
			b = b[l:]
		}
	}
}

// QueueStats are the kernel's counters of one netfilter queue, as
// /proc/net/netfilter/nfnetlink_queue shows them in the queue's network
// namespace. They count from the queue's binding: a node restarted has a
// new queue.
type QueueStats struct {
	Held uint64 // queue_total: packets waiting for a verdict now
	// QueueDropped (queue_dropped) counts packets the kernel dropped
	// because Held had reached the queue's maximum length.
	QueueDropped uint64
	// UserDropped (user_dropped) counts packets dropped because their
	// notification could not be put on our socket (its receive buffer was
	// full: the reader had fallen behind).
	UserDropped uint64
	// IDSequence (id_sequence) is the last packet ID the queue gave out:
	// every packet it notified us of, or tried to.
	IDSequence uint64
}

// Lost is how many packets the queue lost without a verdict of ours
// (dropped by the kernel, or passed unshaped where the queue fails
// open): IDSequence counts every packet it tried to notify us of, seen
// those we read. Packets in flight on the socket count as lost.
func (st QueueStats) Lost(seen uint64) uint64 {
	if st.IDSequence <= seen {
		return 0
	}
	return st.IDSequence - seen
}

func (st QueueStats) String() string {
	return fmt.Sprintf("held %d, queue_dropped %d, user_dropped %d, id_sequence %d",
		st.Held, st.QueueDropped, st.UserDropped, st.IDSequence)
}

// parseQueueStats reads the line of queue num in the text of
// /proc/net/netfilter/nfnetlink_queue: queue number, peer port ID,
// queue_total, copy mode, copy range, queue_dropped, user_dropped,
// id_sequence, 1 (net/netfilter/nfnetlink_queue.c, seq_show).
func parseQueueStats(text string, num uint16) (QueueStats, error) {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != strconv.Itoa(int(num)) {
			continue
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return QueueStats{}, fmt.Errorf("nfnetlink_queue line %q: field %d: %w", strings.TrimSpace(line), i+1, err)
			}
			v[i] = n
		}
		return QueueStats{Held: v[2], QueueDropped: v[5], UserDropped: v[6], IDSequence: v[7]}, nil
	}
	return QueueStats{}, fmt.Errorf("nfnetlink_queue: no queue %d (is it bound?)", num)
}

// readQueueStats reads the counters of queue num in the network
// namespace at netns.
func readQueueStats(netns string, num uint16) (QueueStats, error) {
	var text []byte
	if err := inNetns(netns, func() (err error) {
		// thread-self: /proc/self/net is the namespace of the process's
		// main thread, not this one's.
		text, err = os.ReadFile("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	}); err != nil {
		return QueueStats{}, err
	}
	return parseQueueStats(string(text), num)
}

// isClosed reports whether err comes from reading a closed queue.
func isClosed(err error) bool { return errors.Is(err, os.ErrClosed) }
