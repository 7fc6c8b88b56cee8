package cap

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ucan-wg/go-ucan/pkg/args"
	"github.com/ucan-wg/go-ucan/pkg/policy"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/lru"
)

// Defaults of Config.
const (
	DefaultMaxDepth  = 8
	DefaultClockSkew = 30 * time.Second
	DefaultCacheSize = 4096
)

// Config configures a Verifier.
type Config struct {
	// Trust is the initial trust context (Verifier.SetTrust replaces it).
	Trust Trust
	// Revoked lists revoked tokens; nil means none is.
	Revoked RevocationSet
	// IsLocal reports whether an invocation's audience is this node (or
	// one of its actors). Nil refuses every invocation (VerifyChain does
	// not use it).
	IsLocal func(identity.DID) bool
	// MaxDepth bounds the number of delegations in a chain; 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// ClockSkew is allowed on both sides of every time bound; 0 means
	// DefaultClockSkew, a negative value none.
	ClockSkew time.Duration
	// CacheSize bounds each cache (verified delegations, authorized
	// invocations); 0 means DefaultCacheSize, a negative value disables
	// caching.
	CacheSize int
	// DeferPolicies makes Authorize skip the delegations' policies over the
	// invocation's arguments: the caller evaluates them over each message
	// with Check (the actor runtime, whose one link-session invocation
	// covers many messages, each with its own payload).
	DeferPolicies bool
}

// Verifier authorizes invocations against a trust context. It caches
// verified delegations and authorized invocations by CID; a cache hit
// still checks time bounds, revocation, trust and audience. It is safe for
// concurrent use.
type Verifier struct {
	trust   atomic.Pointer[Trust]
	revoked RevocationSet
	isLocal func(identity.DID) bool
	depth   int
	skew    time.Duration
	defer_  bool

	delegations *lru.Cache[string, *Delegation]
	authorized  *lru.Cache[[sha256.Size]byte, *authEntry]
}

