package actor

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Every envelope passes the same checks, in this order, before it reaches a
// mailbox; each failure is answered to the sender with its typed error and
// counted (refused_<code>):
//
//  1. rate: the sending peer is within its rate           rate-limited
//  2. host: the claimed host is the transport's peer      host-mismatch
//  3. authorization: the invocation (inline or the link   denied
//     session) authorizes this sender, receiver and
//     behavior; it is bound to the transport peer
//     (AuthRequest.Host), and an inline one to the
//     payload (rule binding)
//  4. one-shot use: an inline invocation's own nonce is   replay
//     new (the Authorizer records it, in the node's
//     store, until it expires)
//  5. runtime not closing                                 shutting-down
//  6. time: not expired, expiry not too far ahead         expired / bad-envelope
//  7. policy: the chain's policies accept the payload     denied
//  8. replay: the envelope's nonce is new for this sender replay
//  9. the actor exists, with that DID                     no-such-actor
//  10. the behavior exists                                unknown-behavior
//  11. the mailbox has room                               mailbox-full
//
// Replay is checked after authorization, so that nobody can burn another
// sender's nonces: an invocation's nonce is recorded only once its
// signature, chain and binding to the sending peer verified. An envelope in
// the session form claims no hosts, DIDs or behavior: link.expand takes
// them from the link and the session it names before these checks, so 2
// and the match of 3 hold by construction, and a session unknown on the
// link is refused as bad-envelope at 3. Its invocation was bound to the
// link's peer once, when the session was defined: the per-envelope path
// decodes no arguments and hashes no payload.

// receive runs the checks for an envelope that arrived on a link (in the
// full form, or in the session form rebuilt by link.expand).
func (s *System) receive(w *link, env *Envelope) {
	peer := w.l.Peer()
	s.stats.received.Add(1)
	now := w.held.clock(s.cfg.Now) // one reading for all the checks, shared by the read burst
	var answer replier = w
	if !s.limiter.allowCached(&w.bucket, peer, now) {
		s.refuse(env, answer, errorf(CodeRateLimited, "peer %s exceeds %.0f envelopes/s", shortHost(peer), s.cfg.PeerRate), peer)
		return
	}
	if env.From.Host != peer {
		s.refuse(env, answer, errorf(CodeHostMismatch, "envelope claims host %s but came from %s", shortHost(env.From.Host), shortHost(peer)), peer)
		return
	}
	var grant Grant
	var err *Error
	switch {
	case len(env.Invocation) > 0:
		grant, err = s.authorize(env.Invocation, env, peer, false, now)
	case env.Session != 0:
		grant, err = w.sessionGrant(env)
	default:
		err = errorf(CodeDenied, "no invocation: %s needs a capability", env.Behavior)
	}
	if err != nil {
		s.refuse(env, answer, err, peer)
		return
	}
	s.dispatch(env, grant, answer, peer, now, w)
}

func (w *link) sessionGrant(env *Envelope) (Grant, *Error) {
	rs := w.recvSess[env.Session]
	switch {
	case rs == nil:
		if err, cmd := w.tombstone(env.Session); err != nil {
			if env.Behavior == "" {
				env.Behavior = cmd // for the refusal's log line and metrics
			}
			return nil, err
		}
		return nil, errorf(CodeBadEnvelope, msgUnknownSession+" %d on this link", env.Session)
	case rs.iss != env.From.DID || rs.aud != env.To.DID || rs.cmd != env.Behavior:
		return nil, errorf(CodeBadEnvelope, "session %d is for %s from %s to %s, not this envelope", env.Session, rs.cmd, rs.iss.Short(), rs.aud.Short())
	}
	return rs.grant, nil
}

