package router

import (
	"context"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/net/ipv4"

	"github.com/dmsnet/dms/internal/subnet"
)

// DatagramProtocol is the libp2p protocol that sets up a datagram
// session: one request and one response on a stream.
const DatagramProtocol = "/dms/subnet/dgram/1"

const (
	// dgHeader is a datagram's header: [receiver index 4][counter 8].
	dgHeader = 12
	// dgOverhead is the header and the AEAD tag.
	dgOverhead = dgHeader + chacha20poly1305.Overhead
	// dgStart is where a datagram begins in a packet's buffer, so that
	// the plaintext sits at subnet.Offset.
	dgStart = subnet.Offset - dgHeader
	// dgRetry is how long after a failed setup the next one waits.
	dgRetry = 3 * time.Second
	// dgInfo starts the HKDF info.
	dgInfo = "dms-subnet-dgram/1"
	// dgSocketBuffer is the datagram socket's kernel buffer size.
	dgSocketBuffer = 8 << 20
	// dgBatch is how many datagrams one read takes (recvmmsg).
	dgBatch = 64
	// gsoMax is the most bytes one segmented write carries, gsoSegments
	// the most datagrams.
	gsoMax      = 65000
	gsoSegments = 64
	// dgMaxCounter is past where a session stops sending (never reached:
	// a session is rekeyed long before, see timing.rekeyAfter).
	dgMaxCounter = 1 << 60
	// dgRekeyCounter is the count of datagrams after which a session is
	// replaced whatever its age.
	dgRekeyCounter = 1 << 59
)

// dgram is the router's datagram side: its UDP socket and the receive
// sessions by their index.
type dgram struct {
	r    *Router
	conn *net.UDPConn
	pc   *ipv4.PacketConn // conn, many datagrams per call
	port uint16

	// sessions by local receiver index: replaced (copy on write) under mu,
	// read by the receive loop without a lock.
	sessions atomic.Pointer[map[uint32]*session]
	mu       sync.Mutex

	// gso: the socket takes UDP_SEGMENT writes (until one fails).
	gso atomic.Bool
	// gro: the socket coalesces what it receives (UDP_GRO).
	gro bool

	// sent and received count datagrams (tests, benchmarks); inlineReads
	// the reads the reader delivered itself (tests).
	sent, received, inlineReads atomic.Uint64

	// read reads datagrams (pc.ReadBatch; tests replace it).
	read func(ms []ipv4.Message) (int, error)
	// poll is the busy poll after isolated sends (busypoll.go), nil when
	// off; waitReady polls the socket until it is readable or a deadline
	// (nil where busy polling is not supported).
	poll      *poller
	waitReady func(end int64) (bool, error)
	// done is closed when the router closes (once).
	done      chan struct{}
	closeDone sync.Once
	// blackhole drops every datagram received, as a firewall would
	// (tests).
	blackhole atomic.Bool
	// inflight counts the reads in the receive pipeline, handed on by
	// the reader and not yet delivered.
	inflight atomic.Int32
	// unknownAt is when a datagram naming no session last made the
	// router look for its sender (unix ns).
	unknownAt atomic.Int64
	// nonce is open's scratch space (handle's callers, tests).
	nonce []byte
}

// session is one handshake's keys: receive (looked up by index) and
// send (to the peer's index and address). Its receive state is touched
// only by the receive loop, its send state only by the outQueue writer
// that holds it.
type session struct {
	dep       *deployment
	peer      peer.ID
	initiator bool   // this side initiated the handshake
	index     uint32 // local receiver index
	conn      network.Conn

	open   cipher.AEAD // safe for concurrent use: the pipeline's workers share it
	window replayWindow

	seal    cipher.AEAD
	remote  uint32 // the peer's receiver index
	addr    netip.AddrPort
	udpAddr *net.UDPAddr // addr, for WriteBatch
	// counter is the next send counter: the writer's packets and the
	// probes and answers (path.go) take theirs from it.
	counter atomic.Uint64
	txNonce [chacha20poly1305.NonceSize]byte

	// out is the queue whose path this session serves (nil in tests).
	out *outQueue
	// created is when the session was keyed.
	created time.Time
	// retireAt is when a replaced session stops being accepted (zero
	// while current); guarded by dgram.mu.
	retireAt time.Time
	// seen: a datagram was received on it (the receive loop's). A
	// responder's session serves its sends from then on: the initiator
	// has installed it.
	seen bool
}