// NewVerifier returns a Verifier configured by cfg.
func NewVerifier(cfg Config) *Verifier {
	v := &Verifier{revoked: cfg.Revoked, isLocal: cfg.IsLocal, depth: cfg.MaxDepth, skew: cfg.ClockSkew, defer_: cfg.DeferPolicies}
	if v.depth <= 0 {
		v.depth = DefaultMaxDepth
	}
	switch {
	case v.skew == 0:
		v.skew = DefaultClockSkew
	case v.skew < 0:
		v.skew = 0
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	v.delegations = lru.New[string, *Delegation](size)
	v.authorized = lru.New[[sha256.Size]byte, *authEntry](size)
	t := cfg.Trust
	v.trust.Store(&t)
	return v
}

// SetTrust replaces the trust context; it applies to the next check,
// cached authorizations included.
func (v *Verifier) SetTrust(t Trust) { v.trust.Store(&t) }

// Trust returns the current trust context.
func (v *Verifier) Trust() Trust { return *v.trust.Load() }

// Authorized is a successful authorization. It is shared between cache
// hits: do not modify it.
type Authorized struct {
	Invocation *Invocation
	Issuer     identity.DID // the invoker
	Subject    identity.DID // whose authority: the chain's root, or the issuer
	Audience   identity.DID // the local DID addressed
	Command    string
	Chain      []string  // delegation CIDs, root first
	Expiry     time.Time // earliest expiry of the invocation and its chain; zero: none
	// Binding is what the invocation's arguments bind it to (see
	// CheckBinding); empty fields when it names none.
	Binding Binding

	e *authEntry
}

// bound is the validity window of one token.
type bound struct {
	token     string // CID or TokenInvocation
	notBefore time.Time
	expiry    time.Time
}

// tokenPolicy is the non-empty policy of one delegation.
type tokenPolicy struct {
	token  string
	policy policy.Policy
}

// authEntry is a cached authorization: everything that cannot change.
type authEntry struct {
	res         *Authorized
	bounds      []bound
	cids        []string // delegation CIDs and the invocation's, for revocation
	policies    []tokenPolicy
	public      bool
	hasAudience bool // the invocation names an audience
	// broadcast entries were authorized for a topic (AuthorizeBroadcast):
	// the invocation names no audience, and none is checked.
	broadcast bool
	gen       atomic.Uint64 // 1 + the revocation generation last checked clean; 0: never checked
}

// Authorize checks that the sealed invocation inv, with the sealed
// delegations it references (any order; those already verified may be
// omitted), may run here at now. It checks every token's signature and
// time bounds, the links from the root delegation to the invoker, subject
// consistency, command attenuation, every delegation's policy over the
// arguments, depth, revocation, that the audience is local and that the
// root is trusted for the command (/public/… commands need none of the
// chain and trust checks, only a valid invocation). A refusal is a
// *DeniedError.
func (v *Verifier) Authorize(now time.Time, inv []byte, proofs [][]byte) (*Authorized, error) {
	return v.authorize(now, inv, proofs, false)
}

// AuthorizeBroadcast is Authorize for a broadcast (gossip) invocation,
// addressed to no one in particular: it must name no audience (go-ucan
// then reads the audience as the subject), and every other check applies.
func (v *Verifier) AuthorizeBroadcast(now time.Time, inv []byte, proofs [][]byte) (*Authorized, error) {
	return v.authorize(now, inv, proofs, true)
}

func (v *Verifier) authorize(now time.Time, inv []byte, proofs [][]byte, broadcast bool) (*Authorized, error) {
	key := sha256.Sum256(inv)
	if e, ok := v.authorized.Get(key); ok {
		return e.res, v.recheck(now, e, broadcast)
	}
	tok, err := DecodeInvocation(inv)
	if err != nil {
		return nil, err
	}
	var supplied map[string][]byte
	find := func(id string) ([]byte, bool) {
		if supplied == nil {
			supplied = make(map[string][]byte, len(proofs))
			for _, b := range proofs {
				supplied[tokenID(b)] = b
			}
		}
		b, ok := supplied[id]
		return b, ok
	}
	return v.authorizeNew(now, key, tok, find, broadcast)
}

// authorizeNew runs every check on a decoded invocation and caches the
// result under key.
func (v *Verifier) authorizeNew(now time.Time, key [sha256.Size]byte, inv *Invocation, find func(id string) ([]byte, bool), broadcast bool) (*Authorized, error) {
	cmd := inv.Command()
	if err := ValidCommand(cmd); err != nil {
		return nil, deny(RuleMalformed, TokenInvocation, "%v", err)
	}
	chain, err := v.loadProofs(inv, find)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 && inv.Subject() != inv.Issuer() {
		return nil, deny(RuleSubject, TokenInvocation, "subject %s differs from the issuer %s and there is no proof", inv.Subject().Short(), inv.Issuer().Short())
	}
	if len(chain) > 0 && inv.Subject() != chain.Root() {
		return nil, deny(RuleSubject, TokenInvocation, "subject %s, but the proofs' root is %s", inv.Subject().Short(), chain.Root().Short())
	}
	e := &authEntry{public: Covers(PublicPrefix, cmd), hasAudience: inv.tok.Audience() != nil, broadcast: broadcast}
	e.bounds = append(e.bounds, bound{TokenInvocation, time.Time{}, inv.Expiry()})
	if err := v.checkChain(now, chain, inv.Issuer(), cmd, e); err != nil {
		return nil, err
	}
	if !v.defer_ && len(e.policies) > 0 {
		args, err := inv.tok.Arguments().ToIPLD()
		if err != nil {
			return nil, deny(RuleMalformed, TokenInvocation, "arguments: %v", err)
		}
		if err := matchPolicies(e.policies, args); err != nil {
			return nil, err
		}
	}
	bind, err := inv.Binding()
	if err != nil {
		return nil, err
	}
	e.cids = append(e.cids, inv.CID())
	e.res = &Authorized{
		Binding:    bind,
		Invocation: inv,
		Issuer:     inv.Issuer(),
		Subject:    inv.Subject(),
		Audience:   inv.Audience(),
		Command:    cmd,
		Chain:      chain.CIDs(),
		e:          e,
	}
	for _, b := range e.bounds {
		if !b.expiry.IsZero() && (e.res.Expiry.IsZero() || b.expiry.Before(e.res.Expiry)) {
			e.res.Expiry = b.expiry
		}
	}
	if err := v.recheck(now, e, broadcast); err != nil {
		return nil, err
	}
	v.authorized.Put(key, e)
	return e.res, nil
}

// Check re-checks an authorization (typically reused for many messages)
// at now for one message with arguments payload, a JSON object (empty: no
// arguments): time bounds, revocation, audience and trust as on a cache
// hit, and every delegation's policy over the payload. A refusal is a
// *DeniedError.
func (v *Verifier) Check(now time.Time, a *Authorized, payload []byte) error {
	if a == nil || a.e == nil {
		return deny(RuleMalformed, TokenInvocation, "no authorization to check")
	}
	if err := v.recheck(now, a.e, a.e.broadcast); err != nil {
		return err
	}
	if len(a.e.policies) == 0 {
		return nil
	}
	args, err := payloadArgs(payload)
	if err != nil {
		return deny(RulePolicy, TokenInvocation, "%v", err)
	}
	return matchPolicies(a.e.policies, args)
}

// payloadArgs decodes a JSON object for policy matching.
func payloadArgs(payload []byte) (datamodel.Node, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return args.New().ToIPLD()
	}
	n, err := safely(func() (datamodel.Node, error) { return ipld.Decode(payload, dagjson.Decode) })
	if err != nil || n.Kind() != datamodel.Kind_Map {
		return nil, fmt.Errorf("the payload is not a JSON object, so the delegations' policies cannot hold")
	}
	return n, nil
}

