package dns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	gateway = netip.MustParseAddr("10.77.0.1")
	client  = netip.MustParseAddr("10.77.0.3")
	names   = map[string]netip.Addr{
		"web": netip.MustParseAddr("10.77.0.2"),
		"db":  netip.MustParseAddr("10.77.0.3"),
	}
)

const clientPort = 40123

// udpPacket builds an IPv4/UDP packet, checksums included.
func udpPacket(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	pkt := encapsulate(append(make([]byte, headerRoom), payload...), src, dst, dport)
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen:], sport) // encapsulate writes 53 as the source
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+6:], 0)   // no UDP checksum
	return pkt
}

// queryPacket is a query from the client to the gateway.
func queryPacket(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return udpPacket(client, gateway, clientPort, 53, b)
}

func question(name string, qtype uint16, edns uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	m.RecursionDesired = false
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return m
}

// checkReply checks pkt is an IPv4/UDP packet from gateway:53 to the
// client with valid checksums and returns its DNS message and size.
func checkReply(t testing.TB, pkt []byte) (*dns.Msg, int) {
	t.Helper()
	if len(pkt) < headerRoom || pkt[0] != 0x45 || pkt[9] != 17 {
		t.Fatalf("reply is not IPv4/UDP: % x", pkt[:min(len(pkt), 28)])
	}
	if int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) {
		t.Fatalf("IPv4 total length %d, packet %d", binary.BigEndian.Uint16(pkt[2:4]), len(pkt))
	}
	if fold(sum(0, pkt[:ipv4HeaderLen])) != 0xffff {
		t.Fatalf("bad IPv4 header checksum")
	}
	if src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])); src != gateway || dst != client {
		t.Fatalf("reply %s → %s, want %s → %s", src, dst, gateway, client)
	}
	udp := pkt[ipv4HeaderLen:]
	if sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]); sp != 53 || dp != clientPort {
		t.Fatalf("reply ports %d → %d, want 53 → %d", sp, dp, clientPort)
	}
	if int(binary.BigEndian.Uint16(udp[4:6])) != len(udp) {
		t.Fatalf("UDP length %d, datagram %d", binary.BigEndian.Uint16(udp[4:6]), len(udp))
	}
	if fold(sum(sum(0, pkt[12:20])+17+uint32(len(udp)), udp)) != 0xffff {
		t.Fatalf("bad UDP checksum")
	}
	m := new(dns.Msg)
	if err := m.Unpack(udp[udpHeaderLen:]); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m, len(udp) - udpHeaderLen
}

// ask serves pkt and waits for the reply (nil when none comes by wait).
func ask(t testing.TB, s *Server, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	got := make(chan []byte, 2)
	s.ServePacket(names, gateway, pkt, func(p []byte) { got <- p })
	if wait == 0 {
		select {
		case p := <-got:
			return p
		default:
			return nil
		}
	}
	select {
	case p := <-got:
		return p
	case <-time.After(wait):
		return nil
	}
}