func newDgram(r *Router, conn *net.UDPConn) (*dgram, error) {
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return nil, fmt.Errorf("subnet router: datagram socket: %w", err)
	}
	growBuffers(conn)
	g := &dgram{r: r, conn: conn, pc: ipv4.NewPacketConn(conn), port: ap.Port(), done: make(chan struct{})}
	g.read = func(ms []ipv4.Message) (int, error) { return g.pc.ReadBatch(ms, 0) }
	g.gso.Store(gsoSupported)
	g.gro = enableGRO(conn)
	if r.busyPoll > 0 {
		g.poll = newPoller(r.busyPoll, r.timing.pollQuiet)
		if g.waitReady = newReadyWaiter(conn, g.poll); g.waitReady == nil {
			g.poll = nil
		}
	}
	g.sessions.Store(&map[uint32]*session{})
	return g, nil
}

// handshake is the request's and the response's common part.
type handshake struct {
	pub   [32]byte
	index uint32
	port  uint16
}

const handshakeLen = 32 + 4 + 2

func (h *handshake) marshal(b []byte) []byte {
	b = append(b, h.pub[:]...)
	b = binary.BigEndian.AppendUint32(b, h.index)
	return binary.BigEndian.AppendUint16(b, h.port)
}

func (h *handshake) unmarshal(b []byte) {
	copy(h.pub[:], b)
	h.index = binary.BigEndian.Uint32(b[32:])
	h.port = binary.BigEndian.Uint16(b[36:])
}

// readRequest reads a setup request: [version][length][deployment][handshake].
func readRequest(rd io.Reader) (string, handshake, error) {
	var h handshake
	id, err := readHello(rd)
	if err != nil {
		return "", h, err
	}
	var b [handshakeLen]byte
	if _, err := io.ReadFull(rd, b[:]); err != nil {
		return "", h, err
	}
	h.unmarshal(b[:])
	if h.port == 0 {
		return "", h, errors.New("UDP port 0")
	}
	return id, h, nil
}

// keys derives the two directional keys of a handshake.
func keys(secret []byte, initiator, responder peer.ID, deployment string) (i2r, r2i cipher.AEAD, err error) {
	info := dgInfo + string(initiator) + string(responder) + deployment
	k, err := hkdf.Key(sha256.New, secret, nil, info, 2*chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, err
	}
	if i2r, err = chacha20poly1305.New(k[:32]); err != nil {
		return nil, nil, err
	}
	r2i, err = chacha20poly1305.New(k[32:])
	return i2r, r2i, err
}

// remoteIP is the IP address of c's other end, if it has one.
func remoteIP(c network.Conn) (netip.Addr, error) {
	m := c.RemoteMultiaddr()
	for _, p := range []int{ma.P_IP4, ma.P_IP6} {
		if s, err := m.ValueForProtocol(p); err == nil {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return netip.Addr{}, err
			}
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no IP address in %s", m)
}

// reserve gives s a fresh receiver index, which names no session yet
// (a datagram to it is "unauthorized") until install.
func (g *dgram) reserve(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.sessions.Load()
	m := make(map[uint32]*session, len(old)+1)
	for i, o := range old {
		m[i] = o
	}
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		s.index = binary.BigEndian.Uint32(b[:])
		if _, taken := m[s.index]; !taken && s.index != 0 {
			break
		}
	}
	m[s.index] = nil
	g.sessions.Store(&m)
}

// install puts s, keyed, at its reserved index, and reports whether it
// did: not if its deployment was removed, or its peer left the table,
// meanwhile (prune ran before). The session of the same peer, deployment
// and role it replaces (a rekey, or a fresh setup) is still accepted for
// overlap, for the datagrams already on their way.
func (g *dgram) install(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v := s.dep.view.Load(); v == nil || v.peers[s.peer] == nil {
		return false
	}
	old := *g.sessions.Load()
	m := make(map[uint32]*session, len(old))
	retire := s.created.Add(g.r.timing.overlap)
	for i, o := range old {
		if o != nil && o.dep == s.dep && o.peer == s.peer && o.initiator == s.initiator && o.retireAt.IsZero() {
			o.retireAt = retire
		}
		m[i] = o
	}
	m[s.index] = s
	g.sessions.Store(&m)
	g.r.count.sessions.Add(1)
	s.dep.count.sessions.Add(1)
	return true
}

// expire removes the replaced sessions whose overlap has ended, and the
// sessions keyed before oldest.
func (g *dgram) expire(now, oldest time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.sessions.Load()
	m := make(map[uint32]*session, len(old))
	for i, o := range old {
		if o != nil && (!o.retireAt.IsZero() && !now.Before(o.retireAt) || o.created.Before(oldest)) {
			continue
		}
		m[i] = o
	}
	if len(m) != len(old) {
		g.sessions.Store(&m)
	}
}

