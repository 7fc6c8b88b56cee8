package router

import (
	"encoding/binary"

	"github.com/dmsnet/dms/internal/subnet"
)

// A TUN with offloads coalesces the TCP segments of a flow that one
// write carries (GRO, in wireguard's tun): the later segments are copied
// into the buffer of the first one of a run, which needs the room for
// them (up to 64 KiB) or the run ends there. A packet's own buffer has
// room for one packet, so the batcher copies the first segment of each
// run it foresees into a large buffer of its own: the first packet of a
// write, the first after a flow's segment with PSH (which ends a run),
// after another flow's, and where the run would pass 64 KiB. Without
// that, every packet after the first run of a write (a write of 128
// packets holds about three runs of 64 KiB; iperf3's writes set PSH
// every ~100 segments) reached the kernel's TCP one by one.
const (
	// runMax is the most bytes of one run: an IPv4 packet's length, less
	// the room wireguard's check keeps.
	runMax = 65535 - subnet.Offset
	// maxHeads is the most large buffers a batcher keeps (a write of
	// dgBatch*2 full segments of one flow needs 3).
	maxHeads = 8
)

// batcher gathers the packets a reader (a stream, the datagram socket)
// delivers to one device, to write them in one batch.
type batcher struct {
	batch []*packet
	bufs  [][]byte
	heads [][]byte // large buffers for the runs' first packets, made as needed
	dep   *deployment
	att   *attachment
	// release, when set, takes each packet back after its batch was
	// written (the stream reader's packets; the datagram reader reuses
	// its own).
	release func(*packet)
}

func newBatcher(n int, release func(*packet)) *batcher {
	return &batcher{batch: make([]*packet, 0, n), bufs: make([][]byte, 0, n), release: release}
}

// add queues p for att of deployment d, writing what was queued first
// when the device changes or the batch is full.
func (b *batcher) add(r *Router, d *deployment, att *attachment, p *packet) {
	if att != b.att || len(b.batch) >= max(min(cap(b.batch), att.dev.BatchSize()), 1) {
		b.flush(r)
		b.dep, b.att = d, att
	}
	b.batch = append(b.batch, p)
}

// flush writes the queued packets to their device in one batch.
func (b *batcher) flush(r *Router) {
	if len(b.batch) == 0 {
		return
	}
	for _, p := range b.batch {
		b.bufs = append(b.bufs, p.withHead())
	}
	if len(b.batch) > 1 {
		b.giveHeads()
	}
	if _, err := b.att.dev.Write(b.bufs, subnet.Offset); err == nil {
		r.count.delivered.Add(uint64(len(b.batch)))
		b.dep.count.delivered.Add(uint64(len(b.batch)))
	}
	for i, p := range b.batch {
		if b.release != nil {
			b.release(p)
		}
		b.batch[i], b.bufs[i] = nil, nil
	}
	b.batch, b.bufs = b.batch[:0], b.bufs[:0]
}

// giveHeads copies the packets of the batch that will start a run of
// coalesced TCP segments into large buffers, at most maxHeads of them. It
// follows the rules of wireguard's GRO (tcpPacketsCanCoalesce): a segment
// joins the run of its flow when it carries the next sequence number,
// the same IP header fields and TCP options (the timestamp), no more
// payload than the run's first and the run has not ended (a segment with
// PSH or a shorter one ends it) nor would pass runMax. A wrong guess
// costs only coalescing: the TUN writes a segment it cannot append to a
// run as it is.
func (b *batcher) giveHeads() {
	var runs [maxHeads]tcpRun
	heads := 0
	for i, p := range b.batch {
		pkt := p.data()
		s, ok := parseTCP(pkt)
		if !ok {
			continue // not TCP data: never coalesced
		}
		r := -1
		for j := heads - 1; j >= 0; j-- {
			if sameFlow(runs[j].head, pkt) {
				r = j
				break
			}
		}
		if r >= 0 && runs[r].join(pkt, s) {
			continue
		}
		if heads == maxHeads {
			return
		}
		if heads == len(b.heads) {
			b.heads = append(b.heads, make([]byte, 0, subnet.Offset+65535))
		}
		b.bufs[i] = append(b.heads[heads][:subnet.Offset], pkt...)
		runs[heads] = tcpRun{head: pkt, size: len(pkt), gso: s.payload, next: s.seq + uint32(s.payload), ended: s.psh}
		heads++
	}
}

// tcpRun is a run of segments the TUN will coalesce into its head's buffer.
type tcpRun struct {
	head  []byte // its first segment
	size  int    // its bytes so far
	gso   int    // the head's payload: the most a later segment may carry
	next  uint32 // the sequence number that follows it
	ended bool   // PSH, or a shorter segment, was appended
}

// join appends the segment pkt (parsed as s) of the run's flow to the run
// if the TUN would, and reports whether it did.
func (r *tcpRun) join(pkt []byte, s tcpInfo) bool {
	h := r.head
	hi, pi := int(h[0]&0x0f)*4, s.ihl
	if r.ended || s.seq != r.next || s.payload > r.gso || r.size+s.payload > runMax ||
		h[1] != pkt[1] || h[6]&0xe0 != pkt[6]&0xe0 || h[8] != pkt[8] || // TOS, flags, TTL
		hi != pi || string(h[hi+12:hi+13]) != string(pkt[pi+12:pi+13]) || // TCP header length
		string(h[hi+20:hi+s.doff]) != string(pkt[pi+20:pi+s.doff]) { // options
		return false
	}
	r.size += s.payload
	r.next += uint32(s.payload)
	r.ended = s.psh || s.payload < r.gso
	return true
}

// tcpInfo is what giveHeads needs of a TCP segment.
type tcpInfo struct {
	ihl, doff int // IP and TCP header lengths
	payload   int
	seq       uint32
	psh       bool
}

// parseTCP reads pkt as an IPv4 TCP segment that carries data; ok is
// false for anything else.
func parseTCP(pkt []byte) (s tcpInfo, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
		return s, false
	}
	s.ihl = int(pkt[0]&0x0f) * 4
	if s.ihl < 20 || len(pkt) < s.ihl+20 {
		return s, false
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	s.doff = int(pkt[s.ihl+12]>>4) * 4
	if total > len(pkt) || s.doff < 20 || total <= s.ihl+s.doff {
		return s, false
	}
	s.payload = total - s.ihl - s.doff
	s.seq = binary.BigEndian.Uint32(pkt[s.ihl+4:])
	s.psh = pkt[s.ihl+13]&0x08 != 0
	return s, true
}

// sameFlow reports whether the IPv4 TCP segments a and b (checked by
// parseTCP) belong to one flow: addresses and ports.
func sameFlow(a, b []byte) bool {
	ia, ib := int(a[0]&0x0f)*4, int(b[0]&0x0f)*4
	return string(a[12:20]) == string(b[12:20]) && string(a[ia:ia+4]) == string(b[ib:ib+4])
}
