package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/identity"
)

// Authorizer checks that an invocation authorizes an envelope. internal/cap
// backs it in the node; tests may use AllowAll.
type Authorizer interface {
	// Authorize verifies the invocation container inv for req and returns
	// the grant, or an error (a *cap.DeniedError or similar) saying which
	// rule failed.
	Authorize(inv []byte, req AuthRequest) (Grant, error)
}

// AuthRequest is what an invocation must authorize.
type AuthRequest struct {
	Cmd       string       // the behavior
	Issuer    identity.DID // the sending actor's DID: the invocation's issuer
	Audience  identity.DID // the receiving actor's DID; empty for broadcasts
	Broadcast bool
	// Host is the authenticated transport peer the invocation came from
	// (this host's own ID for an envelope relayed here): the host the
	// invocation must be bound to.
	Host string
	// Session marks a link session's invocation, which serves many
	// envelopes on one authenticated link: it is bound to the host only.
	// Every other invocation is one-shot — a broadcast, a relayed user
	// command — and must commit to Payload and be accepted once.
	Session bool
	Payload []byte // the envelope's payload; nil for a session
	Now     time.Time
}

// Grant is a verified invocation. The runtime keeps grants of link sessions
// and checks them for every envelope that uses them.
type Grant interface {
	// Check reports whether the grant still authorizes a message with this
	// payload at now: time bounds, revocations since verification, and the
	// chain's policies evaluated against the payload.
	Check(now time.Time, payload []byte) error
	// Expiry is when the invocation expires (zero: never).
	Expiry() time.Time
}

// Issuer builds the invocations of outgoing envelopes, from the delegations
// the sending actor holds (or self-signed when it needs none).
type Issuer interface {
	Issue(from *identity.Key, p IssueParams) ([]byte, error)
}

// IssueParams describe an invocation the runtime needs.
type IssueParams struct {
	Audience identity.DID // the receiving actor; empty for a broadcast
	Cmd      string
	Expiry   time.Time
	// Host is this host's peer ID: the invocation is bound to it, so that
	// no other peer can send it.
	Host string
	// Session marks a link session's invocation (bound to Host only);
	// otherwise the invocation is one-shot and also commits to Payload.
	Session bool
	Payload []byte
}