// register is reserve and install, for a session already keyed.
func (g *dgram) register(s *session) bool {
	g.reserve(s)
	if !g.install(s) {
		g.unregister(s)
		return false
	}
	return true
}

// unregister removes s, or its reservation.
func (g *dgram) unregister(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.sessions.Load()
	if o, ok := old[s.index]; !ok || (o != nil && o != s) {
		return
	}
	m := make(map[uint32]*session, len(old))
	for i, o := range old {
		if i != s.index {
			m[i] = o
		}
	}
	g.sessions.Store(&m)
}

// prune removes the sessions of d whose peer is no longer in its table
// (all of them once d is removed: view nil).
func (g *dgram) prune(d *deployment, v *view) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.sessions.Load()
	m := make(map[uint32]*session, len(old))
	for i, o := range old {
		if o != nil && o.dep == d && (v == nil || v.peers[o.peer] == nil) {
			continue
		}
		m[i] = o
	}
	if len(m) != len(old) {
		g.sessions.Store(&m)
	}
}

// setup makes a session to o's peer for o's deployment (the initiator's
// side of DatagramProtocol) and hands it to o.
func (g *dgram) setup(ctx context.Context, o *outQueue) error {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	st, err := g.r.host.NewStream(ctx, o.peer, DatagramProtocol)
	if err != nil {
		return err
	}
	defer func() { _ = st.Reset() }()
	_ = st.SetDeadline(time.Now().Add(openTimeout))
	ip, err := remoteIP(st.Conn())
	if err != nil {
		return err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	s := &session{dep: o.dep, peer: o.peer, initiator: true, conn: st.Conn(), out: o}
	g.reserve(s)
	ok := false
	defer func() {
		if !ok {
			g.unregister(s)
		}
	}()
	req := handshake{index: s.index, port: g.port}
	copy(req.pub[:], eph.PublicKey().Bytes())
	if _, err := st.Write(req.marshal(hello(o.dep.id))); err != nil {
		return err
	}
	_ = st.CloseWrite()
	var b [handshakeLen]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return fmt.Errorf("no answer (the peer refused or has no datagram socket): %w", err)
	}
	var resp handshake
	resp.unmarshal(b[:])
	if resp.port == 0 {
		return errors.New("UDP port 0")
	}
	pub, err := ecdh.X25519().NewPublicKey(resp.pub[:])
	if err != nil {
		return err
	}
	secret, err := eph.ECDH(pub)
	if err != nil {
		return err
	}
	if s.seal, s.open, err = keys(secret, g.r.self, o.peer, o.dep.id); err != nil {
		return err
	}
	s.remote, s.addr = resp.index, netip.AddrPortFrom(ip, resp.port)
	s.udpAddr = net.UDPAddrFromAddrPort(s.addr)
	s.created = time.Now()
	if !g.install(s) {
		return errors.New("the deployment or the peer left meanwhile")
	}
	ok = true
	o.tx.Store(s)
	// the packets take the datagrams once the peer has answered on them
	o.probe(s)
	return nil
}

// handleSetup is the responder's side of DatagramProtocol.
func (r *Router) handleSetup(st network.Stream) {
	answered := false
	defer func() {
		if !answered {
			_ = st.Reset()
		}
	}()
	from := st.Conn().RemotePeer()
	g := r.dg
	if g == nil {
		return // no datagram socket: the initiator keeps the stream
	}
	_ = st.SetDeadline(time.Now().Add(openTimeout))
	id, req, err := readRequest(st)
	if err != nil {
		r.drop(nil, reasonMalformed, nil)
		r.log.Debug("subnet datagram setup refused", "peer_id", from, "err", err)
		return
	}
	r.mu.Lock()
	d := r.deps[id]
	var o *outQueue
	if d != nil && !r.closed {
		if v := d.view.Load(); v != nil {
			o = v.peers[from]
		}
	}
	r.mu.Unlock()
	if o == nil {
		r.drop(d, reasonUnauthorized, nil)
		r.log.Debug("subnet datagram setup refused", "peer_id", from, "deployment_id", id, "err", "the peer holds no route of the deployment")
		return
	}
	ip, err := remoteIP(st.Conn())
	if err != nil {
		r.log.Debug("subnet datagram setup refused", "peer_id", from, "err", err)
		return
	}
	pub, err := ecdh.X25519().NewPublicKey(req.pub[:])
	if err != nil {
		r.drop(d, reasonMalformed, nil)
		return
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return
	}
	secret, err := eph.ECDH(pub)
	if err != nil {
		r.drop(d, reasonMalformed, nil)
		return
	}
	s := &session{dep: d, peer: from, conn: st.Conn(), remote: req.index, addr: netip.AddrPortFrom(ip, req.port), out: o, created: time.Now()}
	s.udpAddr = net.UDPAddrFromAddrPort(s.addr)
	if s.open, s.seal, err = keys(secret, from, r.self, id); err != nil {
		return
	}
	if !g.register(s) {
		return
	}
	resp := handshake{index: s.index, port: g.port}
	copy(resp.pub[:], eph.PublicKey().Bytes())
	if _, err := st.Write(resp.marshal(nil)); err != nil {
		g.unregister(s)
		return
	}
	// closed, not reset: a reset could overtake the answer
	answered = true
	_ = st.Close()
	// the reverse direction serves this side's packets to the peer too,
	// once the initiator has installed the session (its first datagram,
	// a probe, tells): see open
}

