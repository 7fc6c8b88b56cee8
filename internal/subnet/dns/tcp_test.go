package dns

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// tcpFrom builds a TCP segment from the client to gateway:53.
func tcpFrom(seq, ack uint32, flags uint8, data []byte) []byte {
	// tcpPacket builds from the gateway; swap the ends and the ports
	pkt := tcpPacket(client, &segment{src: gateway, srcPort: 53}, seq, ack, flags, false, data)
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen:], clientPort)
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+16:], 0) // checksums are not checked
	return pkt
}

// checkSegment checks pkt is an IPv4/TCP segment from gateway:53 to the
// client's port with valid checksums, and returns its header fields and
// data.
func checkSegment(t testing.TB, pkt []byte, port uint16) (seq, ack uint32, flags uint8, data []byte) {
	t.Helper()
	if len(pkt) < ipv4HeaderLen+tcpHeaderLen || pkt[0] != 0x45 || pkt[9] != 6 {
		t.Fatalf("reply is not IPv4/TCP: % x", pkt[:min(len(pkt), 40)])
	}
	if int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) || len(pkt) > 1420 {
		t.Fatalf("IPv4 total length %d, packet %d", binary.BigEndian.Uint16(pkt[2:4]), len(pkt))
	}
	if fold(sum(0, pkt[:ipv4HeaderLen])) != 0xffff {
		t.Fatal("bad IPv4 header checksum")
	}
	tcp := pkt[ipv4HeaderLen:]
	if fold(sum(sum(0, pkt[12:20])+6+uint32(len(tcp)), tcp)) != 0xffff {
		t.Fatal("bad TCP checksum")
	}
	if sp, dp := binary.BigEndian.Uint16(tcp[0:2]), binary.BigEndian.Uint16(tcp[2:4]); sp != 53 || dp != port {
		t.Fatalf("ports %d → %d, want 53 → %d", sp, dp, port)
	}
	off := int(tcp[12]>>4) * 4
	return binary.BigEndian.Uint32(tcp[4:8]), binary.BigEndian.Uint32(tcp[8:12]), tcp[13], tcp[off:]
}

// serveAll serves pkt and collects the replies until want of them have
// come, or 5 s pass.
func serveAll(t testing.TB, s *Server, pkt []byte, want int) [][]byte {
	t.Helper()
	return serveUntil(t, s, pkt, func(got [][]byte) bool { return len(got) >= want })
}