func matchPolicies(ps []tokenPolicy, args datamodel.Node) error {
	for _, p := range ps {
		ok, stmt := safely(func() (bool, error) {
			ok, stmt := p.policy.Match(args)
			return ok, stmtErr{stmt}
		})
		if !ok {
			var detail string
			if se, isStmt := stmt.(stmtErr); isStmt {
				detail = policyText(policyOf(se.s))
			} else {
				detail = stmt.Error()
			}
			return deny(RulePolicy, p.token, "the arguments fail %s", detail)
		}
	}
	return nil
}

// stmtErr carries a failing statement through safely.
type stmtErr struct{ s policy.Statement }

func (stmtErr) Error() string { return "policy statement" }

// loadProofs returns the invocation's delegations, root first, from the
// cache or find.
func (v *Verifier) loadProofs(inv *Invocation, find func(id string) ([]byte, bool)) (Chain, error) {
	if len(inv.proofs) > v.depth {
		return nil, deny(RuleDepth, TokenInvocation, "%d delegations, max %d", len(inv.proofs), v.depth)
	}
	chain := make(Chain, len(inv.proofs))
	for i, id := range inv.proofs {
		d, ok := v.delegations.Get(id)
		if !ok {
			b, ok := find(id)
			if !ok {
				return nil, deny(RuleMalformed, id, "proof not supplied with the invocation")
			}
			var err error
			if d, err = DecodeDelegation(b); err != nil {
				return nil, err
			}
			v.delegations.Put(id, d)
		}
		chain[len(chain)-1-i] = d
	}
	return chain, nil
}

// VerifyChain checks that chain, held by its final audience, authorizes
// cmd with args at now: the same checks as if the holder invoked cmd
// (args nil: none) here, except the invocation's own. A refusal is a
// *DeniedError.
func (v *Verifier) VerifyChain(now time.Time, chain Chain, cmd string, args map[string]any) error {
	if err := ValidCommand(cmd); err != nil {
		return deny(RuleMalformed, TokenInvocation, "%v", err)
	}
	if len(chain) == 0 {
		return deny(RuleMalformed, "", "no delegation")
	}
	a, err := buildArgs(args)
	if err != nil {
		return deny(RuleMalformed, TokenInvocation, "%v", err)
	}
	argsNode, err := a.ToIPLD()
	if err != nil {
		return deny(RuleMalformed, TokenInvocation, "arguments: %v", err)
	}
	e := &authEntry{public: Covers(PublicPrefix, cmd)}
	if err := v.checkChain(now, chain, chain.Holder(), cmd, e); err != nil {
		return err
	}
	if err := matchPolicies(e.policies, argsNode); err != nil {
		return err
	}
	e.res = &Authorized{Subject: chain.Root(), Command: cmd}
	return v.recheck(now, e, false)
}