func TestLocal(t *testing.T) {
	s, err := New(Config{Upstream: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		name    string
		q       *dns.Msg
		rcode   int
		answer  string // the answer's text, "" for none
		soa     bool   // an SOA in authority
		opt     bool
		rd      bool
		echoQ   string // the question as sent back, "" for the query's
		noQuest bool
	}{
		{name: "A", q: question("web.internal.", dns.TypeA, 0), answer: "web.internal.\t5\tIN\tA\t10.77.0.2"},
		{name: "A in mixed case keeps the case", q: question("WeB.InTeRnAl.", dns.TypeA, 0), answer: "WeB.InTeRnAl.\t5\tIN\tA\t10.77.0.2"},
		{name: "ANY", q: question("db.internal.", dns.TypeANY, 0), answer: "db.internal.\t5\tIN\tA\t10.77.0.3"},
		{name: "AAAA: no data", q: question("web.internal.", dns.TypeAAAA, 0), soa: true},
		{name: "MX: no data", q: question("web.internal.", dns.TypeMX, 0), soa: true},
		{name: "unknown", q: question("nope.internal.", dns.TypeA, 0), rcode: dns.RcodeNameError, soa: true},
		{name: "unknown AAAA", q: question("nope.internal.", dns.TypeAAAA, 0), rcode: dns.RcodeNameError, soa: true},
		{name: "under a name", q: question("x.web.internal.", dns.TypeA, 0), rcode: dns.RcodeNameError, soa: true},
		{name: "the zone", q: question("internal.", dns.TypeA, 0), soa: true},
		{name: "PTR", q: question("2.0.77.10.in-addr.arpa.", dns.TypePTR, 0), answer: "2.0.77.10.in-addr.arpa.\t5\tIN\tPTR\tweb.internal."},
		{name: "A of a reverse name", q: question("2.0.77.10.in-addr.arpa.", dns.TypeA, 0)},
		{name: "EDNS0 echoed", q: question("web.internal.", dns.TypeA, 4096), answer: "web.internal.\t5\tIN\tA\t10.77.0.2", opt: true},
		{name: "recursion desired echoed", q: func() *dns.Msg {
			m := question("web.internal.", dns.TypeA, 0)
			m.RecursionDesired = true
			return m
		}(), answer: "web.internal.\t5\tIN\tA\t10.77.0.2", rd: true},
		{name: "two questions", q: func() *dns.Msg {
			m := question("web.internal.", dns.TypeA, 0)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), rcode: dns.RcodeFormatError, noQuest: true},
		{name: "no question", q: func() *dns.Msg {
			m := question("web.internal.", dns.TypeA, 0)
			m.Question = nil
			return m
		}(), rcode: dns.RcodeFormatError, noQuest: true},
		{name: "opcode status", q: func() *dns.Msg {
			m := question("web.internal.", dns.TypeA, 0)
			m.Opcode = dns.OpcodeStatus
			return m
		}(), rcode: dns.RcodeNotImplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ask(t, s, queryPacket(t, tc.q), 0)
			if p == nil {
				t.Fatal("no reply at once")
			}
			m, _ := checkReply(t, p)
			if m.Id != tc.q.Id || !m.Response || m.Rcode != tc.rcode {
				t.Fatalf("reply id %d response %v rcode %s, want %d true %s", m.Id, m.Response, dns.RcodeToString[m.Rcode], tc.q.Id, dns.RcodeToString[tc.rcode])
			}
			if m.RecursionDesired != tc.rd {
				t.Errorf("RD %v, want %v", m.RecursionDesired, tc.rd)
			}
			switch {
			case tc.noQuest && len(m.Question) != 0:
				t.Errorf("question %v, want none", m.Question)
			case !tc.noQuest && !slices.Equal(m.Question, tc.q.Question):
				t.Errorf("question %v, want %v", m.Question, tc.q.Question)
			}
			var answers []string
			for _, rr := range m.Answer {
				answers = append(answers, rr.String())
			}
			if want := tc.answer; strings.Join(answers, "\n") != want {
				t.Errorf("answer %q, want %q", answers, want)
			}
			hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.soa {
				t.Errorf("authority %v, want an SOA: %v", m.Ns, tc.soa)
			}
			if hasSOA && (m.Ns[0].Header().Name != "internal." || m.Ns[0].(*dns.SOA).Minttl != TTL) {
				t.Errorf("SOA %v", m.Ns[0])
			}
			if opt := m.IsEdns0(); (opt != nil) != tc.opt {
				t.Errorf("OPT %v, want one: %v", opt, tc.opt)
			}
		})
	}
	if st := s.Stats(); st.Forwarded+st.Failed+st.Dropped != 0 {
		t.Errorf("stats %+v: something was forwarded", st)
	}
}

// upstream runs a miekg/dns server on 127.0.0.1 (UDP and TCP on one port)
// that knows example.com, big.example (a TXT answer of about 1000 bytes),
// huge.example (about 4000 bytes) and nothing else.
func upstream(t *testing.T) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "example.com." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		case q.Name == "huge.example." && q.Qtype == dns.TypeTXT:
			for i := range 40 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{strings.Repeat(string(rune('a'+i%26)), 90)}})
			}
		case q.Name == "big.example." && q.Qtype == dns.TypeTXT:
			for i := range 10 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{strings.Repeat(string(rune('a'+i)), 90)}})
			}
		case q.Name == "example.com.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			size := dns.MinMsgSize
			if opt := r.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// silent is an upstream that reads queries and never answers.