// authorize verifies an inline (one-shot) invocation for env, which came
// from the authenticated peer host, at now.
func (s *System) authorize(inv []byte, env *Envelope, host string, broadcast bool, now time.Time) (Grant, *Error) {
	req := AuthRequest{Cmd: env.Behavior, Issuer: env.From.DID, Audience: env.To.DID, Broadcast: broadcast, Host: host, Payload: env.Payload, Now: now}
	if broadcast {
		req.Audience = ""
	}
	g, err := s.cfg.Auth.Authorize(inv, req)
	if err != nil {
		return nil, denied(err)
	}
	return g, nil
}

// denied wraps an authorization failure as a denied error; the message is
// the authorizer's without its own "denied: " prefix.
func denied(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	msg := err.Error()
	const p = "denied: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		msg = msg[len(p):]
	}
	return &Error{Code: CodeDenied, Msg: msg}
}

// dispatch runs checks 3–9 for an envelope whose sender is authenticated and
// whose invocation is verified (grant nil: a local envelope with no
// invocation, trusted because it comes from this process). now is the time
// the caller's checks ran at. w is the link the envelope came on (nil:
// this host or a broadcast), whose reader calls dispatch: the delivery is
// held until the reader ends its read burst, and queued then, and the
// reader's caches (its last sender's replay window, its last route) are
// used.
func (s *System) dispatch(env *Envelope, grant Grant, answer replier, peer string, now time.Time, w *link) {
	var hold *heldWakes
	var seen *replayCache
	if w != nil {
		hold, seen = &w.held, &w.replay
	}
	if s.isClosed() {
		s.refuse(env, answer, &Error{Code: CodeShuttingDown, Msg: "node is shutting down"}, peer)
		return
	}
	if now.After(env.Expiry) {
		s.refuse(env, answer, errorf(CodeExpired, "envelope expired %s ago", now.Sub(env.Expiry).Round(time.Millisecond)), peer)
		return
	}
	if env.Expiry.Sub(now) > s.cfg.MaxExpiry+time.Minute {
		s.refuse(env, answer, errorf(CodeBadEnvelope, "expiry %s ahead exceeds the maximum %s", env.Expiry.Sub(now).Round(time.Second), s.cfg.MaxExpiry), peer)
		return
	}
	if grant != nil {
		if err := grant.Check(now, env.Payload); err != nil {
			s.refuse(env, answer, denied(err), peer)
			return
		}
	}
	if !s.replay.checkCached(seen, env.From, env.Nonce, now) {
		s.refuse(env, answer, errorf(CodeReplay, "nonce %d from %s was already used", env.Nonce, env.From.DID.Short()), peer)
		return
	}
	msg := Message{From: env.From, To: env.To, Behavior: env.Behavior, Topic: env.Topic, Expiry: env.Expiry, Trace: env.Trace, Payload: env.Payload, Issuer: env.From.DID}
	sc := s.parseTrace(&msg, peer)
	if env.Topic != "" {
		s.dispatchTopic(env, &msg, sc, answer, peer)
		return
	}
	a, b, err := s.route(env, w)
	if err != nil {
		s.refuse(env, answer, err, peer)
		return
	}
	d := newDelivery()
	d.msg, d.behavior, d.nonce, d.wantReply, d.answer = msg, b, env.Nonce, env.WantReply, answer
	d.setTrace(sc)
	if err := a.enqueue(d, hold); err != nil {
		d.finish()
		s.refuse(env, answer, err, peer)
		return
	}
	if hold == nil {
		s.stats.dispatched.Add(1) // else when hold queues it
	}
}

// route returns the actor env is for and its behavior, from w's last
// route (w nil: none) while no actor or behavior changed since.
func (s *System) route(env *Envelope, w *link) (*Actor, Behavior, *Error) {
	var r *linkRoute
	if w != nil {
		r = &w.route
		if r.a != nil && r.gen == s.routes.Load() && r.inbox == env.To.Inbox && r.behavior == env.Behavior && r.a.handle.DID == env.To.DID {
			return r.a, r.b, nil
		}
	}
	gen := s.routes.Load() // before the lookups: a change during them invalidates r
	a := s.actor(env.To.Inbox)
	if a == nil || a.handle.DID != env.To.DID {
		return nil, nil, errorf(CodeNoSuchActor, "no actor %s on this host", env.To)
	}
	b, ok := a.behavior(env.Behavior)
	if !ok {
		return nil, nil, errorf(CodeUnknownBehavior, "%s has no behavior %s", a.handle.Inbox, env.Behavior)
	}
	if r != nil {
		*r = linkRoute{gen: gen, inbox: env.To.Inbox, behavior: env.Behavior, a: a, b: b}
	}
	return a, b, nil
}