// Config configures a System. Zero values take the defaults shown.
type Config struct {
	Transport Transport // required
	Auth      Authorizer
	Issuer    Issuer
	Logger    *slog.Logger
	Observer  Observer // metrics of handled and refused messages; nil: none
	// Tracer starts the server spans of behaviors whose envelope carried
	// a sampled trace (trace.go); nil: no spans, traces still propagate.
	Tracer trace.Tracer
	// TraceBehavior says which behaviors get a server span (when Tracer
	// is set and the trace is sampled); nil: none. Every other message
	// only carries its trace on: its nested sends continue it.
	TraceBehavior func(behavior string) bool

	Mailbox            int           // per actor; default 1024
	Workers            int           // the most goroutines per actor running behaviors, started on demand; default 8
	PeerRate           float64       // envelopes/s accepted per peer; default 200000
	PeerBurst          int           // default 20000
	MaxEnvelope        int           // bytes; default 4 MiB
	DefaultTimeout     time.Duration // Invoke deadline when ctx has none; default 30s
	MaxExpiry          time.Duration // longest envelope expiry accepted; default 10m
	SessionTTL         time.Duration // lifetime of a link session's invocation; default 10m
	MaxSessionsPerLink int           // sessions a peer may define on one link; default 1024
	Now                func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Mailbox <= 0 {
		c.Mailbox = 1024
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.PeerRate <= 0 {
		c.PeerRate = 200_000
	}
	if c.PeerBurst <= 0 {
		c.PeerBurst = 20_000
	}
	if c.MaxEnvelope <= 0 {
		c.MaxEnvelope = 4 << 20
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 30 * time.Second
	}
	if c.MaxExpiry <= 0 {
		c.MaxExpiry = 10 * time.Minute
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 10 * time.Minute
	}
	if c.MaxSessionsPerLink <= 0 {
		c.MaxSessionsPerLink = 1024
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Observer counts what the runtime does, for metrics. Its methods run on
// hot paths: they must be quick, safe for concurrent use, and never block.
type Observer interface {
	// Handled is called once for every message a behavior ran for, with
	// the code of its answer ("" when it succeeded) and how long it ran.
	Handled(behavior string, code Code, d time.Duration)
	// Refused is called once for every envelope refused before a behavior
	// ran (denied, expired, replayed, rate-limited, unknown…).
	Refused(behavior string, code Code)
}

type nopObserver struct{}

func (nopObserver) Handled(string, Code, time.Duration) {}
func (nopObserver) Refused(string, Code)                {}

// System is the actor runtime of one host: it owns the host's actors, the
// links to other hosts, and every check an envelope passes before dispatch.
type System struct {
	cfg  Config
	self string
	log  *slog.Logger

	mu     sync.RWMutex
	actors map[string]*Actor      // by inbox; guarded by mu
	links  map[Link]*link         // guarded by mu
	byHost map[string]*link       // the link used to send to a host; guarded by mu
	topics map[string]*topicState // guarded by mu
	// closed is set once, under mu (Spawn and Close check it under mu);
	// the per-envelope check reads it without the lock.
	closed atomic.Bool
	// timed says whether behaviors are timed: only for a configured
	// Observer (Handled takes the duration), so that without metrics a
	// message costs no clock readings around its behavior.
	timed bool
	// routes counts the changes of which actor and behavior an envelope
	// reaches (an actor spawned or removed, a behavior added or removed,
	// an actor stopped): a link's reader caches its last route (linkRoute)
	// while it is unchanged.
	routes atomic.Uint64

	pendMu  sync.Mutex
	pending map[uint64]*pending // guarded by pendMu
	sent    sentSends           // one-way envelopes kept for one resend

	nonce   atomic.Uint64
	replay  *replayGuard
	limiter *peerLimiter
	stats   stats
	stop    chan struct{}
	bg      sync.WaitGroup
	local   *localAnswer // answers envelopes sent within this host

	badTraces       badTraces       // malformed traceparents logged (trace.go)
	badTraceCounter BadTraceCounter // cfg.Tracer's, if it has one
}

type topicState struct {
	cancel func()
	actors map[*Actor]bool
}

type pending struct {
	host string       // the host a reply must come from; "" accepts any (broadcast)
	ch   chan *Reply  // unicast: buffered 1
	fn   func(*Reply) // broadcast: called per reply
}

// NewSystem starts a runtime on cfg.Transport.
func NewSystem(cfg Config) (*System, error) {
	if cfg.Transport == nil {
		return nil, errors.New("actor: no transport")
	}
	if cfg.Auth == nil || cfg.Issuer == nil {
		return nil, errors.New("actor: no authorizer or issuer (use AllowAll in tests)")
	}
	timed := cfg.Observer != nil
	cfg.setDefaults()
	s := &System{
		cfg:     cfg,
		timed:   timed,
		self:    cfg.Transport.Self(),
		log:     cfg.Logger.With("component", "actor"),
		actors:  map[string]*Actor{},
		links:   map[Link]*link{},
		byHost:  map[string]*link{},
		topics:  map[string]*topicState{},
		pending: map[uint64]*pending{},
		replay:  newReplayGuard(cfg.MaxExpiry + time.Minute),
		limiter: newPeerLimiter(cfg.PeerRate, cfg.PeerBurst),
		stop:    make(chan struct{}),
	}
	s.local = &localAnswer{s: s}
	s.badTraceCounter, _ = cfg.Tracer.(BadTraceCounter)
	s.nonce.Store(uint64(cfg.Now().UnixNano()))
	cfg.Transport.SetLinkHandler(func(l Link) {
		if w, created := s.wrap(l); created {
			s.serveLink(w)
		}
	})
	s.bg.Add(1)
	go s.housekeeping()
	return s, nil
}

// Self returns this host's ID.
func (s *System) Self() string { return s.self }

// housekeeping sweeps the replay guard and the rate limiters.
func (s *System) housekeeping() {
	defer s.bg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.cfg.Now()
			s.replay.sweep(now)
			s.limiter.sweep(now)
		}
	}
}

// SpawnOptions tune one actor.
type SpawnOptions struct {
	Workers int // the most goroutines running its behaviors at once, started on demand; 1 keeps messages in order
	Mailbox int
}

// Spawn starts an actor with its own key on inbox. The node's root actor uses
// RootInbox; children (orchestrators, allocations) use their IDs.
func (s *System) Spawn(key *identity.Key, inbox string, opts SpawnOptions) (*Actor, error) {
	if inbox == "" || len(inbox) > 128 {
		return nil, fmt.Errorf("actor: bad inbox %q", inbox)
	}
	if opts.Workers <= 0 {
		opts.Workers = s.cfg.Workers
	}
	if opts.Mailbox <= 0 {
		opts.Mailbox = s.cfg.Mailbox
	}
	a := &Actor{
		sys:       s,
		key:       key,
		handle:    Handle{DID: key.DID(), Host: s.self, Inbox: inbox},
		behaviors: map[string]Behavior{},
		mbox:      newMailbox(opts.Mailbox, opts.Workers),
	}
	a.mbox.start = a.startWorker
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, ErrShuttingDown
	}
	if _, ok := s.actors[inbox]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("actor: inbox %q is taken", inbox)
	}
	s.actors[inbox] = a
	s.routes.Add(1)
	s.mu.Unlock()
	return a, nil
}

