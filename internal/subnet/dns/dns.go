// Package dns is the resolver at the gateway of a deployment's subnet:
// the router hands it every IPv4/UDP packet (and TCP segment) an
// allocation sends to the gateway's port 53, and it answers with packets
// from the gateway.
//
// Names of the zone "internal" are answered from the deployment's routing
// table, at once and without allocating beyond the reply packet:
//
//   - <allocation>.internal, type A: the allocation's address, TTL 5 s;
//   - the same name with any other type (AAAA above all): NOERROR with no
//     data, never SERVFAIL, so a resolver asking for both does not stall;
//   - any other name under .internal: NXDOMAIN, with the zone's SOA;
//   - the reverse name (d.c.b.a.in-addr.arpa) of an allocation's address,
//     type PTR: <allocation>.internal.
//
// Every other name is forwarded to the provider's resolvers (those of its
// /etc/resolv.conf unless Config names others) from a goroutine, at most
// MaxInFlight at a time (beyond that a query is dropped, and the client
// retries), and the answer relayed with the client's ID; when no resolver
// answers within Config.Timeout the client gets SERVFAIL.
//
// An answer larger than the client's UDP size (512 bytes, or what its
// EDNS0 record says, at most what fits the subnet's MTU) is truncated with
// the TC bit set. Malformed packets get no reply; a query the gateway
// cannot read gets FORMERR.
//
// The same queries over TCP (a resolver's retry after a truncated answer)
// are answered whole by a stateless responder (tcp.go): one query per
// connection, in one segment, then the gateway closes.
//
// Usage:
//
//	srv, err := dns.New(dns.Config{})
//	r, err := router.New(router.Config{Host: h, DNS: srv})
//	...
//	srv.Close() // after the router: ends the forwards in flight
package dns

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/dmsnet/dms/internal/subnet"
)

// DefaultTimeout bounds a forwarded query when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// MaxInFlight is how many forwarded queries may wait for the upstream at
// once; more are dropped.
const MaxInFlight = 64

// resolvConf is where the provider's resolvers are read from.
const resolvConf = "/etc/resolv.conf"

// maxPayload is the largest DNS message that fits one packet of the
// subnet: the MTU less the IPv4 and UDP headers.
const maxPayload = subnet.MTU - headerRoom

// Config of a Server.
type Config struct {
	// Upstream resolvers, host:port, tried in order; nil: the
	// nameservers of the provider's /etc/resolv.conf.
	Upstream []string
	// Timeout of a forwarded query, all upstreams together; zero:
	// DefaultTimeout.
	Timeout time.Duration
}

// Stats counts the queries a Server has seen.
type Stats struct {
	Local     uint64 // answered from the table
	Forwarded uint64 // relayed from an upstream
	Failed    uint64 // forwarded, answered SERVFAIL
	Dropped   uint64 // forwarded beyond MaxInFlight, or after Close
}

// Server answers the DNS queries of a subnet's allocations. It is safe
// for concurrent use; one Server serves every deployment of a node.
type Server struct {
	upstream []string
	timeout  time.Duration
	sem      chan struct{}

	// life ends the forwards in flight on Close. (A lifetime, not a
	// request's context: the Server's own goroutines outlive the calls
	// that start them.)
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	local, forwarded, failed, dropped atomic.Uint64

	// secret keys the sequence numbers of DNS over TCP (tcp.go).
	secret [16]byte
}

// New returns a Server, reading /etc/resolv.conf when cfg names no
// upstream.
func New(cfg Config) (*Server, error) {
	up := cfg.Upstream
	if len(up) == 0 {
		var err error
		if up, err = upstreamsFrom(resolvConf); err != nil {
			return nil, err
		}
	}
	for _, u := range up {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("dns upstream %q: want host:port: %w", u, err)
		}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	life, cancel := context.WithCancel(context.Background())
	srv := &Server{
		upstream: append([]string(nil), up...),
		timeout:  timeout,
		sem:      make(chan struct{}, MaxInFlight),
		life:     life,
		cancel:   cancel,
	}
	_, _ = rand.Read(srv.secret[:])
	return srv, nil
}

// upstreamsFrom reads the nameservers of a resolv.conf file.
func upstreamsFrom(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns upstream: %w", err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("dns upstream: no nameserver in %s", path)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(strings.TrimSuffix(s, "."), port))
	}
	return out, nil
}

// Upstream returns the resolvers forwarded queries go to.
func (s *Server) Upstream() []string { return append([]string(nil), s.upstream...) }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Local: s.local.Load(), Forwarded: s.forwarded.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load()}
}

