package actor

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// link is the runtime's state of one transport link: the sessions defined in
// each direction. A session is an invocation sent once on the link and
// referred to by number by later envelopes, so the cost of verifying it is
// paid once per link, not once per message.
type link struct {
	l   Link
	sys *System

	mu       sync.Mutex            // serializes session definition + Send, so definitions precede uses
	sendSess map[sessKey]*sendSess // guarded by mu
	// lastSess is the session of the last envelope sent, or nil: always
	// one in sendSess (nil once any is forgotten). A flow of envelopes of
	// one sender, receiver and behavior skips the map's hash of their two
	// DIDs. Guarded by mu.
	lastSess *sendSess
	nextSess uint32 // guarded by mu
	// scratch is the buffer envelopes are encoded into when the link
	// copies what it sends (a CopyingLink); guarded by mu.
	scratch []byte

	replyMu  sync.Mutex
	replyBuf []byte // replies are encoded into it (CopyingLink); guarded by replyMu

	// The sessions the peer defined: only the reader goroutine touches
	// them. recvSess holds at most Config.MaxSessionsPerLink, whose
	// invocations take at most linkSessionBytes together; recvOrder
	// lists them oldest first (the next to evict), recvByKey the latest
	// one per (sender, receiver, behavior), and tombs the last few that
	// failed authorization, so envelopes naming them are answered denied.
	recvSess  map[uint32]*recvSess
	recvOrder list.List // of *recvSess
	recvByKey map[sessKey]*recvSess
	recvBytes int // the invocations' sizes in recvSess, summed
	tombs     [tombstones]tomb
	nextTomb  int
	// held: the actors the reader queued deliveries for in its current
	// read burst, woken when it ends (only the reader touches it).
	held heldWakes
	// The reader's caches, only the reader touches them: the peer's
	// rate buckets (peerLimiter.allowCached), the last sender's replay
	// window (replayGuard.checkCached) and the last route (System.route).
	bucket *peerBuckets
	replay replayCache
	route  linkRoute

	// gone is closed when the link is dropped: invokes waiting for a
	// reply on it fail at once (the reply would have come on this link).
	gone     chan struct{}
	goneOnce sync.Once

	protectOnce sync.Once
}

// linkRoute is the actor and behavior the last envelope a link's reader
// dispatched reached (System.route): its next envelopes to the same inbox
// and behavior skip both lookups while System.routes is unchanged.
type linkRoute struct {
	gen      uint64 // System.routes when looked up
	inbox    string
	behavior string
	a        *Actor
	b        Behavior
}

type sessKey struct {
	from, to identity.DID
	cmd      string
}

type sendSess struct {
	key   sessKey
	id    uint32
	renew time.Time // issue a new invocation after this
	gen   uint64    // the issuer's generation when issued
}

type recvSess struct {
	id       uint32
	grant    Grant
	iss, aud identity.DID
	cmd      string
	size     int           // the invocation's length, counted against the link's budget
	elem     *list.Element // in link.recvOrder
}

// tomb remembers a session whose authorization failed, without its grant
// or its DIDs: what to answer the envelopes that name it, and its behavior
// (cut to tombCmdLen) for the refusal's log line and metrics.
type tomb struct {
	id  uint32 // 0: unused
	err *Error
	cmd string
}

const (
	// tombstones is how many failed sessions a link remembers.
	tombstones = 8
	// tombMsgLen bounds the message a tombstone keeps, tombCmdLen its
	// behavior.
	tombMsgLen = 512
	tombCmdLen = 256
	// linkSessionBytes bounds the invocations a link's sessions hold
	// together, whatever MaxSessionsPerLink allows: 8 KiB each on average
	// at the default count (honest ones are a few KiB).
	linkSessionBytes = 8 << 20
	// msgUnknownSession starts the bad-envelope answer to an envelope
	// naming a session its link does not hold (never defined, evicted, or
	// refused over the peer's rate); a sender receiving it defines its
	// sessions on that link again.
	msgUnknownSession = "unknown session"
)

// wrap returns the runtime state of l, creating it on first sight; created
// says whether this call created it (and so must serve it: exactly one
// reader per link).
func (s *System) wrap(l Link) (w *link, created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.links[l]; ok {
		return w, false
	}
	w = newLink(l, s)
	s.links[l] = w
	if _, ok := s.byHost[l.Peer()]; !ok {
		s.byHost[l.Peer()] = w
	}
	return w, true
}

func newLink(l Link, s *System) *link {
	return &link{l: l, sys: s, sendSess: map[sessKey]*sendSess{}, recvSess: map[uint32]*recvSess{}, recvByKey: map[sessKey]*recvSess{}, gone: make(chan struct{})}
}