// dispatchTopic delivers a broadcast to every local subscriber of its topic
// that has the behavior, queueing each delivery at once (not held: whether
// any subscriber took it decides the answer).
func (s *System) dispatchTopic(env *Envelope, msg *Message, sc trace.SpanContext, answer replier, peer string) {
	s.mu.RLock()
	var targets []*Actor
	if ts := s.topics[env.Topic]; ts != nil {
		for a := range ts.actors {
			targets = append(targets, a)
		}
	}
	s.mu.RUnlock()
	delivered := 0
	for _, a := range targets {
		b, ok := a.behavior(env.Behavior)
		if !ok {
			continue
		}
		m := *msg
		m.To = a.handle
		d := newDelivery()
		d.msg, d.behavior, d.nonce, d.wantReply, d.answer = m, b, env.Nonce, env.WantReply, answer
		d.setTrace(sc)
		if err := a.enqueue(d, nil); err != nil {
			d.finish()
			s.refuse(env, answer, err, peer)
			continue
		}
		delivered++
	}
	if delivered == 0 {
		s.refuse(env, answer, errorf(CodeUnknownBehavior, "no subscriber of %s handles %s here", env.Topic, env.Behavior), peer)
		return
	}
	s.stats.dispatched.Add(1)
}

// refuse counts a refusal and answers it. Answers to a peer that is over its
// rate are themselves rate-limited: a flood gets a bounded number of
// answers, and the rest are counted as refused_unanswered.
func (s *System) refuse(env *Envelope, answer replier, err *Error, peer string) {
	if w, ok := answer.(*link); ok {
		// On the link's reader (receive): the answer may wait for room in
		// the link's queue, so the deliveries queued so far are not held.
		w.held.flush()
	}
	s.stats.inc("refused_" + string(err.Code))
	s.cfg.Observer.Refused(env.Behavior, err.Code)
	s.log.Debug("envelope refused", "code", err.Code, "behavior", env.Behavior, "from", env.From.String(), "err", err.Msg)
	if err.Code == CodeRateLimited && !s.limiter.allowAnswer(peer, s.cfg.Now()) {
		s.stats.inc("refused_unanswered")
		return
	}
	if env.Topic != "" && err.Code == CodeUnknownBehavior {
		// A broadcast nobody here subscribes to is not an error worth
		// answering: gossip reaches every subscriber of the topic.
		return
	}
	answer.reply(&Reply{InReplyTo: env.Nonce, Err: err})
}

// send delivers a one-way envelope.
//
// A one-way envelope to another host is kept for a while (sentSends), so
// that if the receiver refuses it because it no longer holds its session
// (evicted), it is sent once more with the session defined again, as an
// Invoke is.
//
// Such an envelope takes its nonce on its link, under the link's lock
// (link.sendEnvelope): concurrent senders then put their envelopes on the
// link in the order of their nonces, so a sender that waited for the lock
// cannot fall behind the receiver's replay window (replayWindowBits) and be
// refused as a replay.
func (s *System) send(ctx context.Context, from *Actor, env *Envelope, now time.Time) error {
	oneWay := env.To.Host != s.self && len(env.Invocation) == 0
	if !oneWay && env.Nonce == 0 {
		env.Nonce = s.nextNonce() // else it takes one on its link
	}
	_, err := s.sendVia(ctx, from, env, now, oneWay)
	return err
}

