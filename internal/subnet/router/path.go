package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The datagram path is used only while it is known to work. Each side
// sends a probe, a sealed datagram, on its session at setup, every
// probeEvery while the path is up, sooner when it sends datagrams and
// receives none back, and right after a missed one; the peer answers it
// on the same session. Until
// the first answer, and after maxMissed probes in a row went
// unanswered, the queue's packets take the stream (a "fallback",
// counted). A path that is down is probed with a backoff and set up
// afresh: the peer may have lost its keys (a restart). A session is
// replaced after rekeyAfter (or dgRekeyCounter datagrams); the old one
// is accepted for overlap. No session is used or accepted past
// rejectAfter, replaced or not (a rekey that failed, or the other side's
// session that its peer stopped using). A queue that sent nothing for idleAfter drops
// its session; its next packet sets one up again.

// timing are the path's intervals (tests shorten them).
type timing struct {
	tick          time.Duration // how often the paths are looked at
	probeEvery    time.Duration // a probe on an idle path that is up
	probeTimeout  time.Duration // a probe not answered by then is missed
	maxMissed     int           // missed probes in a row that take the path down
	downProbeMax  time.Duration // the longest wait between probes of a path that is down
	setupRetry    time.Duration // the first wait between fresh setups of a path that is down
	setupRetryMax time.Duration // the longest
	rekeyAfter    time.Duration // a session is replaced after this
	rejectAfter   time.Duration // and neither used nor accepted after this
	overlap       time.Duration // a replaced session still accepted
	idleAfter     time.Duration // a queue without packets drops its session
	pollQuiet     time.Duration // a send after this long without datagrams starts a busy poll
}

var defaultTiming = timing{
	tick:          500 * time.Millisecond,
	probeEvery:    5 * time.Second,
	probeTimeout:  time.Second,
	maxMissed:     3,
	downProbeMax:  30 * time.Second,
	setupRetry:    dgRetry,
	setupRetryMax: time.Minute,
	rekeyAfter:    2 * time.Minute,
	rejectAfter:   3 * time.Minute,
	overlap:       10 * time.Second,
	idleAfter:     3 * time.Minute,
	pollQuiet:     time.Millisecond,
}

// The plaintext of a probe or an answer: [type][sequence 8]. Its first
// byte is never an IPv4 packet's (version 4 in the high nibble).
const (
	ctlProbe  = 1
	ctlAnswer = 2
	ctlLen    = 9
)

// pathState is a queue's probing state, the maintenance loop's only.
type pathState struct {
	sess      *session  // the session probed
	seq       uint64    // the probe waiting for its answer (0: none)
	sentAt    time.Time // when the last probe went
	missed    int       // probes unanswered in a row
	nextProbe time.Time // while down: the next probe
	downWait  time.Duration
	nextSetup time.Time // while down: the next fresh setup
	setupWait time.Duration
	pkts, rx  uint64    // the queue's counts at the last tick
	activeAt  time.Time // the last tick that saw packets sent
	rxAt      time.Time // the last tick that saw datagrams received
}

// sealControl seals a probe or an answer on s. Off the packet path: it
// allocates.
func (s *session) sealControl(typ byte, seq uint64) []byte {
	c := s.counter.Add(1) - 1
	if c >= dgMaxCounter {
		return nil
	}
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[4:], c)
	b := make([]byte, dgHeader, dgOverhead+ctlLen)
	binary.BigEndian.PutUint32(b[0:4], s.remote)
	binary.BigEndian.PutUint64(b[4:12], c)
	var pt [ctlLen]byte
	pt[0] = typ
	binary.BigEndian.PutUint64(pt[1:], seq)
	return s.seal.Seal(b, nonce[:], pt[:], nil)
}