// linkTo returns a link to host; for a link this runtime dialed, it starts
// the reader that receives replies and the peer's envelopes.
func (s *System) linkTo(ctx context.Context, host string) (*link, error) {
	s.mu.RLock()
	w := s.byHost[host]
	s.mu.RUnlock()
	if w != nil {
		return w, nil
	}
	l, err := s.cfg.Transport.Link(ctx, host)
	if err != nil {
		return nil, errorf(CodeUnreachable, "%s: %v", shortHost(host), err)
	}
	w, created := s.wrap(l)
	s.mu.Lock()
	s.byHost[host] = w
	s.mu.Unlock()
	if created {
		go s.serveLink(w)
	}
	return w, nil
}

func (s *System) dropLink(w *link) {
	s.mu.Lock()
	if s.links[w.l] == w {
		delete(s.links, w.l)
	}
	if s.byHost[w.l.Peer()] == w {
		delete(s.byHost, w.l.Peer())
	}
	s.mu.Unlock()
	w.l.Close()
	w.goneOnce.Do(func() { close(w.gone) })
}

// sendEnvelope writes env on the link, defining a session first when the
// link has none valid for (from, to, behavior), and sends it in the session
// form (see codec.go). Envelopes that already carry an invocation (relayed
// from the CLI) are sent as they are, in the full form.
//
// now is the time the envelope is sent (the caller's reading, taken
// before the lock, which serializes all senders on the link). oneWay (a
// one-way envelope in the session form, System.send): env takes its nonce
// here, under the lock, so the link carries such envelopes in the order of
// their nonces, and is kept for a resend (sentSends) until the send fails.
func (w *link) sendEnvelope(ctx context.Context, from *Actor, env *Envelope, now time.Time, oneWay bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if oneWay {
		env.Nonce = w.sys.nextNonce()
	}
	cl, copying := w.l.(CopyingLink)
	var frame []byte
	if copying {
		frame = w.scratch[:0]
	}
	if len(env.Invocation) == 0 {
		key := sessKey{from: env.From.DID, to: env.To.DID, cmd: env.Behavior}
		ss := w.lastSess
		if ss == nil || ss.key != key {
			ss = w.sendSess[key]
		}
		gen := issuerGeneration(w.sys.cfg.Issuer)
		if ss == nil || now.After(ss.renew) || ss.gen != gen {
			exp := now.Add(w.sys.cfg.SessionTTL)
			inv, err := w.sys.cfg.Issuer.Issue(from.key, IssueParams{Audience: env.To.DID, Cmd: env.Behavior, Expiry: exp, Host: w.sys.self, Session: true})
			if err != nil {
				return fmt.Errorf("issue invocation for %s: %w", env.Behavior, err)
			}
			w.nextSess++
			// Renew well before expiry, so an envelope in flight never
			// arrives under an expired session.
			ss = &sendSess{key: key, id: w.nextSess, renew: now.Add(w.sys.cfg.SessionTTL / 2), gen: gen}
			w.sendSess[key] = ss
			frame = appendSession(frame, session{id: ss.id, iss: key.from, aud: key.to, cmd: key.cmd, inv: inv})
			w.protect()
		}
		w.lastSess = ss // in sendSess, as lastSess always is
		env.Session = ss.id
	}
	frame = appendEnvelopeForm(frame, env, sessionFormOK(env, w.sys.self, w.l.Peer()))
	if len(frame) > w.sys.cfg.MaxEnvelope {
		return errorf(CodeTooLarge, "envelope of %d bytes exceeds the limit of %d", len(frame), w.sys.cfg.MaxEnvelope)
	}
	if oneWay {
		// Kept before it is on the link: the receiver's refusal may come
		// back at once.
		w.sys.sent.keep(from, env)
	}
	var err error
	if copying {
		err = cl.SendCopy(ctx, frame)
		if cap(frame) <= maxScratch {
			w.scratch = frame[:0]
		}
	} else {
		err = w.l.Send(ctx, frame)
	}
	if err != nil {
		if oneWay {
			w.sys.sent.take(env.Nonce, env.To.Host)
		}
		// A session defined in a frame that was not sent does not exist
		// on the other side: define it again next time.
		if len(env.Invocation) == 0 {
			delete(w.sendSess, sessKey{from: env.From.DID, to: env.To.DID, cmd: env.Behavior})
			w.lastSess = nil
		}
		return err
	}
	return nil
}

// maxScratch bounds the encoding buffer a link keeps (link.scratch).
const maxScratch = 64 << 10