func (s *System) actor(inbox string) *Actor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.actors[inbox]
}

func (s *System) remove(a *Actor) {
	s.mu.Lock()
	if s.actors[a.handle.Inbox] == a {
		delete(s.actors, a.handle.Inbox)
	}
	s.routes.Add(1)
	for topic, ts := range s.topics {
		delete(ts.actors, a)
		if len(ts.actors) == 0 {
			ts.cancel()
			delete(s.topics, topic)
		}
	}
	s.mu.Unlock()
}

// Close stops the runtime: new envelopes are refused with shutting-down,
// running behaviors finish (until ctx is done), pending Invokes fail, links
// close.
func (s *System) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	actors := make([]*Actor, 0, len(s.actors))
	for _, a := range s.actors {
		actors = append(actors, a)
	}
	for _, ts := range s.topics {
		ts.cancel()
	}
	s.mu.Unlock()
	close(s.stop)

	// An actor's workers return once its running behaviors did (and its
	// queued messages are answered shutting-down), and no actor is
	// spawned after closed is set: waiting for every actor's workers
	// waits for every behavior.
	var err error
	for _, a := range actors {
		if e := a.stopWait(ctx); e != nil && err == nil {
			err = fmt.Errorf("actor: behaviors still running at shutdown: %w", e)
		}
	}
	s.pendMu.Lock()
	for n, p := range s.pending {
		if p.ch != nil {
			select {
			case p.ch <- &Reply{InReplyTo: n, Err: &Error{Code: CodeShuttingDown, Msg: "runtime closed"}}:
			default:
			}
		}
		delete(s.pending, n)
	}
	s.pendMu.Unlock()
	s.mu.Lock()
	links := make([]*link, 0, len(s.links))
	for _, l := range s.links {
		links = append(links, l)
	}
	s.mu.Unlock()
	for _, l := range links {
		l.l.Close()
	}
	s.bg.Wait()
	return err
}

func (s *System) isClosed() bool { return s.closed.Load() }

// nextNonce returns a nonce unique for this runtime and larger than any
// nonce an earlier run of it sent (it is seeded with the clock).
func (s *System) nextNonce() uint64 { return s.nonce.Add(1) }

// expiry returns the envelope expiry for ctx.
func (s *System) expiry(ctx context.Context) time.Time { return s.expiryAt(ctx, s.cfg.Now()) }

// expiryAt is expiry for an envelope sent at now.
func (s *System) expiryAt(ctx context.Context, now time.Time) time.Time {
	exp := now.Add(s.cfg.DefaultTimeout)
	if d, ok := ctx.Deadline(); ok {
		exp = d
	}
	if max := now.Add(s.cfg.MaxExpiry); exp.After(max) {
		exp = max
	}
	return exp
}

// NodeHandle returns the handle of the root actor of the node on host.
func NodeHandle(host string) (Handle, error) {
	did, err := identity.DIDFromPeerID(host)
	if err != nil {
		return Handle{}, err
	}
	return Handle{DID: did, Host: host, Inbox: RootInbox}, nil
}

// Stats returns the runtime's counters: envelopes received, dispatched,
// refused per code, and more. Keys are stable metric names.
func (s *System) Stats() map[string]uint64 { return s.stats.snapshot() }

// stats counts what happens to envelopes: the counters of every envelope
// are fields, the rarer ones (refusals by code) a map.
type stats struct {
	received, dispatched, handled, sent atomic.Uint64
	m                                   sync.Map // string → *atomic.Uint64
}

func (st *stats) inc(name string) {
	v, ok := st.m.Load(name)
	if !ok {
		v, _ = st.m.LoadOrStore(name, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func (st *stats) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	for name, c := range map[string]*atomic.Uint64{"received": &st.received, "dispatched": &st.dispatched, "handled": &st.handled, "sent": &st.sent} {
		if n := c.Load(); n > 0 {
			out[name] = n
		}
	}
	st.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// StatNames lists counter names in a stable order (for tables).
func StatNames(m map[string]uint64) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// HasActor reports whether an actor of this runtime has DID d.
func (s *System) HasActor(d identity.DID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range s.actors {
		if a.handle.DID == d {
			return true
		}
	}
	return false
}