// probe sends a probe on s, for its queue, and returns its sequence
// number (0 if it could not go).
func (o *outQueue) probe(s *session) uint64 {
	g := o.r.dg
	if g == nil || g.conn == nil {
		return 0
	}
	seq := o.probes.Add(1)
	b := s.sealControl(ctlProbe, seq)
	if b == nil {
		return 0
	}
	if _, err := g.conn.WriteToUDPAddrPort(b, s.addr); err != nil {
		o.r.log.Debug("subnet datagram probe not sent", "deployment_id", o.dep.id, "peer_id", o.peer, "err", err)
	}
	return seq
}

// adopt makes s, a session that has just received its first datagram,
// the one its queue sends on if it is a responder's session newer than
// the queue's: the newest handshake wins, its index is the one the peer
// keeps. It then probes the path.
func (g *dgram) adopt(s *session) {
	o := s.out
	if s.initiator {
		return
	}
	if cur := o.tx.Load(); cur != nil && !cur.created.Before(s.created) {
		return
	}
	o.tx.Store(s)
	o.probe(s)
}

// control handles a probe or an answer that opened on s.
func (g *dgram) control(s *session, msg []byte) {
	if len(msg) != ctlLen {
		g.r.drop(s.dep, reasonBadDatagram, nil)
		return
	}
	seq := binary.BigEndian.Uint64(msg[1:])
	switch msg[0] {
	case ctlProbe:
		if b := s.sealControl(ctlAnswer, seq); b != nil && g.conn != nil {
			_, _ = g.conn.WriteToUDPAddrPort(b, s.addr)
		}
	case ctlAnswer:
		o := s.out
		if o == nil || seq == 0 || seq > o.probes.Load() {
			g.r.drop(s.dep, reasonBadDatagram, nil)
			return
		}
		for {
			a := o.acked.Load()
			if seq <= a || o.acked.CompareAndSwap(a, seq) {
				break
			}
		}
		if !o.up.Load() && o.tx.Load() != nil {
			o.up.Store(true)
			g.r.log.Debug("subnet datagram path up", "deployment_id", o.dep.id, "peer_id", o.peer)
		}
	default:
		g.r.drop(s.dep, reasonBadDatagram, nil)
	}
}

// lookFor handles a datagram from addr that names no session (this
// router lost it: it was restarted, or the deployment re-added): a fresh
// setup to each peer of the tables at that address, at most once a
// second. The peer answers the setup with a new session and sends on it.
func (g *dgram) lookFor(addr net.Addr) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return
	}
	from, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return
	}
	from = from.Unmap()
	now := time.Now().UnixNano()
	last := g.unknownAt.Load()
	if now-last < int64(time.Second) || !g.unknownAt.CompareAndSwap(last, now) {
		return
	}
	g.r.wg.Add(1)
	go func() {
		defer g.r.wg.Done()
		for _, o := range g.r.queues() {
			if s := o.tx.Load(); s != nil && s.addr.Addr() != from {
				continue
			}
			for _, c := range g.r.host.Network().ConnsToPeer(o.peer) {
				if ip, err := remoteIP(c); err == nil && ip == from {
					o.startSetup()
					break
				}
			}
		}
	}()
}

// queues returns the queues of all deployments.
func (r *Router) queues() []*outQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*outQueue
	for _, d := range r.deps {
		for _, o := range d.outs {
			out = append(out, o)
		}
	}
	return out
}

// startSetup sets up a datagram session in the background unless one is
// being set up.
func (o *outQueue) startSetup() {
	if o.ctx == nil || !o.settingUp.CompareAndSwap(false, true) {
		return
	}
	o.r.wg.Add(1)
	go func() {
		defer o.r.wg.Done()
		defer o.settingUp.Store(false)
		if err := o.r.dg.setup(o.ctx, o); err != nil && o.ctx.Err() == nil {
			o.r.log.Debug("subnet datagram session not set up, packets take the stream", "deployment_id", o.dep.id, "peer_id", o.peer, "err", err)
		}
	}()
}

// maintain looks at every queue's path each tick, and expires replaced
// sessions, until the router closes.
func (g *dgram) maintain() {
	defer g.r.wg.Done()
	t := time.NewTicker(g.r.timing.tick)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case now := <-t.C:
			for _, o := range g.r.queues() {
				o.tick(now)
			}
			g.expire(now, now.Add(-g.r.timing.rejectAfter))
		}
	}
}