// checkChain runs the checks that do not change with time or state, and
// fills e's bounds and CIDs for recheck.
func (v *Verifier) checkChain(now time.Time, chain Chain, invoker identity.DID, cmd string, e *authEntry) error {
	if len(chain) > v.depth {
		return deny(RuleDepth, chain[v.depth].CID(), "%d delegations, max %d", len(chain), v.depth)
	}
	if len(chain) == 0 {
		return nil
	}
	if err := checkLinks(chain); err != nil {
		return err
	}
	leaf := chain.Leaf()
	if leaf.Audience() != invoker {
		return deny(RuleAudience, leaf.CID(), "delegated to %s, not to the invoker %s", leaf.Audience().Short(), invoker.Short())
	}
	for i, d := range chain {
		child, childCID := cmd, TokenInvocation
		if i+1 < len(chain) {
			child, childCID = chain[i+1].Command(), chain[i+1].CID()
		}
		if !Covers(d.Command(), child) {
			if childCID == TokenInvocation {
				return deny(RuleCommandEscalation, d.CID(), "%s is not under %s", child, d.Command())
			}
			return deny(RuleCommandEscalation, childCID, "%s is not under its parent's %s", child, d.Command())
		}
	}
	for _, d := range chain {
		e.bounds = append(e.bounds, bound{d.CID(), d.NotBefore(), d.Expiry()})
		e.cids = append(e.cids, d.CID())
		if p := d.policy(); len(p) > 0 {
			e.policies = append(e.policies, tokenPolicy{d.CID(), p})
		}
	}
	// Time before policy: an expired chain is reported as such.
	return v.checkTime(now, e.bounds)
}

// recheck runs the checks that depend on time and state: on every
// authorization, cached or not.
func (v *Verifier) recheck(now time.Time, e *authEntry, broadcast bool) error {
	if err := v.checkTime(now, e.bounds); err != nil {
		return err
	}
	if v.revoked != nil {
		gen := v.revoked.Generation() + 1
		if e.gen.Load() != gen {
			for _, id := range e.cids {
				if v.revoked.IsRevoked(id) {
					tok := id
					if e.res.Invocation != nil && id == e.res.Invocation.CID() {
						tok = TokenInvocation
					}
					return deny(RuleRevoked, tok, "revoked")
				}
			}
			e.gen.Store(gen)
		}
	}
	switch {
	case e.res.Invocation == nil: // VerifyChain
	case broadcast && e.hasAudience:
		return deny(RuleAudience, TokenInvocation, "a broadcast invocation names no audience, this one names %s", e.res.Audience.Short())
	case broadcast:
	case v.isLocal == nil || !v.isLocal(e.res.Audience):
		return deny(RuleAudience, TokenInvocation, "addressed to %s, which is not this node", e.res.Audience.Short())
	}
	if !e.public && !v.trust.Load().Trusts(e.res.Subject, e.res.Command) {
		tok := TokenInvocation
		if len(e.cids) > 1 || e.res.Invocation == nil {
			tok = e.cids[0]
		}
		return deny(RuleUntrustedRoot, tok, "root %s is not trusted for %s here", e.res.Subject, e.res.Command)
	}
	return nil
}

func (v *Verifier) checkTime(now time.Time, bounds []bound) error {
	for _, b := range bounds {
		if !b.expiry.IsZero() && now.After(b.expiry.Add(v.skew)) {
			return deny(RuleExpired, b.token, "expired at %s", b.expiry.UTC().Format(time.RFC3339))
		}
		if !b.notBefore.IsZero() && now.Add(v.skew).Before(b.notBefore) {
			return deny(RuleNotYetValid, b.token, "not valid before %s", b.notBefore.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// CacheLen returns the number of cached delegations and authorizations.
func (v *Verifier) CacheLen() (delegations, authorizations int) {
	return v.delegations.Len(), v.authorized.Len()
}