// resend sends a kept one-way envelope again after its receiver refused
// its session (deliverReply forgot ours, so the session is defined anew).
// The nonce is not spent: the envelope was refused before the replay
// check. It is not kept again: one resend at most.
func (s *System) resend(k sentSend) {
	ctx, cancel := context.WithDeadline(context.Background(), k.env.Expiry)
	defer cancel()
	if _, err := s.sendVia(ctx, k.from, &k.env, s.cfg.Now(), false); err != nil {
		s.stats.inc("send_resend_failed")
		s.log.Debug("resend failed", "peer_id", k.env.To.Host, "behavior", k.env.Behavior, "err", err)
	}
}

// sendVia delivers an envelope and returns the link it went on (nil for
// this host); now is the time it is sent. oneWay: a one-way envelope in
// the session form to another host, which takes its nonce on the link and
// is kept for a resend (send).
func (s *System) sendVia(ctx context.Context, from *Actor, env *Envelope, now time.Time, oneWay bool) (*link, error) {
	if env.To.Host == s.self {
		s.deliverLocal(env, s.local)
		return nil, nil
	}
	return s.sendRemote(ctx, from, env, now, oneWay)
}

func (s *System) sendRemote(ctx context.Context, from *Actor, env *Envelope, now time.Time, oneWay bool) (*link, error) {
	for attempt := 0; ; attempt++ {
		w, err := s.linkTo(ctx, env.To.Host)
		if err != nil {
			return nil, err
		}
		err = w.sendEnvelope(ctx, from, env, now, oneWay)
		if err == nil {
			s.stats.sent.Add(1)
			return w, nil
		}
		if _, ok := err.(*Error); ok || ctx.Err() != nil || attempt == 1 {
			return nil, err
		}
		// The link died under us: forget it and try a fresh one once.
		s.dropLink(w)
	}
}

// deliverLocal runs the checks for an envelope to an actor of this host.
// An inline invocation (relayed from the CLI) is verified like a remote
// one; an envelope with none comes from an actor of this process and is
// trusted.
func (s *System) deliverLocal(env *Envelope, answer replier) {
	s.stats.inc("received_local")
	now := s.cfg.Now()
	var grant Grant
	if len(env.Invocation) > 0 {
		g, err := s.authorize(env.Invocation, env, s.self, false, now)
		if err != nil {
			s.refuse(env, answer, err, s.self)
			return
		}
		grant = g
	}
	s.dispatch(env, grant, answer, s.self, now, nil)
}

// invoke sends env and waits for its reply.
func (s *System) invoke(ctx context.Context, from *Actor, env *Envelope, now time.Time) (*Reply, error) {
	p := &pending{host: env.To.Host, ch: make(chan *Reply, 1)}
	s.pendMu.Lock()
	s.pending[env.Nonce] = p
	s.pendMu.Unlock()
	defer func() {
		s.pendMu.Lock()
		delete(s.pending, env.Nonce)
		s.pendMu.Unlock()
	}()
	w, err := s.sendVia(ctx, from, env, now, false)
	if err != nil {
		return nil, err
	}
	var gone <-chan struct{} // nil (never ready) for this host
	if w != nil {
		gone = w.gone
	}
	timer := time.NewTimer(untilExpiry(now, env.Expiry))
	defer timer.Stop()
	for resent := false; ; resent = true {
		r, err := s.await(ctx, env, p, gone, timer)
		if resent || w == nil || env.Session == 0 || r == nil || !unknownSession(r.Err) {
			return r, err
		}
		// The receiver no longer holds the session (it evicted it):
		// deliverReply forgot ours, so sending again defines it anew. The
		// nonce is not spent: the envelope was refused before the replay
		// check.
		s.stats.inc("session_resends")
		if w, err = s.sendVia(ctx, from, env, s.cfg.Now(), false); err != nil {
			return nil, err
		}
		gone = w.gone
	}
}