// send seals p in place and sends it on s; p stays the caller's.
func (g *dgram) send(s *session, p *packet) error {
	b, err := s.sealPacket(p)
	if err != nil {
		return err
	}
	if _, err := g.conn.WriteToUDPAddrPort(b, s.addr); err != nil {
		return err
	}
	g.sent.Add(1)
	return nil
}

// preseal seals p in place for the queue's session if its datagram path
// is up (p.sealed tells), in the caller's goroutine: the device readers
// seal what they read, in parallel with the queue's writer, which then
// only sends. nonce is the caller's scratch space. A queue that is full
// (the packet will be dropped) or has no path up leaves p plain.
func (o *outQueue) preseal(p *packet, nonce []byte) {
	if o.r.dg == nil || !o.up.Load() || len(o.q) >= cap(o.q) {
		return
	}
	s := o.tx.Load()
	if s == nil {
		return
	}
	if _, err := s.sealIn(p, nonce); err == nil {
		p.sealed = s
	}
}

// sendBatch sends p and the packets queued behind it (up to dgBatch) on
// s in one call (a segmented write, else sendmmsg), and puts them back on
// the free list. The packets the device reader sealed already (p.sealed)
// go as they are; the others are sealed on s.
func (o *outQueue) sendBatch(s *session, p *packet) {
	o.prepare()
	o.held = append(o.held[:0], p)
fill:
	for len(o.held) < dgBatch {
		select {
		case q := <-o.q:
			o.held = append(o.held, q)
		default:
			break fill
		}
	}
	o.took = len(o.held)
	o.sendHeld(s)
}

// prepare makes the datagram batch's buffers, on the first datagram
// (most pairs never talk). Under o.wmu.
func (o *outQueue) prepare() {
	if o.msgs == nil {
		o.msgs = make([]ipv4.Message, dgBatch)
		for i := range o.msgs {
			o.msgs[i].Buffers = make([][]byte, 1)
		}
		o.held = make([]*packet, 0, dgBatch)
	}
}

// txInline is the most packets of a device read that its reader sends
// itself to an idle queue (sendNow): a ping, a flow's ACKs, a request.
// Waking the queue's writer would cost a goroutine wake-up (on an idle
// machine a thread's) for no parallelism; larger reads still go through
// the writer, which sends while the reader seals the next.
const txInline = 4

// sendNow sends ps (at most dgBatch packets, sealed by the caller's
// preseal on one session) at once, in the caller's goroutine, if nothing
// queued earlier is still unsent and no one else is sending on the queue;
// it reports whether it did (the packets are then the free list's
// again). Otherwise the caller queues them as usual.
func (o *outQueue) sendNow(ps []*packet) bool {
	s := ps[0].sealed
	if s == nil || o.queued.Load() != 0 || (s.conn != nil && s.conn.IsClosed()) || !o.wmu.TryLock() {
		return false
	}
	defer o.wmu.Unlock()
	if o.queued.Load() != 0 { // queued meanwhile by another device's reader
		return false
	}
	o.pkts.Add(uint64(len(ps)))
	o.prepare()
	o.held = append(o.held[:0], ps...)
	o.sendHeld(s)
	return true
}

