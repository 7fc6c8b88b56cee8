package dns

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"

	"github.com/dmsnet/dms/internal/subnet"
)

// DNS over TCP at the gateway (a resolver's retry of a truncated answer,
// or a client that asks over TCP) is answered by a stateless responder:
// no connection is kept. A SYN gets a SYN-ACK whose sequence number is a
// keyed hash of the connection and the client's own (so the gateway
// knows its number again later, as a SYN cookie); a segment that
// acknowledges it and holds one whole query, with its 2-byte length,
// gets the answer in segments of at most tcpMSS bytes, the last with FIN
// (the gateway closes after one answer); the client's FIN gets its ACK.
// Anything else (a query split over segments, a second query on the
// connection, a reset) gets nothing: the client times out and retries.

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10

	tcpHeaderLen = 20
	// tcpMSS is the most a segment of the gateway carries: the subnet's
	// MTU less the IPv4 and TCP headers (the client's interface has the
	// same MTU).
	tcpMSS = subnet.MTU - ipv4HeaderLen - tcpHeaderLen
	// tcpWindow is the window the gateway advertises.
	tcpWindow = 65535
)

// segment is a TCP segment to port 53 parsed out of an IPv4 packet.
type segment struct {
	src      netip.Addr
	srcPort  uint16
	seq, ack uint32
	flags    uint8
	payload  []byte // a slice of the packet
}

// isTCP reports whether pkt looks like an IPv4 packet carrying TCP.
func isTCP(pkt []byte) bool {
	return len(pkt) >= ipv4HeaderLen && pkt[0]>>4 == 4 && pkt[9] == 6
}

// parseSegment checks pkt is a whole, unfragmented IPv4/TCP packet to
// port 53 and returns its segment. Checksums are not checked (see
// parseDatagram).
func parseSegment(pkt []byte) (s segment, ok bool) {
	if !isTCP(pkt) {
		return s, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	switch {
	case ihl < ipv4HeaderLen || total < ihl+tcpHeaderLen || total > len(pkt):
		return s, false
	case binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0: // a fragment
		return s, false
	}
	tcp := pkt[ihl:total]
	off := int(tcp[12]>>4) * 4
	if off < tcpHeaderLen || off > len(tcp) || binary.BigEndian.Uint16(tcp[2:4]) != 53 {
		return s, false
	}
	s.src = netip.AddrFrom4([4]byte(pkt[12:16]))
	s.srcPort = binary.BigEndian.Uint16(tcp[0:2])
	s.seq = binary.BigEndian.Uint32(tcp[4:8])
	s.ack = binary.BigEndian.Uint32(tcp[8:12])
	s.flags = tcp[13]
	s.payload = tcp[off:]
	return s, true
}

// isn is the gateway's initial sequence number for the connection of s
// whose client started at clientISN.
func (srv *Server) isn(gateway netip.Addr, s *segment, clientISN uint32) uint32 {
	var b [16 + 4 + 4 + 2 + 4]byte
	copy(b[:16], srv.secret[:])
	g, c := gateway.As4(), s.src.As4()
	copy(b[16:20], g[:])
	copy(b[20:24], c[:])
	binary.BigEndian.PutUint16(b[24:26], s.srcPort)
	binary.BigEndian.PutUint32(b[26:30], clientISN)
	h := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(h[:4])
}

// serveTCP answers a TCP segment to the gateway's port 53 (see above).
func (srv *Server) serveTCP(names map[string]netip.Addr, gateway netip.Addr, pkt []byte, reply func(pkt []byte)) {
	s, ok := parseSegment(pkt)
	if !ok || s.flags&tcpRST != 0 {
		return
	}
	switch {
	case s.flags&tcpSYN != 0:
		if s.flags&(tcpACK|tcpFIN) != 0 {
			return
		}
		reply(tcpPacket(gateway, &s, srv.isn(gateway, &s, s.seq), s.seq+1, tcpSYN|tcpACK, true, nil))
	case s.flags&tcpACK == 0:
	case len(s.payload) > 0:
		// the query: the first data of the connection, so the client
		// started one before it
		isn := srv.isn(gateway, &s, s.seq-1)
		if s.ack != isn+1 || len(s.payload) < 2 || int(binary.BigEndian.Uint16(s.payload)) != len(s.payload)-2 {
			return
		}
		src, port, ack := s.src, s.srcPort, s.seq+uint32(len(s.payload))
		srv.resolve(names, s.payload[2:], true, func(ans []byte) {
			msg := ans[headerRoom:]
			data := make([]byte, 2+len(msg))
			binary.BigEndian.PutUint16(data, uint16(len(msg)))
			copy(data[2:], msg)
			to := segment{src: src, srcPort: port}
			for off := 0; off < len(data); off += tcpMSS {
				end := min(off+tcpMSS, len(data))
				flags := uint8(tcpACK)
				if end == len(data) {
					flags |= tcpPSH | tcpFIN
				}
				reply(tcpPacket(gateway, &to, isn+1+uint32(off), ack, flags, false, data[off:end]))
			}
		})
	case s.flags&tcpFIN != 0:
		// the client closes after the gateway's FIN: its ACK
		reply(tcpPacket(gateway, &s, s.ack, s.seq+1, tcpACK, false, nil))
	}
}

// tcpPacket is an IPv4/TCP packet from gateway:53 to the sender of to,
// checksums included; with mss it carries the MSS option.
func tcpPacket(gateway netip.Addr, to *segment, seq, ack uint32, flags uint8, mss bool, data []byte) []byte {
	hl := tcpHeaderLen
	if mss {
		hl += 4
	}
	pkt := make([]byte, ipv4HeaderLen+hl+len(data))
	ip, tcp := pkt[:ipv4HeaderLen], pkt[ipv4HeaderLen:]
	src4, dst4 := gateway.As4(), to.src.As4()
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(pkt)))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = 6
	copy(ip[12:16], src4[:])
	copy(ip[16:20], dst4[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(0, ip)))

	binary.BigEndian.PutUint16(tcp[0:2], 53)
	binary.BigEndian.PutUint16(tcp[2:4], to.srcPort)
	binary.BigEndian.PutUint32(tcp[4:8], seq)
	binary.BigEndian.PutUint32(tcp[8:12], ack)
	tcp[12] = byte(hl/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:16], tcpWindow)
	if mss {
		tcp[20], tcp[21] = 2, 4 // kind MSS, length 4
		binary.BigEndian.PutUint16(tcp[22:24], tcpMSS)
	}
	copy(tcp[hl:], data)
	// Pseudo-header: source, destination, zero, protocol, TCP length.
	s := sum(0, ip[12:20]) + 6 + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:18], ^fold(sum(s, tcp)))
	return pkt
}