func (w *link) sendReply(r *Reply) {
	ctx := &waitBound{d: replyWait}
	defer ctx.stop()
	var err error
	if cl, ok := w.l.(CopyingLink); ok {
		// Encoded into the link's reply buffer, copied by the link.
		w.replyMu.Lock()
		frame := appendReply(w.replyBuf[:0], r)
		err = cl.SendCopy(ctx, frame)
		if cap(frame) <= maxScratch {
			w.replyBuf = frame[:0]
		}
		w.replyMu.Unlock()
	} else {
		err = w.l.Send(ctx, appendReply(nil, r))
	}
	if err != nil {
		w.sys.stats.inc("reply_send_failed")
		w.sys.log.Debug("reply not sent", "peer_id", w.l.Peer(), "err", err)
	}
}

// serveLink reads frames from a link until it closes.
func (s *System) serveLink(w *link) {
	defer s.dropLink(w)
	defer w.held.flush()
	peer := w.l.Peer()
	// A ReadyLink says whether a frame is ready: while one is, the
	// deliveries of the frames read so far wait for their workers to be
	// woken together (heldWakes); other links wake them frame by frame.
	ready, _ := w.l.(ReadyLink)
	strs := newInterner()
	// The envelopes of the link's frames are decoded into env, one at a
	// time: receive copies what a behavior keeps into its delivery, and
	// nothing else holds an envelope past receive.
	var env Envelope
	for frames := 1; ; frames++ {
		if ready == nil || !ready.Ready() || frames%maxHeld == 0 {
			// Recv may wait: wake the workers first. A burst also
			// ends after maxHeld frames, whatever they held, so its
			// clock reading stays that fresh (heldWakes.clock).
			w.held.flush()
		}
		frame, err := w.l.Recv()
		if err == nil && len(frame) > s.cfg.MaxEnvelope {
			err = &FrameTooLargeError{Size: len(frame), Limit: s.cfg.MaxEnvelope, Head: frame[:FrameHeadSize]}
		}
		if err != nil {
			w.held.flush() // the answer may wait for room in the link's queue
			if !w.tooLarge(err) {
				return
			}
			continue
		}
		n, err := eachRecordInto(frame, strs, true, &env, func(r record) {
			switch r.kind {
			case recSession:
				w.held.flush() // verifying an invocation takes a while
				w.defineSession(r.session)
			case recEnvelope:
				if r.sessionForm {
					w.expand(r.env, peer)
				}
				s.receive(w, r.env)
			case recReply:
				s.deliverReply(peer, r.reply)
			}
		})
		if err != nil {
			w.held.flush()
			s.stats.inc("bad_frames")
			s.log.Debug("bad frame", "peer_id", peer, "err", err)
			if nonce, ok := headNonce(frame); ok && n == 0 {
				w.sendReply(&Reply{InReplyTo: nonce, Err: errorf(CodeBadEnvelope, "%v", err)})
			}
		}
	}
}

// tooLarge answers a frame over the size limit and reports true, or
// reports false for any other error of Recv (the link is closed).
func (w *link) tooLarge(err error) bool {
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) {
		return false
	}
	w.sys.stats.inc("refused_" + string(CodeTooLarge))
	if nonce, ok := headNonce(tl.Head); ok {
		w.sendReply(&Reply{InReplyTo: nonce, Err: errorf(CodeTooLarge, "envelope of %d bytes exceeds the limit of %d", tl.Size, tl.Limit)})
	}
	return true
}

// expand rebuilds the full envelope from one in the session form, before
// any check runs: the sender's host is the link's peer, the receiver's is
// this host, and the DIDs and the behavior are those of the session it
// names — which must be defined on this link, by an earlier record. An
// envelope naming no such session keeps them empty and is refused by
// receive, after the rate check, as today: bad-envelope, unknown session.
func (w *link) expand(env *Envelope, peer string) {
	env.From.Host = peer
	env.To.Host = w.sys.self
	if rs := w.recvSess[env.Session]; rs != nil {
		env.From.DID, env.To.DID, env.Behavior = rs.iss, rs.aud, rs.cmd
	}
}