func silent(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestForward(t *testing.T) {
	up, quiet := upstream(t), silent(t)
	cases := []struct {
		name     string
		upstream []string
		q        *dns.Msg
		rcode    int
		answers  int
		tc       bool
		maxSize  int
	}{
		{name: "A", upstream: []string{up}, q: question("example.com.", dns.TypeA, 0), answers: 1, maxSize: 512},
		{name: "case kept", upstream: []string{up}, q: question("example.com.", dns.TypeAAAA, 0), maxSize: 512},
		{name: "NXDOMAIN relayed", upstream: []string{up}, q: question("nowhere.example.", dns.TypeA, 0), rcode: dns.RcodeNameError, maxSize: 512},
		{name: "reverse name of no allocation", upstream: []string{up}, q: question("9.0.77.10.in-addr.arpa.", dns.TypePTR, 0), rcode: dns.RcodeNameError, maxSize: 512},
		{name: "large answer truncated to 512", upstream: []string{up}, q: question("big.example.", dns.TypeTXT, 0), answers: -1, tc: true, maxSize: 512},
		{name: "large answer whole with EDNS0", upstream: []string{up}, q: question("big.example.", dns.TypeTXT, 1232), answers: 10, maxSize: 1232},
		{name: "EDNS0 beyond the MTU: capped", upstream: []string{up}, q: question("big.example.", dns.TypeTXT, 65000), answers: 10, maxSize: maxPayload},
		{name: "silent upstream: SERVFAIL", upstream: []string{quiet}, q: question("example.com.", dns.TypeA, 0), rcode: dns.RcodeServerFailure, maxSize: 512},
		{name: "closed port: SERVFAIL", upstream: []string{"127.0.0.1:1"}, q: question("example.com.", dns.TypeA, 0), rcode: dns.RcodeServerFailure, maxSize: 512},
		{name: "second upstream after a silent one", upstream: []string{quiet, up}, q: question("example.com.", dns.TypeA, 0), answers: 1, maxSize: 512},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Upstream: tc.upstream, Timeout: 400 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			p := ask(t, s, queryPacket(t, tc.q), 10*time.Second)
			if p == nil {
				t.Fatal("no reply")
			}
			m, size := checkReply(t, p)
			if m.Id != tc.q.Id || m.Rcode != tc.rcode || !slices.Equal(m.Question, tc.q.Question) {
				t.Fatalf("reply id %d rcode %s question %v, want %d %s %v", m.Id, dns.RcodeToString[m.Rcode], m.Question, tc.q.Id, dns.RcodeToString[tc.rcode], tc.q.Question)
			}
			if tc.answers >= 0 && len(m.Answer) != tc.answers || tc.answers < 0 && len(m.Answer) >= 10 {
				t.Errorf("%d answers, want %d", len(m.Answer), tc.answers)
			}
			if m.Truncated != tc.tc {
				t.Errorf("TC %v, want %v", m.Truncated, tc.tc)
			}
			if size > tc.maxSize {
				t.Errorf("answer of %d bytes, more than %d", size, tc.maxSize)
			}
		})
	}
}