// await waits for the reply to env, the loss of its link (gone), its
// deadline (timer) or the end of ctx.
func (s *System) await(ctx context.Context, env *Envelope, p *pending, gone <-chan struct{}, timer *time.Timer) (*Reply, error) {
	reply := func(r *Reply) (*Reply, error) {
		if r.Err != nil {
			return r, r.Err
		}
		return r, nil
	}
	select {
	case r := <-p.ch:
		return reply(r)
	case <-gone:
		// The reader delivers a reply before it drops the link, so one
		// that came is in p.ch by now.
		select {
		case r := <-p.ch:
			return reply(r)
		default:
		}
		s.stats.inc("invokes_link_lost")
		return nil, errorf(CodeUnreachable, "the link to %s closed before %s was answered", shortHost(env.To.Host), env.Behavior)
	case <-timer.C:
		return nil, errorf(CodeTimeout, "no reply to %s from %s before the deadline", env.Behavior, env.To)
	case <-ctx.Done():
		return nil, errorf(CodeTimeout, "no reply to %s from %s: %v", env.Behavior, env.To, ctx.Err())
	}
}

// deliverReply hands a reply to the Invoke waiting for it. A reply from
// another host than the one invoked is dropped and counted, and so is one
// whose From names another host than the one it came from (the link's
// authenticated peer, or this node): a broadcast's collector accepts
// replies from any host and relies on From to say which (the bid round's
// unsigned bids, docs/security.md "Bids"). A refusal names no sender.
func (s *System) deliverReply(from string, r *Reply) {
	if r.From.Host != "" && r.From.Host != from {
		s.stats.inc("replies_from_wrong_host")
		return
	}
	if unknownSession(r.Err) || r.Err != nil && r.Err.Code == CodeDenied && from != s.self {
		s.forgetSessions(from)
	}
	s.pendMu.Lock()
	p := s.pending[r.InReplyTo]
	s.pendMu.Unlock()
	if p == nil {
		if unknownSession(r.Err) {
			if k, ok := s.sent.take(r.InReplyTo, from); ok {
				s.stats.inc("session_resends")
				go s.resend(k)
				return
			}
		}
		if r.Err != nil {
			// The answer to a Send: the refusal is counted and logged.
			s.stats.inc("send_refused_" + string(r.Err.Code))
			s.log.Debug("envelope refused by receiver", "peer_id", from, "err", r.Err)
		} else {
			s.stats.inc("late_replies")
		}
		return
	}
	if p.host != "" && p.host != from {
		s.stats.inc("replies_from_wrong_host")
		return
	}
	if p.fn != nil {
		p.fn(r)
		return
	}
	select {
	case p.ch <- r:
	default:
	}
}

// unknownSession reports whether err refuses an envelope because its link
// session is not (or no longer) defined on the receiver.
func unknownSession(err *Error) bool {
	return err != nil && err.Code == CodeBadEnvelope && strings.HasPrefix(err.Msg, msgUnknownSession)
}

// publish broadcasts env on its topic.
func (s *System) publish(ctx context.Context, from *Actor, env *Envelope, collect func(*Reply)) error {
	if len(env.Invocation) == 0 {
		inv, err := s.cfg.Issuer.Issue(from.key, IssueParams{Cmd: env.Behavior, Expiry: env.Expiry, Host: s.self, Payload: env.Payload})
		if err != nil {
			return err
		}
		env.Invocation = inv
	}
	frame := EncodeEnvelope(env)
	if len(frame) > s.cfg.MaxEnvelope {
		return errorf(CodeTooLarge, "envelope of %d bytes exceeds the limit of %d", len(frame), s.cfg.MaxEnvelope)
	}
	if collect != nil {
		p := &pending{fn: collect}
		s.pendMu.Lock()
		s.pending[env.Nonce] = p
		s.pendMu.Unlock()
		go func() {
			<-ctx.Done()
			s.pendMu.Lock()
			delete(s.pending, env.Nonce)
			s.pendMu.Unlock()
		}()
	}
	if err := s.cfg.Transport.Publish(ctx, env.Topic, frame); err != nil {
		return errorf(CodeUnreachable, "publish on %s: %v", env.Topic, err)
	}
	s.stats.inc("published")
	return nil
}