// sendHeld sends the held packets on s and puts them back on the free
// list. Under o.wmu.
func (o *outQueue) sendHeld(s *session) {
	if o.r.dg.gso.Load() {
		if o.gsoBuf == nil {
			o.gsoBuf = make([]byte, gsoMax)
		}
		sent, err := o.sendGSO(s)
		if err == nil || sent > 0 {
			o.sent(sent, len(o.held)-sent)
			o.release(0)
			return
		}
		// no UDP segmentation offload here: sendmmsg from now on
		o.r.dg.gso.Store(false)
		o.r.log.Debug("subnet datagrams: no UDP segmentation offload", "err", err)
	}
	n := 0
	for _, q := range o.held {
		var b []byte
		var err error
		if q.sealed != nil {
			b = q.buf[dgStart : dgStart+dgOverhead+q.n]
		} else {
			b, err = s.sealPacket(q)
		}
		if err != nil {
			o.r.drop(o.dep, reasonNoRoute, nil)
			continue
		}
		o.msgs[n].Buffers[0] = b
		o.msgs[n].Addr = s.udpAddr
		n++
	}
	sent := 0
	for sent < n {
		k, err := o.r.dg.pc.WriteBatch(o.msgs[sent:n], 0)
		if err != nil {
			for range n - sent {
				o.r.drop(o.dep, reasonNoRoute, nil) // sealed: nothing to log
			}
			break
		}
		sent += k
	}
	o.sent(sent, 0)
	o.release(n)
}

// sent counts sent datagrams and drops failed ones.
func (o *outQueue) sent(sent, failed int) {
	if sent > 0 {
		o.r.dg.afterSend()
	}
	o.r.dg.sent.Add(uint64(sent))
	for _, c := range []*counters{&o.r.count, &o.dep.count} {
		c.forwarded.Add(uint64(sent))
		c.datagrams.Add(uint64(sent))
	}
	for range failed {
		o.r.drop(o.dep, reasonNoRoute, nil) // sealed: nothing to log
	}
}

// release puts the held packets back and clears the first n messages.
func (o *outQueue) release(n int) {
	for i, q := range o.held {
		putPacket(q)
		o.held[i] = nil
	}
	for i := range o.msgs[:n] {
		o.msgs[i].Buffers[0], o.msgs[i].Addr = nil, nil
	}
}

// sendGSO seals the held packets into o.gsoBuf, runs of equal size
// (the last of a run may be shorter) back to back, and sends each run in
// one write that the kernel cuts into datagrams (UDP_SEGMENT). It
// returns how many packets went out.
func (o *outQueue) sendGSO(s *session) (int, error) {
	buf := o.gsoBuf
	sent, start, off, seg, short := 0, 0, 0, 0, false
	flush := func(end int) error {
		if off == 0 {
			return nil
		}
		err := o.r.dg.writeGSO(buf[:off], seg, s.addr)
		if err == nil {
			sent += end - start
		}
		start, off, short = end, 0, false
		return err
	}
	for i, q := range o.held {
		size := dgOverhead + q.n
		if off > 0 && (short || size > seg || off+size > len(buf) || i-start >= gsoSegments) {
			if err := flush(i); err != nil {
				return sent, err
			}
		}
		if off == 0 {
			seg = size
		}
		if q.sealed != nil {
			copy(buf[off:off+size], q.buf[dgStart:dgStart+size])
		} else if s.sealTo(buf[off:off+size], q) != nil {
			continue
		}
		off += size
		short = size < seg
	}
	return sent, flush(len(o.held))
}

// sealTo seals p as a datagram into dst (len dgOverhead+p.n).
func (s *session) sealTo(dst []byte, p *packet) error {
	c := s.counter.Add(1) - 1
	if c >= dgMaxCounter {
		return errors.New("session exhausted")
	}
	binary.BigEndian.PutUint32(dst[0:4], s.remote)
	binary.BigEndian.PutUint64(dst[4:12], c)
	binary.BigEndian.PutUint64(s.txNonce[4:], c)
	s.seal.Seal(dst[dgHeader:dgHeader], s.txNonce[:], p.data(), nil)
	return nil
}

// sealPacket turns p into a datagram in place and returns it (a slice of
// p's buffer): [receiver index][counter][sealed packet]. The queue's
// writer's: it uses the session's nonce space.
func (s *session) sealPacket(p *packet) ([]byte, error) {
	return s.sealIn(p, s.txNonce[:])
}

// sealIn is sealPacket with the caller's nonce space (12 bytes), for
// goroutines other than the queue's writer.
func (s *session) sealIn(p *packet, nonce []byte) ([]byte, error) {
	c := s.counter.Add(1) - 1
	if c >= dgMaxCounter {
		return nil, errors.New("session exhausted")
	}
	n := p.n
	b := p.buf[dgStart:]
	binary.BigEndian.PutUint32(b[0:4], s.remote)
	binary.BigEndian.PutUint64(b[4:12], c)
	clear(nonce[:4])
	binary.BigEndian.PutUint64(nonce[4:], c)
	s.seal.Seal(b[dgHeader:dgHeader], nonce, b[dgHeader:dgHeader+n], nil)
	return b[:dgOverhead+n], nil
}