// defineSession verifies a session's invocation once. Its verdict applies
// to every envelope that names the session. A definition costs the peer a
// token of its rate, like an envelope: over the rate it is not verified
// and the session stays undefined. A session that fails authorization is
// not kept (only a small tombstone, so envelopes naming it are answered
// denied). A new session for the same sender, receiver and behavior
// replaces the previous one (the sender uses only its latest), and past
// MaxSessionsPerLink sessions, or their invocations' byte budget, the
// oldest is evicted: an envelope naming it is answered bad-envelope
// "unknown session", and its sender defines it again.
func (w *link) defineSession(ss *session) {
	s := w.sys
	w.dropSession(ss.id) // a definition replaces whatever the id named
	now := s.cfg.Now()
	if !s.limiter.allowCached(&w.bucket, w.l.Peer(), now) {
		s.stats.inc("refused_" + string(CodeRateLimited))
		s.stats.inc("sessions_refused")
		return
	}
	// The invocation is a slice of the frame: a copy keeps a grant that
	// refers to it from holding the whole frame.
	inv := bytes.Clone(ss.inv)
	grant, err := s.cfg.Auth.Authorize(inv, AuthRequest{Cmd: ss.cmd, Issuer: ss.iss, Audience: ss.aud, Host: w.l.Peer(), Session: true, Now: now})
	key := sessKey{from: ss.iss, to: ss.aud, cmd: ss.cmd}
	if old := w.recvByKey[key]; old != nil {
		w.dropSession(old.id)
	}
	if err != nil {
		s.stats.inc("sessions_denied")
		e := denied(err)
		if len(e.Msg) > tombMsgLen {
			e = &Error{Code: e.Code, Msg: e.Msg[:tombMsgLen] + "…"}
		}
		cmd := ss.cmd
		if len(cmd) > tombCmdLen {
			cmd = cmd[:tombCmdLen]
		}
		w.tombs[w.nextTomb] = tomb{id: ss.id, err: e, cmd: strings.Clone(cmd)}
		w.nextTomb = (w.nextTomb + 1) % tombstones
		return
	}
	max := s.cfg.MaxSessionsPerLink
	for len(w.recvSess) > 0 && (len(w.recvSess) >= max || w.recvBytes+len(inv) > linkSessionBytes) {
		w.dropSession(w.recvOrder.Front().Value.(*recvSess).id)
		s.stats.inc("sessions_evicted")
	}
	w.protect()
	rs := &recvSess{id: ss.id, grant: grant, iss: ss.iss, aud: ss.aud, cmd: ss.cmd, size: len(inv)}
	rs.elem = w.recvOrder.PushBack(rs)
	w.recvSess[ss.id] = rs
	w.recvByKey[key] = rs
	w.recvBytes += rs.size
}

// protect asks the transport to keep room for the link's peer, once per
// link: this runtime works with it.
func (w *link) protect() {
	w.protectOnce.Do(func() {
		if p, ok := w.sys.cfg.Transport.(Protector); ok {
			_ = p.Protect(w.l.Peer())
		}
	})
}

// dropSession forgets the session id of the link, and its tombstone.
func (w *link) dropSession(id uint32) {
	for i := range w.tombs {
		if w.tombs[i].id == id {
			w.tombs[i] = tomb{}
		}
	}
	rs := w.recvSess[id]
	if rs == nil {
		return
	}
	delete(w.recvSess, id)
	w.recvOrder.Remove(rs.elem)
	key := sessKey{from: rs.iss, to: rs.aud, cmd: rs.cmd}
	if w.recvByKey[key] == rs {
		delete(w.recvByKey, key)
	}
	w.recvBytes -= rs.size
}

// tombstone returns the refusal of session id, and its behavior, if it
// failed authorization lately, or nil.
func (w *link) tombstone(id uint32) (*Error, string) {
	for _, t := range w.tombs {
		if t.id == id && id != 0 {
			return t.err, t.cmd
		}
	}
	return nil, ""
}

// Generationer is implemented by Issuers whose invocations can change, for
// example when an actor receives a new delegation: a link session issued
// under an older generation is issued anew.
type Generationer interface {
	Generation() uint64
}

func issuerGeneration(i Issuer) uint64 {
	if g, ok := i.(Generationer); ok {
		return g.Generation()
	}
	return 0
}

// forgetSessions drops the sessions this runtime defined on the link to
// host, so the next envelopes carry fresh invocations: called when a peer
// denies one (its trust or our delegations may have changed since).
func (s *System) forgetSessions(host string) {
	s.mu.RLock()
	w := s.byHost[host]
	s.mu.RUnlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	clear(w.sendSess)
	w.lastSess = nil
	w.mu.Unlock()
}

// replyWait bounds how long a reply waits for room on its link.
const replyWait = 10 * time.Second

// waitBound is a context that ends d after its Done is first called: it
// bounds a wait without reading the clock or starting a timer when there
// is no wait (a link's Send asks for Done only when its queue is full).
type waitBound struct {
	d    time.Duration
	mu   sync.Mutex
	done chan struct{} // created by the first Done; guarded by mu
	t    *time.Timer   // guarded by mu
	err  error         // guarded by mu
}

var _ context.Context = (*waitBound)(nil)

func (c *waitBound) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *waitBound) Value(any) any               { return nil }

func (c *waitBound) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		c.t = time.AfterFunc(c.d, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.err == nil {
				c.err = context.DeadlineExceeded
				close(c.done)
			}
		})
	}
	return c.done
}

func (c *waitBound) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stop releases the timer, if Done started one.
func (c *waitBound) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil {
		c.t.Stop()
	}
}