// serveUntil serves pkt and collects the replies until done says so, or
// 5 s pass.
func serveUntil(t testing.TB, s *Server, pkt []byte, done func([][]byte) bool) [][]byte {
	t.Helper()
	var mu sync.Mutex
	var got [][]byte
	s.ServePacket(names, gateway, pkt, func(p []byte) { mu.Lock(); got = append(got, p); mu.Unlock() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := done(got)
		mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// framed is m packed with its 2-byte length.
func framed(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// TestTCP: a connection's handshake, a query of the local zone and a
// forwarded one large enough for several segments, the close; and the
// segments that get no answer.
func TestTCP(t *testing.T) {
	s, err := New(Config{Upstream: []string{upstream(t)}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const cisn = 1000
	for _, tc := range []struct {
		name   string
		q      *dns.Msg
		check  func(t *testing.T, m *dns.Msg)
		segs   int // at least
		client uint32
	}{
		{"local A", question("web.internal.", dns.TypeA, 0), func(t *testing.T, m *dns.Msg) {
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.77.0.2" {
				t.Errorf("answer %v", m.Answer)
			}
		}, 1, cisn},
		{"forwarded, 4 KB (not truncated)", question("huge.example.", dns.TypeTXT, 0), func(t *testing.T, m *dns.Msg) {
			if m.Truncated || len(m.Answer) != 40 {
				t.Errorf("truncated %v, %d answers", m.Truncated, len(m.Answer))
			}
		}, 3, 0xffffffff}, // the client's sequence wraps
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serveAll(t, s, tcpFrom(tc.client, 0, tcpSYN, nil), 1)
			if len(got) != 1 {
				t.Fatalf("%d replies to the SYN", len(got))
			}
			isn, ack, flags, _ := checkSegment(t, got[0], clientPort)
			if flags != tcpSYN|tcpACK || ack != tc.client+1 {
				t.Fatalf("SYN answered with flags %#x ack %d", flags, ack)
			}
			query := framed(t, tc.q)
			// the answer's segments come one by one: wait for the one
			// that closes it
			got = serveUntil(t, s, tcpFrom(tc.client+1, isn+1, tcpACK|tcpPSH, query), func(got [][]byte) bool {
				return len(got) > 0 && got[len(got)-1][ipv4HeaderLen+13]&tcpFIN != 0
			})
			if len(got) < tc.segs {
				t.Fatalf("%d segments, want ≥ %d", len(got), tc.segs)
			}
			var stream []byte
			var fin uint32
			for i, p := range got {
				seq, ack, flags, data := checkSegment(t, p, clientPort)
				if seq != isn+1+uint32(len(stream)) || ack != tc.client+1+uint32(len(query)) {
					t.Fatalf("segment %d: seq %d ack %d", i, seq, ack)
				}
				if last := i == len(got)-1; (flags&tcpFIN != 0) != last || flags&tcpACK == 0 {
					t.Fatalf("segment %d of %d: flags %#x", i, len(got), flags)
				}
				stream = append(stream, data...)
				fin = seq + uint32(len(data)) + 1
			}
			if len(stream) < 2 || int(binary.BigEndian.Uint16(stream)) != len(stream)-2 {
				t.Fatalf("answer of %d bytes framed as %d", len(stream), binary.BigEndian.Uint16(stream))
			}
			m := new(dns.Msg)
			if err := m.Unpack(stream[2:]); err != nil || m.Id != tc.q.Id {
				t.Fatalf("answer: %v (id %d)", err, m.Id)
			}
			tc.check(t, m)
			// the client's FIN after the gateway's
			cfin := tc.client + 1 + uint32(len(query))
			got = serveAll(t, s, tcpFrom(cfin, fin, tcpFIN|tcpACK, nil), 1)
			if len(got) != 1 {
				t.Fatalf("%d replies to the FIN", len(got))
			}
			if seq, ack, flags, _ := checkSegment(t, got[0], clientPort); flags != tcpACK || seq != fin || ack != cfin+1 {
				t.Fatalf("FIN answered with flags %#x seq %d ack %d", flags, seq, ack)
			}
		})
	}
	isn := s.isn(gateway, &segment{src: client, srcPort: clientPort}, cisn)
	query := framed(t, question("web.internal.", dns.TypeA, 0))
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"data acknowledging another number", tcpFrom(cisn+1, isn+2, tcpACK, query)},
		{"data not at the connection's start", tcpFrom(cisn+5, isn+1, tcpACK, query)},
		{"a query split over segments", tcpFrom(cisn+1, isn+1, tcpACK, query[:10])},
		{"two queries in one segment", tcpFrom(cisn+1, isn+1, tcpACK, append(bytes.Clone(query), query...))},
		{"data without ACK", tcpFrom(cisn+1, isn+1, tcpPSH, query)},
		{"a reset", tcpFrom(cisn+1, isn+1, tcpRST|tcpACK, query)},
		{"SYN-ACK", tcpFrom(cisn, 0, tcpSYN|tcpACK, nil)},
		{"a pure ACK", tcpFrom(cisn+1, isn+1, tcpACK, nil)},
		{"not port 53", func() []byte {
			p := tcpFrom(cisn, 0, tcpSYN, nil)
			p[ipv4HeaderLen+3] = 54
			return p
		}()},
		{"data offset beyond the segment", func() []byte {
			p := tcpFrom(cisn, 0, tcpSYN, nil)
			p[ipv4HeaderLen+12] = 0xf0
			return p
		}()},
		{"a fragment", func() []byte {
			p := tcpFrom(cisn, 0, tcpSYN, nil)
			p[6] |= 0x20
			return p
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.ServePacket(names, gateway, tc.pkt, func(p []byte) { t.Errorf("a reply: % x", p[:min(len(p), 60)]) })
		})
	}
	// the same connection from another port gets another number
	if other := s.isn(gateway, &segment{src: client, srcPort: clientPort + 1}, cisn); other == isn {
		t.Error("two connections share a sequence number")
	}
}

// TestTCPNames: the segment's addresses.
func TestTCPNames(t *testing.T) {
	s, err := New(Config{Upstream: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := serveAll(t, s, tcpFrom(7, 0, tcpSYN, nil), 1)
	if len(got) != 1 {
		t.Fatal("no SYN-ACK")
	}
	if src, dst := netip.AddrFrom4([4]byte(got[0][12:16])), netip.AddrFrom4([4]byte(got[0][16:20])); src != gateway || dst != client {
		t.Errorf("SYN-ACK %s → %s", src, dst)
	}
	// the MSS option: kind 2, length 4, the subnet's MTU less 40
	if tcp := got[0][ipv4HeaderLen:]; tcp[12]>>4 != 6 || tcp[20] != 2 || tcp[21] != 4 || binary.BigEndian.Uint16(tcp[22:]) != tcpMSS {
		t.Errorf("SYN-ACK options % x", tcp[20:])
	}
}