// rxBatches is how many reads of the socket are in the receive pipeline
// at once.
const rxBatches = 4

// rxInline is the most datagrams of a read that the reader opens and
// delivers itself when the pipeline is idle: a ping, a flow's ACKs, a
// request. Handing them to a worker and to the delivering goroutine would
// cost two goroutine wake-ups each (on an idle machine two thread
// wake-ups, tens of microseconds in a VM) for no parallelism.
const rxInline = 4

const (
	// groReads is how many messages one read takes from a socket that
	// coalesces (UDP_GRO); each is up to groSegments datagrams (the
	// kernel's most) in up to groBuf bytes.
	groReads    = 4
	groSegments = 64
	groBuf      = 65535
	// dgMax is the largest datagram the receiver takes.
	dgMax = dgOverhead + maxPacket
)

// rxBatch is one read of the socket on its way through the receive
// pipeline: read, opened (by any worker), then checked and delivered in
// the order it was read.
type rxBatch struct {
	msgs  []ipv4.Message // the read's messages, into bufs
	bufs  [][]byte
	nmsgs int
	// the read's datagrams (a coalesced message is cut into its
	// segments), from bufs, the message each came in, and their packets
	dgs  [][]byte
	from []int
	pkts []*packet
	n    int
	// sess is the session each datagram opened on (nil: dropped, or
	// unknown when it named no session), ctr its counter.
	sess    []*session
	ctr     []uint64
	unknown []bool
	// opened receives when the worker has opened the batch.
	opened chan struct{}
}

// newRxBatch makes a batch for reads of dgBatch datagrams, or of
// groReads coalesced messages when the socket has UDP_GRO.
func newRxBatch(gro bool) *rxBatch {
	reads, size, dgs := dgBatch, dgMax, dgBatch
	if gro {
		reads, size, dgs = groReads, groBuf, groReads*groSegments
	}
	b := &rxBatch{
		msgs: make([]ipv4.Message, reads), bufs: make([][]byte, reads),
		dgs: make([][]byte, dgs), from: make([]int, dgs), pkts: make([]*packet, dgs),
		sess: make([]*session, dgs), ctr: make([]uint64, dgs), unknown: make([]bool, dgs),
		opened: make(chan struct{}, 1),
	}
	for i := range b.msgs {
		b.bufs[i] = make([]byte, size)
		b.msgs[i].Buffers = [][]byte{b.bufs[i]}
		if gro {
			b.msgs[i].OOB = make([]byte, groOOB)
		}
	}
	for i := range b.pkts {
		b.pkts[i] = getPacket()
	}
	return b
}

// split cuts the n messages read into their datagrams.
func (b *rxBatch) split(n int, gro bool) {
	b.nmsgs, b.n = n, 0
	for i := range n {
		m := &b.msgs[i]
		data := b.bufs[i][:m.N]
		seg := len(data)
		if gro {
			if s := groSize(m.OOB[:m.NN]); s > 0 && s < seg {
				seg = s
			}
		}
		for first := true; (first || len(data) > 0) && b.n < len(b.dgs); first = false {
			k := min(seg, len(data))
			b.dgs[b.n], b.from[b.n] = data[:k], i
			b.n++
			data = data[k:]
		}
	}
}