// TestInFlightBound: beyond MaxInFlight forwards waiting on the upstream,
// queries are dropped; Close ends the waiting ones without a reply.
func TestInFlightBound(t *testing.T) {
	s, err := New(Config{Upstream: []string{silent(t)}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	replies := 0
	pkt := queryPacket(t, question("example.com.", dns.TypeA, 0))
	for range MaxInFlight + 10 {
		s.ServePacket(names, gateway, pkt, func([]byte) { mu.Lock(); replies++; mu.Unlock() })
	}
	if st := s.Stats(); st.Dropped != 10 {
		t.Errorf("stats %+v, want 10 dropped", st)
	}
	// A local name is still answered at once.
	if p := ask(t, s, queryPacket(t, question("web.internal.", dns.TypeA, 0)), 0); p == nil {
		t.Error("a local name is not answered while forwards wait")
	}
	s.Close()
	if replies != 0 {
		t.Errorf("%d replies after Close, want none", replies)
	}
	s.ServePacket(names, gateway, pkt, func([]byte) { t.Error("a forward after Close replied") })
}

func TestMalformed(t *testing.T) {
	good := queryPacket(t, question("web.internal.", dns.TypeA, 0))
	mod := func(f func(p []byte) []byte) []byte { return f(slices.Clone(good)) }
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"short", good[:19]},
		{"IPv6", mod(func(p []byte) []byte { p[0] = 0x65; return p })},
		{"IHL too small", mod(func(p []byte) []byte { p[0] = 0x44; return p })},
		{"IHL beyond the packet", mod(func(p []byte) []byte { p[0] = 0x4f; return p })},
		{"total length beyond the packet", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], uint16(len(p)+1)); return p })},
		{"total length cuts the UDP header", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 24); return p })},
		{"GRE", mod(func(p []byte) []byte { p[9] = 47; return p })},
		{"first fragment", mod(func(p []byte) []byte { p[6] |= 0x20; return p })},
		{"later fragment", mod(func(p []byte) []byte { p[7] = 1; return p })},
		{"not port 53", mod(func(p []byte) []byte { p[23] = 54; return p })},
		{"UDP length beyond the packet", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[24:], uint16(len(p))); return p })},
		{"UDP length too small", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[24:], 7); return p })},
		{"DNS shorter than its header", udpPacket(client, gateway, clientPort, 53, []byte{1, 2, 3})},
		{"a response", mod(func(p []byte) []byte { p[30] |= 0x80; return p })},
		{"gateway not IPv4", nil},
	}
	s, err := New(Config{Upstream: []string{upstream(t)}, Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := gateway
			if tc.name == "gateway not IPv4" {
				tc.pkt, gw = good, netip.IPv6Loopback()
			}
			s.ServePacket(names, gw, tc.pkt, func(p []byte) { t.Errorf("a reply: % x", p) })
		})
	}
	s.Close() // waits for any forward
	// A query the gateway cannot read gets FORMERR.
	s, _ = New(Config{Upstream: []string{"127.0.0.1:1"}})
	defer s.Close()
	for _, payload := range [][]byte{
		slices.Concat(good[28:40], []byte{3, 'w', 'e'}),          // the name ends early
		slices.Concat(good[28:40], []byte{0xc0, 12, 0, 1, 0, 1}), // a pointer in the question
		good[28:54], // no type
	} {
		p := ask(t, s, udpPacket(client, gateway, clientPort, 53, payload), 0)
		if p == nil {
			t.Fatalf("% x: no reply", payload)
		}
		if m, _ := checkReply(t, p); m.Rcode != dns.RcodeFormatError || m.Id != 4242 {
			t.Errorf("% x: rcode %s id %d, want FORMERR 4242", payload, dns.RcodeToString[m.Rcode], m.Id)
		}
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	cases := []struct {
		name, conf string
		want       []string
		err        string
	}{
		{"two", "search example\nnameserver 10.0.0.53\nnameserver fd00::53\n", []string{"10.0.0.53:53", "[fd00::53]:53"}, ""},
		{"none", "search example\n", nil, "no nameserver"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/resolv.conf"
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := upstreamsFrom(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("upstreamsFrom = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := upstreamsFrom(t.TempDir() + "/missing"); err == nil {
		t.Error("a missing resolv.conf: no error")
	}
	if _, err := New(Config{Upstream: []string{"10.0.0.53"}}); err == nil {
		t.Error("an upstream without a port: no error")
	}
}

func FuzzServePacket(f *testing.F) {
	for _, m := range []*dns.Msg{
		question("web.internal.", dns.TypeA, 0),
		question("web.internal.", dns.TypeAAAA, 1232),
		question("nope.internal.", dns.TypeA, 0),
		question("2.0.77.10.in-addr.arpa.", dns.TypePTR, 0),
		question("example.com.", dns.TypeA, 0),
	} {
		f.Add(queryPacket(f, m))
		f.Add(tcpFrom(1, 0, tcpSYN, nil))
		b, _ := m.Pack()
		f.Add(tcpFrom(1, 0, tcpACK, append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)))
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s, err := New(Config{Upstream: []string{"127.0.0.1:1"}, Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got [][]byte
		s.ServePacket(names, gateway, pkt, func(p []byte) { mu.Lock(); got = append(got, p); mu.Unlock() })
		s.Close()
		if isTCP(pkt) {
			seg, ok := parseSegment(pkt)
			if len(got) > 0 && !ok {
				t.Fatal("a reply to a segment that does not parse")
			}
			for _, p := range got {
				checkSegment(t, p, seg.srcPort)
			}
			return
		}
		if len(got) > 1 {
			t.Fatalf("%d replies", len(got))
		}
		for _, p := range got {
			d, ok := parseDatagram(pkt)
			if !ok {
				t.Fatal("a reply to a packet that does not parse")
			}
			if d.src != client || d.srcPort != clientPort {
				continue // checkReply expects the usual client
			}
			checkReply(t, p)
		}
	})
}

// BenchmarkAnswerA is the lookup every connection by name starts with:
// one A of the local zone, packet in, packet out. p99-ns is over single
// calls timed one by one.
func BenchmarkAnswerA(b *testing.B) {
	s, err := New(Config{Upstream: []string{"127.0.0.1:1"}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pkt := queryPacket(b, question("web.internal.", dns.TypeA, 1232))
	var n int
	reply := func(p []byte) { n += len(p) }
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		s.ServePacket(names, gateway, pkt, reply)
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	if n == 0 {
		b.Fatal("no reply")
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
}