// tick probes the queue's path, takes it down after missed probes, sets
// a fresh session up while it is down, rekeys an old session and drops
// an idle one.
func (o *outQueue) tick(now time.Time) {
	tm, ps := &o.r.timing, &o.ps
	s := o.tx.Load()
	if s == nil {
		ps.sess, ps.seq, ps.missed = nil, 0, 0
		return
	}
	if s != ps.sess { // a new session: its setup sent a probe
		ps.sess, ps.seq, ps.missed = s, o.probes.Load(), 0
		ps.sentAt, ps.activeAt, ps.rxAt = now, now, now
	}
	if p := o.pkts.Load(); p != ps.pkts {
		ps.pkts, ps.activeAt = p, now
	}
	if rx := o.rx.Load(); rx != ps.rx {
		ps.rx, ps.rxAt = rx, now
	}
	up := o.up.Load()
	if ps.seq != 0 {
		if o.acked.Load() >= ps.seq { // answered
			ps.seq, ps.missed, ps.downWait, ps.setupWait = 0, 0, 0, 0
		} else if now.Sub(ps.sentAt) >= tm.probeTimeout {
			ps.seq = 0
			ps.missed++
			if ps.missed >= tm.maxMissed && up {
				o.up.Store(false)
				up = false
				o.r.count.fallbacks.Add(1)
				o.dep.count.fallbacks.Add(1)
				o.r.log.Info("subnet datagram path lost, packets take the stream", "deployment_id", o.dep.id, "peer_id", o.peer, "missed_probes", ps.missed)
			}
		}
	}
	if now.Sub(s.created) >= tm.rejectAfter {
		// too old to use (its rekey failed): the stream, and a new
		// session on the next packet
		o.tx.CompareAndSwap(s, nil)
		o.up.Store(false)
		return
	}
	if now.Sub(ps.activeAt) >= tm.idleAfter {
		// idle: no probes, no rekeys; the next packet sets up again
		o.tx.CompareAndSwap(s, nil)
		o.up.Store(false)
		return
	}
	switch {
	case now.Before(ps.nextSetup):
	case !up && ps.missed >= tm.maxMissed:
		// the peer may have lost the session: a fresh one
		ps.setupWait = min(max(2*ps.setupWait, tm.setupRetry), tm.setupRetryMax)
		ps.nextSetup = now.Add(ps.setupWait)
		o.startSetup()
	case up && (now.Sub(s.created) >= rekeyAfter(tm, s) || s.counter.Load() >= dgRekeyCounter):
		ps.nextSetup = now.Add(tm.setupRetry)
		o.startSetup()
	}
	if ps.seq != 0 {
		return // a probe is out
	}
	var due bool
	switch {
	case !up:
		due = !now.Before(ps.nextProbe)
		if due {
			ps.downWait = min(max(2*ps.downWait, tm.probeTimeout), tm.downProbeMax)
			ps.nextProbe = now.Add(ps.downWait)
		}
	case ps.missed > 0, now.Sub(ps.sentAt) >= tm.probeEvery:
		// a missed probe is followed by the next at once: a flow that
		// stalls on a dead path sends too little to look suspect
		due = true
	default:
		// sent since the last probe and since anything came back, and
		// nothing came back for a while
		due = !ps.activeAt.Before(ps.rxAt) && !ps.sentAt.After(ps.activeAt) && now.Sub(ps.rxAt) >= tm.probeTimeout
	}
	if due {
		if seq := o.probe(s); seq != 0 {
			ps.seq, ps.sentAt = seq, now
		}
	}
}

// rekeyAfter is the age at which s is replaced: the initiator's side
// first, the responder's a little later (if the initiator has not, it
// went away), so that one handshake, not two, replaces it.
func rekeyAfter(tm *timing, s *session) time.Duration {
	if s.initiator {
		return tm.rekeyAfter
	}
	return tm.rekeyAfter + tm.overlap
}