// receive reads datagrams until the socket is closed, many per read, and
// runs the rest of the receive pipeline, as wireguard-go does: workers
// (one per CPU, at most 4) open the batches in parallel, and one
// goroutine checks and delivers them in the order they were read (the
// replay window, the probes, the routing checks), writing the packets to
// the devices in batches. Reading, opening and the device writes (which
// run the inner flow's receive in the kernel) thus overlap on several
// cores, and the packets of a peer keep their order. On Linux the socket
// coalesces (UDP_GRO): one message of a read is a run of up to 64
// datagrams of a sender, which the kernel then handles once. A read of
// at most rxInline datagrams while no earlier read is in the pipeline
// the reader opens and delivers itself (a ping, ACKs): no wake-ups.
func (g *dgram) receive() {
	defer g.r.wg.Done()
	var (
		free    = make(chan *rxBatch, rxBatches)
		opening = make(chan *rxBatch, rxBatches)
		ordered = make(chan *rxBatch, rxBatches)
		workers = min(max(runtime.NumCPU(), 1), 4)
		gro     = g.gro
	)
	// Batches are made as the traffic needs them, up to rxBatches: an
	// idle node (no subnet yet) holds one (~0.6 MB), not all four.
	made := 0
	g.r.wg.Add(workers + 1)
	for range workers {
		go g.openBatches(opening)
	}
	go g.deliverBatches(ordered, free)
	defer close(ordered)
	defer close(opening)
	// the reader's own: small reads while the pipeline is idle
	bt := newBatcher(2*dgBatch, nil)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	fails := 0
	for {
		var b *rxBatch
		select {
		case b = <-free:
		default:
			if made < rxBatches {
				b = newRxBatch(gro)
				made++
				break
			}
			select {
			case b = <-free:
			case <-g.done:
				return
			}
		}
		n, err := g.readBatch(b.msgs)
		if err != nil {
			free <- b
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// an error that stays (the socket broke) must not spin
			fails++
			g.r.count.readErrors.Add(1)
			if fails == 1 || fails%100 == 0 {
				g.r.log.Warn("subnet datagram socket read failed", "err", err, "failures", fails)
			}
			t := time.NewTimer(readBackoff(fails))
			select {
			case <-g.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		fails = 0
		if g.blackhole.Load() || n == 0 {
			free <- b
			continue
		}
		b.split(n, gro)
		if b.n <= rxInline && g.inflight.Load() == 0 {
			// nothing read earlier is still on its way: this read
			// cannot overtake it, and the sessions' receive state is
			// the reader's for the moment
			g.openBatch(b, nonce)
			g.checkBatch(b, bt)
			bt.flush(g.r)
			g.inlineReads.Add(1)
			free <- b
			continue
		}
		g.inflight.Add(1)
		ordered <- b
		opening <- b
	}
}

// openBatch opens b's datagrams in place (a worker's part).
func (g *dgram) openBatch(b *rxBatch, nonce []byte) {
	for i := range b.n {
		b.sess[i], b.ctr[i], b.unknown[i] = g.unseal(b.dgs[i], b.pkts[i], nonce)
	}
}

// checkBatch checks b's opened packets in order and adds those to deliver
// to bt (the delivering goroutine's part, or the reader's for a small
// read while the pipeline is idle), then clears b's references for its
// next read.
func (g *dgram) checkBatch(b *rxBatch, bt *batcher) {
	for i := range b.n {
		p, s := b.pkts[i], b.sess[i]
		if s == nil {
			if a := b.msgs[b.from[i]].Addr; b.unknown[i] && a != nil {
				g.lookFor(a)
			}
			continue
		}
		b.sess[i] = nil
		if d, a := g.check(s, b.ctr[i], p); a != nil {
			bt.add(g.r, d, a, p)
		}
	}
	for i := range b.n {
		b.dgs[i] = nil
	}
	for i := range b.nmsgs {
		b.msgs[i].Addr = nil
	}
}

// openBatches is a worker of the receive pipeline: it opens the
// datagrams of each batch in place.
func (g *dgram) openBatches(opening <-chan *rxBatch) {
	defer g.r.wg.Done()
	nonce := make([]byte, chacha20poly1305.NonceSize)
	for b := range opening {
		g.openBatch(b, nonce)
		b.opened <- struct{}{}
	}
}

// deliverBatches is the last stage of the receive pipeline: in the order
// the batches were read, it checks their packets and writes them to the
// devices in batches, then frees the batches for the next reads. While
// more batches wait, their packets join the same device writes (up to
// the device's batch size), so that a receiver that fell behind catches
// up with fewer, larger writes.
func (g *dgram) deliverBatches(ordered <-chan *rxBatch, free chan<- *rxBatch) {
	defer g.r.wg.Done()
	bt := newBatcher(2*dgBatch, nil) // the packets are the batches', read into again
	held := make([]*rxBatch, 0, rxBatches)
	for b := range ordered {
		<-b.opened
		g.checkBatch(b, bt)
		held = append(held, b)
		if len(ordered) > 0 && len(held) < cap(held)-1 {
			continue // the next batch is read already: write with it
		}
		bt.flush(g.r)
		// done with them (the reader may take a small read itself once
		// none is left), then free for the next reads
		g.inflight.Add(-int32(len(held)))
		for i, h := range held {
			free <- h
			held[i] = nil
		}
		held = held[:0]
	}
}

// readBackoff is the wait after the nth read error in a row: 0 after
// the first, then doubling from 1 ms to at most a second.
func readBackoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(time.Millisecond<<min(n-2, 10), time.Second)
}

// handle opens the datagram of n bytes at p.buf[dgStart:] and delivers
// its packet alone.
func (g *dgram) handle(p *packet, n int, one [][]byte) {
	d, a := g.open(p, n)
	if a == nil {
		return
	}
	one[0] = p.withHead()
	if _, err := a.dev.Write(one, subnet.Offset); err == nil {
		g.r.count.delivered.Add(1)
		d.count.delivered.Add(1)
	}
	one[0] = nil
}

// open opens the datagram of n bytes at p.buf[dgStart:], checks the
// packet in it as a stream's, and returns its deployment and the
// attachment to deliver it to (p.data() then is the packet), or nil when
// it was dropped or was a probe (the deployment is nil when the datagram
// named no session or failed to open). It is unseal and check in one.
func (g *dgram) open(p *packet, n int) (*deployment, *attachment) {
	if g.nonce == nil {
		g.nonce = make([]byte, chacha20poly1305.NonceSize)
	}
	if n < 0 || dgStart+n > len(p.buf) {
		g.r.drop(nil, reasonBadDatagram, nil)
		return nil, nil
	}
	s, counter, _ := g.unseal(p.buf[dgStart:dgStart+n], p, g.nonce)
	if s == nil {
		return nil, nil
	}
	return g.check(s, counter, p)
}

// unseal opens the datagram b into p (p.data() then is its packet; b
// may be p's own buffer at dgStart, opened in place), nonce being the
// caller's scratch space, and returns its session and counter, or a nil
// session when it was dropped; unknown reports that it named no session.
// It touches no session state: the receive pipeline's workers run it in
// parallel.
func (g *dgram) unseal(b []byte, p *packet, nonce []byte) (s *session, counter uint64, unknown bool) {
	r := g.r
	if len(b) < dgOverhead+1 || len(b) > dgMax {
		r.drop(nil, reasonBadDatagram, nil)
		return nil, 0, false
	}
	s, ok := (*g.sessions.Load())[binary.BigEndian.Uint32(b[0:4])]
	if s == nil { // none, or one still being set up
		r.drop(nil, reasonUnauthorized, nil)
		return nil, 0, !ok
	}
	counter = binary.BigEndian.Uint64(b[4:12])
	clear(nonce[:4])
	binary.BigEndian.PutUint64(nonce[4:], counter)
	if _, err := s.open.Open(p.buf[subnet.Offset:subnet.Offset], nonce, b[dgHeader:], nil); err != nil {
		r.drop(s.dep, reasonBadDatagram, nil)
		return nil, 0, false
	}
	p.n = len(b) - dgOverhead
	return s, counter, false
}

// check takes the packet that opened on s with counter (p.data()): it
// rejects a replay, handles a probe or an answer, checks the packet as a
// stream's, and returns its deployment and the attachment to deliver it
// to, or nil. The receive loop runs it for the datagrams in the order
// they were read.
func (g *dgram) check(s *session, counter uint64, p *packet) (*deployment, *attachment) {
	r := g.r
	if !s.window.accept(counter) {
		r.drop(s.dep, reasonBadDatagram, nil)
		return nil, nil
	}
	g.received.Add(1)
	if o := s.out; o != nil {
		o.rx.Add(1)
		if !s.seen {
			s.seen = true
			g.adopt(s)
		}
	}
	if p.buf[subnet.Offset] < 0x10 { // version 0: a probe or an answer
		g.control(s, p.data())
		return s.dep, nil
	}
	if p.n < 20 {
		r.drop(s.dep, reasonMalformed, nil)
		return s.dep, nil
	}
	v := s.dep.view.Load()
	if v == nil { // removed meanwhile: its sessions go
		r.drop(nil, reasonUnauthorized, nil)
		return s.dep, nil
	}
	m, verdict, why, rt := v.fromPeer(s.peer, p.data())
	if verdict != verdictLocal {
		r.drop(s.dep, why, p.data())
		return s.dep, nil
	}
	p.n = m
	return s.dep, rt.att
}

// replayWindow is WireGuard's sliding window of received counters: a
// counter is accepted once, and only if it is not older than the window.
type replayWindow struct {
	last uint64
	ring [replayBlocks]uint64
}

const (
	replayBlocks = 32                      // blocks of 64 bits
	replaySize   = (replayBlocks - 1) * 64 // counters behind the last
)

// accept records counter and reports whether it is new and in the window.
func (w *replayWindow) accept(counter uint64) bool {
	if counter >= dgMaxCounter {
		return false
	}
	block := counter >> 6
	if counter > w.last {
		cur := w.last >> 6
		diff := min(block-cur, replayBlocks)
		for i := cur + 1; i <= cur+diff; i++ {
			w.ring[i%replayBlocks] = 0
		}
		w.last = counter
	} else if w.last-counter > replaySize {
		return false
	}
	i, bit := block%replayBlocks, uint64(1)<<(counter&63)
	old := w.ring[i]
	w.ring[i] = old | bit
	return old&bit == 0
}
