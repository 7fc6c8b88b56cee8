package router

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dmsnet/dms/internal/subnet"
)

// reason is why a packet was dropped.
type reason uint8

const (
	reasonSpoofed reason = iota
	reasonNoRoute
	reasonGateway
	reasonQueueFull
	reasonUnauthorized
	reasonMalformed
	reasonBadDatagram
	nReasons
)

var reasonNames = [nReasons]string{"spoofed", "no-route", "gateway", "queue-full", "unauthorized", "malformed", "bad-datagram"}

func (r reason) String() string { return reasonNames[r] }

// counters are the packet counts of a node or a deployment.
type counters struct {
	forwarded, delivered atomic.Uint64
	datagrams            atomic.Uint64
	sessions, fallbacks  atomic.Uint64
	readErrors           atomic.Uint64 // the router's only
	dropped              [nReasons]atomic.Uint64
}

func (c *counters) stats() Stats {
	s := Stats{Forwarded: c.forwarded.Load(), Delivered: c.delivered.Load(), Datagrams: c.datagrams.Load(),
		Sessions: c.sessions.Load(), Fallbacks: c.fallbacks.Load(), ReadErrors: c.readErrors.Load(), Dropped: make(map[string]uint64, nReasons)}
	for i := range c.dropped {
		s.Dropped[reasonNames[i]] = c.dropped[i].Load()
	}
	return s
}

// maxPacket is the largest packet the data path carries: the MTU and
// some slack for a sender whose interface is a little larger.
const maxPacket = subnet.MTU + 80

// tagRoom is the AEAD tag a datagram adds to a packet sealed in place.
const tagRoom = 16

// packet is a buffer from the free list: the packet is buf[Offset:Offset+n].
type packet struct {
	// the room after the packet takes a datagram's AEAD tag (dgram.go)
	buf [subnet.Offset + maxPacket + tagRoom]byte
	n   int
	// sealed is the session the device reader sealed the packet for
	// (dgram.go: it is then a datagram at buf[dgStart:], of
	// dgOverhead+n bytes), nil while it is plain.
	sealed *session
}

func (p *packet) data() []byte { return p.buf[subnet.Offset : subnet.Offset+p.n] }

// withHead is the packet with its headroom, as Device.Write takes it.
func (p *packet) withHead() []byte { return p.buf[:subnet.Offset+p.n] }

var free = sync.Pool{New: func() any { return new(packet) }}

func getPacket() *packet { return free.Get().(*packet) }

func putPacket(p *packet) {
	p.sealed = nil
	free.Put(p)
}

// view is a deployment's table compiled for the packet path: immutable
// once stored.
type view struct {
	gateway, bcast uint32
	gwAddr         netip.Addr
	names          map[string]netip.Addr
	index          map[uint32]int32 // address → routes
	routes         []route
	peers          map[peer.ID]*outQueue // the remote peers of the table
}

// route is where one allocation's address lives: attached here (att),
// routed here but not attached (both nil), or on a peer (out).
type route struct {
	peer peer.ID
	att  *attachment
	out  *outQueue
}

// verdict is what to do with a packet.
type verdict uint8

const (
	verdictDrop  verdict = iota
	verdictLocal         // write to route.att's device
	verdictPeer          // queue to route.out
	verdictDNS           // serve with Config.DNS
)

// header checks that pkt is an IPv4 packet with a sane header and returns
// its length by the header (at most len(pkt)), source and destination.
func header(pkt []byte) (n int, src, dst uint32, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, 0, 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	n = int(pkt[2])<<8 | int(pkt[3])
	if ihl < 20 || n < ihl || n > len(pkt) {
		return 0, 0, 0, false
	}
	src = uint32(pkt[12])<<24 | uint32(pkt[13])<<16 | uint32(pkt[14])<<8 | uint32(pkt[15])
	dst = uint32(pkt[16])<<24 | uint32(pkt[17])<<16 | uint32(pkt[18])<<8 | uint32(pkt[19])
	return n, src, dst, true
}

// isDNS reports whether pkt (a sane IPv4 header) is an unfragmented UDP
// datagram or TCP segment to port 53.
func isDNS(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	frag := (uint16(pkt[6])<<8 | uint16(pkt[7])) & 0x3fff // MF and offset
	return (pkt[9] == 17 && len(pkt) >= ihl+8 || pkt[9] == 6 && len(pkt) >= ihl+20) &&
		frag == 0 && pkt[ihl+2] == 0 && pkt[ihl+3] == 53
}

// fromDevice decides a packet the guest of a sent: its length by the
// header, what to do and the route it goes to.
func (v *view) fromDevice(a *attachment, pkt []byte) (int, verdict, reason, *route) {
	n, src, dst, ok := header(pkt)
	if !ok {
		return 0, verdictDrop, reasonMalformed, nil
	}
	if i, ok := v.index[src]; !ok || v.routes[i].att != a {
		return n, verdictDrop, reasonSpoofed, nil
	}
	switch {
	case dst == v.gateway || dst == resolver:
		if isDNS(pkt[:n]) {
			return n, verdictDNS, 0, nil
		}
		return n, verdictDrop, reasonGateway, nil
	case dst == v.bcast || dst>>28 >= 0xe: // broadcast, multicast, class E
		return n, verdictDrop, reasonNoRoute, nil
	}
	i, ok := v.index[dst]
	if !ok {
		return n, verdictDrop, reasonNoRoute, nil
	}
	rt := &v.routes[i]
	switch {
	case rt.att != nil:
		return n, verdictLocal, 0, rt
	case rt.out != nil:
		return n, verdictPeer, 0, rt
	}
	return n, verdictDrop, reasonNoRoute, nil
}

// fromPeer decides a packet that peer from sent on its stream.
func (v *view) fromPeer(from peer.ID, pkt []byte) (int, verdict, reason, *route) {
	n, src, dst, ok := header(pkt)
	if !ok {
		return 0, verdictDrop, reasonMalformed, nil
	}
	if i, ok := v.index[src]; !ok || v.routes[i].peer != from {
		return n, verdictDrop, reasonSpoofed, nil
	}
	if i, ok := v.index[dst]; ok && v.routes[i].att != nil {
		return n, verdictLocal, 0, &v.routes[i]
	}
	return n, verdictDrop, reasonNoRoute, nil
}

// resolver is subnet.Resolver, the address every subnet's DNS answers at
// besides its gateway.
var resolver = u32(subnet.Resolver)

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
