package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

// authorizer adapts a cap.Verifier to the actor runtime: an envelope's
// invocation bundle must verify, its issuer, command and audience must be
// the envelope's sender, behavior and receiver, it must be bound to the
// peer it came from (and a one-shot invocation to its payload), and a
// one-shot invocation is accepted once (seen, which survives a restart).
type authorizer struct {
	v    *cap.Verifier
	seen *replayCache
}

func (a *authorizer) Authorize(bundle []byte, req actor.AuthRequest) (actor.Grant, error) {
	inv, proofs, err := cap.DecodeBundle(bundle)
	if err != nil {
		return nil, &cap.DeniedError{Rule: cap.RuleMalformed, Token: cap.TokenInvocation, Detail: err.Error()}
	}
	var res *cap.Authorized
	if req.Broadcast {
		res, err = a.v.AuthorizeBroadcast(req.Now, inv, proofs)
	} else {
		res, err = a.v.Authorize(req.Now, inv, proofs)
	}
	if err != nil {
		return nil, err
	}
	mismatch := func(what, inv, env string) error {
		return &cap.DeniedError{Rule: cap.RuleMalformed, Token: cap.TokenInvocation, Detail: fmt.Sprintf("invocation %s %s, but the envelope's is %s", what, inv, env)}
	}
	switch {
	case res.Issuer != req.Issuer:
		return nil, mismatch("issuer is", res.Issuer.Short(), req.Issuer.Short())
	case res.Command != req.Cmd:
		return nil, mismatch("command is", res.Command, req.Cmd)
	case !req.Broadcast && res.Audience != req.Audience:
		return nil, mismatch("audience is", res.Audience.Short(), req.Audience.Short())
	}
	if err := res.Binding.Check(req.Host, req.Payload, !req.Session); err != nil {
		return nil, err
	}
	if !req.Session && a.seen != nil {
		if err := a.seen.use(req.Now, res.Invocation); err != nil {
			return nil, err
		}
	}
	return &grant{v: a.v, res: res}, nil
}

// grant is a verified invocation. The verifier runs with deferred
// policies: Check re-runs the cached checks (time bounds, revocations,
// trust, audience) and evaluates the chain's policies against each
// message's payload, so a session authorized once still obeys every
// policy, message by message.
type grant struct {
	v   *cap.Verifier
	res *cap.Authorized
}

func (g *grant) Check(now time.Time, payload []byte) error { return g.v.Check(now, g.res, payload) }

func (g *grant) Expiry() time.Time { return g.res.Expiry }

// issuer signs the invocations of this node's actors, with a delegation
// chain from the wallet when the actor holds one for the command, else
// self-issued (enough for /public commands and for nodes that trust the
// actor's own DID).
type issuer struct {
	wallet *wallet
}

// Generation changes when the wallet gains a chain, so link sessions are
// issued anew with it.
func (i *issuer) Generation() uint64 { return i.wallet.gen.Load() }

func (i *issuer) Issue(from *identity.Key, p actor.IssueParams) ([]byte, error) {
	chain := i.wallet.find(from.DID(), p.Cmd, time.Now())
	b := cap.Binding{Host: p.Host}
	if !p.Session {
		b = cap.Bind(p.Host, p.Payload)
	}
	inv, err := cap.Invoke(from, cap.InvocationParams{Audience: p.Audience, Command: p.Cmd, Proofs: chain, Expiry: p.Expiry, Args: b.Args()})
	if err != nil {
		return nil, err
	}
	return cap.BundleOf(inv, chain), nil
}

// wallet holds delegation chains given to this node's actors (for example
// by the user who submits a deployment), by holder.
type wallet struct {
	gen    atomic.Uint64
	mu     sync.RWMutex
	chains map[identity.DID][]cap.Chain // guarded by mu
}

func newWallet() *wallet { return &wallet{chains: map[identity.DID][]cap.Chain{}} }

// Add gives the chain's holder the chain.
func (w *wallet) Add(c cap.Chain) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.chains[c.Holder()] = append(w.chains[c.Holder()], c)
	w.gen.Add(1)
}

// Remove drops the chains held by holder (a plan's actor, once its round
// is over).
func (w *wallet) Remove(holder identity.DID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.chains, holder)
}

// find returns the shortest unexpired chain held by holder covering cmd.
func (w *wallet) find(holder identity.DID, cmd string, now time.Time) cap.Chain {
	w.mu.RLock()
	defer w.mu.RUnlock()
	var best cap.Chain
	for _, c := range w.chains[holder] {
		leaf := c.Leaf()
		if !cap.Covers(leaf.Command(), cmd) {
			continue
		}
		if exp := leaf.Expiry(); !exp.IsZero() && now.After(exp) {
			continue
		}
		if best == nil || len(c) < len(best) {
			best = c
		}
	}
	return best
}

// relay is the REST API's actor relay: the runtime's, after checking that
// the user invocation it carries is bound to this node and to its payload
// (the CLI learns this node's peer ID from the API and signs both), and
// that it is used once. Receivers check the same again; checking here
// answers the user at once and keeps this node from relaying a captured
// invocation twice.
type relay struct {
	sys  *actor.System
	seen *cap.NonceCache
}

// relayWindow bounds a relayed invocation's lifetime: the REST API waits
// at most ten minutes for a reply, and the CLI adds 30 s to its timeout.
const relayWindow = 15 * time.Minute

func newRelay(sys *actor.System) relay {
	return relay{sys: sys, seen: cap.NewNonceCache(cap.NonceConfig{MaxEntries: 1 << 16, MaxWindow: relayWindow})}
}

func (r relay) Relay(ctx context.Context, env *actor.Envelope) (*actor.Reply, error) {
	if err := r.fresh(env); err != nil {
		return nil, err
	}
	return r.sys.Relay(ctx, env)
}

func (r relay) RelayBroadcast(ctx context.Context, env *actor.Envelope, collect func(*actor.Reply)) error {
	if err := r.fresh(env); err != nil {
		return err
	}
	return r.sys.RelayBroadcast(ctx, env, collect)
}

// fresh checks the invocation's binding and records its (issuer, nonce),
// refusing one seen before and one that could be replayed forever.
func (r relay) fresh(env *actor.Envelope) error {
	sealed, _, err := cap.DecodeBundle(env.Invocation)
	if err != nil {
		return &cap.DeniedError{Rule: cap.RuleMalformed, Token: cap.TokenInvocation, Detail: err.Error()}
	}
	inv, err := cap.DecodeInvocation(sealed)
	if err != nil {
		return err
	}
	b, err := inv.Binding()
	if err != nil {
		return err
	}
	if err := b.Check(r.sys.Self(), env.Payload, true); err != nil {
		return err
	}
	return replayCode(inv, r.seen.Check(time.Now(), inv.Issuer(), inv.Nonce(), inv.Expiry()))
}

// replayCode turns a replay refusal of the nonce cache into the runtime's
// code for a replay, as a replayed envelope gets.
func replayCode(inv *cap.Invocation, err error) error {
	var de *cap.DeniedError
	if errors.As(err, &de) && de.Rule == cap.RuleReplay {
		return &actor.Error{Code: actor.CodeReplay, Msg: "invocation " + inv.CID() + ": " + de.Detail}
	}
	return err
}