// Close ends the forwards in flight (their clients get no reply) and
// waits for their goroutines. Queries served after Close are answered
// locally or dropped.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// ServePacket answers pkt, an IPv4/UDP packet to gateway port 53 (the
// subnet's gateway, or subnet.Resolver: the answers come from gateway), from
// names (allocation → address): at once for the local zone, later from
// another goroutine for a forwarded name, never for a malformed packet.
// The packet reply gets is its own (a new buffer each time).
//
// A TCP segment to port 53 is answered the same way, over TCP (tcp.go):
// then reply is called once for each segment of the answer.
func (s *Server) ServePacket(names map[string]netip.Addr, gateway netip.Addr, pkt []byte, reply func(pkt []byte)) {
	if !gateway.Is4() {
		return
	}
	if isTCP(pkt) {
		s.serveTCP(names, gateway, pkt, reply)
		return
	}
	d, ok := parseDatagram(pkt)
	if !ok {
		return
	}
	s.resolve(names, d.payload, false, func(ans []byte) { reply(encapsulate(ans, gateway, d.src, d.srcPort)) })
}

// resolve answers the query msg: done gets the answer after headerRoom
// bytes of room, at once or from another goroutine, or never (a
// malformed query, or too many forwards in flight). Over TCP (tcp) a
// forwarded answer is not truncated to a UDP size.
func (s *Server) resolve(names map[string]netip.Addr, msg []byte, tcp bool, done func(ans []byte)) {
	var q query
	switch q.parse(msg) {
	case parseDrop:
		return
	case parseFormErr:
		q.question = nil
		done(refusal(&q, rcodeFormErr))
		return
	}
	if q.opcode() != 0 {
		done(refusal(&q, rcodeNotImp))
		return
	}
	if ans := local(names, &q); ans != nil {
		s.local.Add(1)
		done(ans)
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.dropped.Add(1)
		return
	}
	if s.life.Err() != nil {
		<-s.sem
		s.dropped.Add(1)
		return
	}
	msg = append(make([]byte, 0, len(msg)), msg...)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		ans, ok := s.forward(msg, tcp)
		if ok {
			done(ans)
		}
	}()
}

// forward asks the upstreams msg (a query with one question) and returns
// the answer to relay after headerRoom bytes of room; ok is false when
// the Server closed meanwhile.
func (s *Server) forward(msg []byte, tcp bool) (ans []byte, ok bool) {
	m := new(dns.Msg)
	if err := m.Unpack(msg); err != nil || len(m.Question) != 1 {
		var q query
		q.parse(msg)
		q.question = nil
		return refusal(&q, rcodeFormErr), true
	}
	size := dns.MinMsgSize
	if opt := m.IsEdns0(); opt != nil {
		size = max(size, int(opt.UDPSize()))
	}
	size = min(size, maxPayload)
	if tcp {
		size = dns.MaxMsgSize
	}

	r, err := s.exchange(m)
	if s.life.Err() != nil {
		return nil, false
	}
	if err != nil {
		s.failed.Add(1)
		r = new(dns.Msg).SetRcode(m, dns.RcodeServerFailure)
		r.RecursionAvailable = true
		if m.IsEdns0() != nil {
			r.SetEdns0(ednsSize, false)
		}
	} else {
		s.forwarded.Add(1)
	}
	r.Id = m.Id
	r.Truncate(size)
	out, err := r.Pack()
	if err != nil || len(out) > size {
		s.failed.Add(1)
		if out, err = new(dns.Msg).SetRcode(m, dns.RcodeServerFailure).Pack(); err != nil {
			return nil, false
		}
	}
	return append(make([]byte, headerRoom, headerRoom+len(out)), out...), true
}

// errUpstream is why no upstream answered.
var errUpstream = errors.New("no upstream answered")

// exchange asks each upstream in turn, sharing the Server's timeout
// among those left, and retries over TCP an answer truncated over UDP.
func (s *Server) exchange(m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(s.life, s.timeout)
	defer cancel()
	up := m.Copy()
	errs := []error{errUpstream}
	for i, addr := range s.upstream {
		deadline, _ := ctx.Deadline()
		actx, acancel := context.WithTimeout(ctx, time.Until(deadline)/time.Duration(len(s.upstream)-i))
		r, err := s.exchangeOne(actx, up, addr)
		acancel()
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (s *Server) exchangeOne(ctx context.Context, m *dns.Msg, addr string) (*dns.Msg, error) {
	m.Id = dns.Id()
	r, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, m, addr)
	if err == nil && r.Truncated {
		m.Id = dns.Id()
		r, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, addr)
	}
	if err != nil {
		return nil, err
	}
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, m.Question[0].Name) ||
		r.Question[0].Qtype != m.Question[0].Qtype || r.Question[0].Qclass != m.Question[0].Qclass {
		return nil, errors.New("the answer is not to the question")
	}
	if !r.Response {
		return nil, errors.New("not a response, opcode " + strconv.Itoa(r.Opcode))
	}
	return r, nil
}