// subscribe adds a to topic's subscribers, subscribing the transport on the
// first one.
func (s *System) subscribe(a *Actor, topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.topics[topic]; ts != nil {
		ts.actors[a] = true
		return nil
	}
	cancel, err := s.cfg.Transport.Subscribe(topic, func(pub string, frame []byte) { s.receiveBroadcast(topic, pub, frame) })
	if err != nil {
		return err
	}
	s.topics[topic] = &topicState{cancel: cancel, actors: map[*Actor]bool{a: true}}
	return nil
}

// receiveBroadcast runs the checks for a broadcast; answers go back to the
// publisher over a link.
func (s *System) receiveBroadcast(topic, publisher string, frame []byte) {
	s.stats.inc("received_broadcast")
	env, err := DecodeEnvelope(frame)
	if err != nil {
		s.stats.inc("bad_frames")
		return
	}
	answer := &publisherAnswer{s: s, host: publisher}
	now := s.cfg.Now()
	switch {
	case env.Topic != topic:
		s.refuse(env, answer, errorf(CodeBadEnvelope, "envelope for topic %q published on %q", env.Topic, topic), publisher)
		return
	case !s.limiter.allow(publisher, now):
		s.refuse(env, answer, errorf(CodeRateLimited, "peer %s exceeds its rate", shortHost(publisher)), publisher)
		return
	case env.From.Host != publisher:
		s.refuse(env, answer, errorf(CodeHostMismatch, "broadcast claims host %s but was published by %s", shortHost(env.From.Host), shortHost(publisher)), publisher)
		return
	}
	grant, aerr := s.authorize(env.Invocation, env, publisher, true, now)
	if aerr != nil {
		s.refuse(env, answer, aerr, publisher)
		return
	}
	s.dispatch(env, grant, answer, publisher, now, nil)
}

// Relay sends an envelope that already carries its invocation — a command
// the CLI signed with the user's key — from this host, and returns the
// reply when env.WantReply (else nil). The runtime sets the nonce, the
// expiry (from ctx) and From.Host; From.DID must be the invocation's issuer.
func (s *System) Relay(ctx context.Context, env *Envelope) (*Reply, error) {
	if len(env.Invocation) == 0 {
		return nil, errorf(CodeDenied, "relayed envelope carries no invocation")
	}
	now := s.cfg.Now()
	env.Nonce = s.nextNonce()
	env.Expiry = s.expiryAt(ctx, now)
	env.From.Host = s.self
	if env.WantReply {
		return s.invoke(ctx, nil, env, now)
	}
	return nil, s.send(ctx, nil, env, now)
}

// RelayBroadcast publishes an envelope that carries its invocation, calling
// collect with each reply until ctx is done.
func (s *System) RelayBroadcast(ctx context.Context, env *Envelope, collect func(*Reply)) error {
	if len(env.Invocation) == 0 {
		return errorf(CodeDenied, "relayed envelope carries no invocation")
	}
	env.Nonce = s.nextNonce()
	env.Expiry = s.expiry(ctx)
	env.From.Host = s.self
	env.WantReply = collect != nil
	return s.publish(ctx, nil, env, collect)
}

// replier answers an envelope: over the link it came on (*link), to this
// host's pending invokes (localAnswer), or to a broadcast's publisher.
type replier interface {
	reply(*Reply)
}

func (w *link) reply(r *Reply) { w.sendReply(r) }

// localAnswer answers envelopes sent within this host.
type localAnswer struct{ s *System }

func (l *localAnswer) reply(r *Reply) { l.s.deliverReply(l.s.self, r) }

// publisherAnswer answers a broadcast over a link to its publisher.
type publisherAnswer struct {
	s    *System
	host string
}

func (p *publisherAnswer) reply(r *Reply) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := p.s.linkTo(ctx, p.host)
	if err != nil {
		p.s.stats.inc("reply_send_failed")
		return
	}
	w.sendReply(r)
}
