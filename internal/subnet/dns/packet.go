package dns

import (
	"encoding/binary"
	"net/netip"
)

const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	headerRoom    = ipv4HeaderLen + udpHeaderLen
)

// datagram is a UDP datagram to port 53 parsed out of an IPv4 packet:
// where it came from and its payload (a slice of the packet).
type datagram struct {
	src     netip.Addr
	srcPort uint16
	payload []byte
}

// parseDatagram checks pkt is a whole, unfragmented IPv4/UDP packet to
// port 53 and returns its datagram; ok is false for anything else. The
// checksums are not checked: the packet comes from the allocation's own
// kernel through its TUN, which may leave the UDP checksum to offload.
func parseDatagram(pkt []byte) (d datagram, ok bool) {
	if len(pkt) < ipv4HeaderLen || pkt[0]>>4 != 4 {
		return d, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	switch {
	case ihl < ipv4HeaderLen || total < ihl+udpHeaderLen || total > len(pkt):
		return d, false
	case pkt[9] != 17: // UDP
		return d, false
	case binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0: // more fragments, or an offset
		return d, false
	}
	udp := pkt[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < udpHeaderLen || ulen > len(udp) || binary.BigEndian.Uint16(udp[2:4]) != 53 {
		return d, false
	}
	d.src = netip.AddrFrom4([4]byte(pkt[12:16]))
	d.srcPort = binary.BigEndian.Uint16(udp[0:2])
	d.payload = udp[udpHeaderLen:ulen]
	return d, true
}

// encapsulate fills the first headerRoom bytes of pkt with the IPv4 and
// UDP headers of a datagram from gateway:53 to dst:dstPort whose payload
// is already in pkt[headerRoom:], checksums included, and returns pkt.
func encapsulate(pkt []byte, gateway, dst netip.Addr, dstPort uint16) []byte {
	ip, udp := pkt[:ipv4HeaderLen], pkt[ipv4HeaderLen:headerRoom]
	src4, dst4 := gateway.As4(), dst.As4()
	ip[0] = 0x45 // version 4, 5 words
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(pkt)))
	binary.BigEndian.PutUint16(ip[4:6], 0)      // ID: DF is set, never fragmented
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64                                  // TTL
	ip[9] = 17                                  // UDP
	binary.BigEndian.PutUint16(ip[10:12], 0)
	copy(ip[12:16], src4[:])
	copy(ip[16:20], dst4[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(0, ip)))

	ulen := len(pkt) - ipv4HeaderLen
	binary.BigEndian.PutUint16(udp[0:2], 53)
	binary.BigEndian.PutUint16(udp[2:4], dstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(ulen))
	binary.BigEndian.PutUint16(udp[6:8], 0)
	// Pseudo-header: source, destination, zero, protocol, UDP length.
	s := sum(0, ip[12:20]) + 17 + uint32(ulen)
	c := ^fold(sum(s, pkt[ipv4HeaderLen:]))
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return pkt
}

// sum adds b as big-endian 16-bit words (the Internet checksum, RFC 1071)
// to s without folding.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
