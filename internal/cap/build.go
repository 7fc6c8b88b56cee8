package cap

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"slices"
	"time"

	didcrypto "github.com/MetaMask/go-did-it/crypto/ed25519"

	"github.com/ipfs/go-cid"
	"github.com/ucan-wg/go-ucan/pkg/command"
	"github.com/ucan-wg/go-ucan/token/delegation"
	"github.com/ucan-wg/go-ucan/token/invocation"

	"github.com/dmsnet/dms/internal/identity"
)

// DelegationParams describe a delegation to issue.
type DelegationParams struct {
	Audience identity.DID // who receives the authority
	// Subject is whose authority is delegated: empty for a root delegation
	// (the issuer's own authority); a re-delegation carries its chain's
	// root.
	Subject   identity.DID
	Command   string    // e.g. /dms/node/peers
	Policy    string    // DAG-JSON policy text (see ParsePolicy); "" for none
	NotBefore time.Time // zero: valid at once. go-ucan refuses a past time
	Expiry    time.Time // zero: never expires. go-ucan refuses a past time
	Meta      map[string]string
	Nonce     []byte // nil: 12 random bytes
}

// Delegate signs a delegation with issuer.
func Delegate(issuer *identity.Key, p DelegationParams) (*Delegation, error) {
	tok, priv, err := delegationToken(issuer, p)
	if err != nil {
		return nil, err
	}
	// The fast codec writes go-ucan's bytes without go-ipld-prime; go-ucan
	// seals what it does not write.
	sealed, ok, err := encodeFast(issuer, tok)
	if !ok && err == nil {
		sealed, err = tok.ToDagCbor(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("sign delegation: %w", err)
	}
	sum := sha256.Sum256(sealed)
	id := cidOf(sum)
	if ok {
		if d, ok := signedFast(issuer, sealed, sum, id); ok {
			return d, nil
		}
	}
	// No need to decode and verify what was just signed: the token equals
	// its wire form (whole seconds) and the signature is ours.
	return wrapDelegation(tok, id, sealed)
}

// signedFast reads the delegation encodeFast has just sealed and signed
// with issuer, as DecodeDelegation would, and keeps it among the decoded
// delegations (decoded) so that this node does not verify its own
// signature when the delegation comes back: in the chain an allocation
// reports with, or a standby's copy. The signature is not checked: it is
// issuer's, made over exactly these bytes a moment ago, and the bytes name
// issuer's key (checked here), so crypto/ed25519 would accept it. ok is
// false when the bytes are not of the shape decodeFast reads (go-ucan would
// decode them: nothing is kept).
func signedFast(issuer *identity.Key, sealed []byte, sum [sha256.Size]byte, id string) (*Delegation, bool) {
	p, ok := parseFast(sealed, id)
	// An ed25519.PrivateKey is the seed followed by the public key.
	if !ok || !bytes.Equal(p.pub, issuer.Private()[ed25519.SeedSize:]) || len(sealed) > maxDecodedSize {
		return nil, false
	}
	decoded.Put(sum, p.d)
	return p.d, true
}

// delegationToken builds the go-ucan token Delegate signs, and the
// issuer's key in go-ucan's form.
func delegationToken(issuer *identity.Key, p DelegationParams) (*delegation.Token, didcrypto.PrivateKey, error) {
	priv, iss, err := signer(issuer)
	if err != nil {
		return nil, priv, err
	}
	aud, err := parseDID(p.Audience)
	if err != nil {
		return nil, priv, fmt.Errorf("audience: %w", err)
	}
	sub := iss
	if p.Subject != "" && p.Subject != issuer.DID() {
		if sub, err = parseDID(p.Subject); err != nil {
			return nil, priv, fmt.Errorf("subject: %w", err)
		}
	}
	if err := ValidCommand(p.Command); err != nil {
		return nil, priv, err
	}
	pol, err := ParsePolicy(p.Policy)
	if err != nil {
		return nil, priv, err
	}
	var opts []delegation.Option
	// The wire form keeps whole seconds; rounding up first (never earlier
	// than asked) makes the token built here equal to its decoded form.
	if !p.NotBefore.IsZero() {
		opts = append(opts, delegation.WithNotBefore(ceilSecond(p.NotBefore)))
	}
	if !p.Expiry.IsZero() {
		opts = append(opts, delegation.WithExpiration(ceilSecond(p.Expiry)))
	}
	for _, k := range sortedKeys(p.Meta) {
		opts = append(opts, delegation.WithMeta(k, p.Meta[k]))
	}
	if p.Nonce != nil {
		opts = append(opts, delegation.WithNonce(p.Nonce))
	}
	tok, err := delegation.New(iss, aud, command.Command(p.Command), pol, sub, opts...)
	if err != nil {
		return nil, priv, fmt.Errorf("build delegation: %w", err)
	}
	return tok, priv, nil
}

// Redelegate extends parent, held by issuer, with a delegation to
// p.Audience that may only narrow it: the command must be under the
// leaf's, the expiry no later than the earliest in the chain (a zero
// p.Expiry takes that one), and the policy must keep every statement of the
// leaf's (an empty p.Policy inherits it). p.Subject is set to the chain's
// root. now is used to refuse extending a chain that is no longer valid.
// Refusals are *DeniedError.
func Redelegate(issuer *identity.Key, parent Chain, p DelegationParams, now time.Time) (Chain, error) {
	leaf := parent.Leaf()
	if leaf == nil {
		return nil, deny(RuleMalformed, "", "the parent token file holds no delegation")
	}
	if err := parent.CheckLinks(); err != nil {
		return nil, err
	}
	if parent.Holder() != issuer.DID() {
		return nil, deny(RuleAudience, leaf.CID(), "held by %s, not by the issuing key %s", parent.Holder(), issuer.DID())
	}
	if err := ValidCommand(p.Command); err != nil {
		return nil, err
	}
	if !Covers(leaf.Command(), p.Command) {
		return nil, deny(RuleCommandEscalation, leaf.CID(), "%s is not under %s", p.Command, leaf.Command())
	}
	var limit time.Time
	var limitBy string
	for _, d := range parent {
		if exp := d.Expiry(); !exp.IsZero() && (limit.IsZero() || exp.Before(limit)) {
			limit, limitBy = exp, d.CID()
		}
	}
	if !limit.IsZero() {
		if !now.Before(limit) {
			return nil, deny(RuleExpired, limitBy, "expired at %s", limit.Format(time.RFC3339))
		}
		switch {
		case p.Expiry.IsZero():
			p.Expiry = limit
		case p.Expiry.After(limit):
			return nil, deny(RuleExpiryEscalation, limitBy, "the new token would expire at %s, after its parent chain (%s)", p.Expiry.UTC().Format(time.RFC3339), limit.Format(time.RFC3339))
		}
	}
	parentPol := leaf.policy()
	if p.Policy == "" {
		// An empty policy is inherited as it is: its text would only be
		// parsed back to the same.
		if len(parentPol) > 0 {
			p.Policy = policyText(parentPol)
		}
	} else {
		pol, err := ParsePolicy(p.Policy)
		if err != nil {
			return nil, err
		}
		have := policyStatements(pol)
		for _, s := range policyStatements(parentPol) {
			if !slices.Contains(have, s) {
				return nil, deny(RulePolicyDropped, leaf.CID(), "the new policy drops the parent's statement %s (policies only narrow: repeat it, or omit --policy to inherit)", s)
			}
		}
	}
	p.Subject = parent.Root()
	d, err := Delegate(issuer, p)
	if err != nil {
		return nil, err
	}
	return parent.Extend(d)
}

// InvocationParams describe an invocation to sign.
type InvocationParams struct {
	// Subject is whose authority is used: empty for the proofs' root, or
	// the issuer itself when there are no proofs (a self-issued invocation).
	Subject  identity.DID
	Audience identity.DID // the receiving node (or actor)
	Command  string
	Args     map[string]any // JSON-like values; see ArgsFromJSON
	Proofs   Chain          // root first; empty for a self-issued invocation
	Expiry   time.Time      // zero: none (the actor runtime's replay cache needs one)
	IssuedAt time.Time      // zero: omitted
	Meta     map[string]string
	Nonce    []byte // nil: 12 random bytes
}

// Invoke signs an invocation with issuer.
func Invoke(issuer *identity.Key, p InvocationParams) (*Invocation, error) {
	priv, iss, err := signer(issuer)
	if err != nil {
		return nil, err
	}
	subDID := p.Subject
	if subDID == "" {
		subDID = issuer.DID()
		if len(p.Proofs) > 0 {
			subDID = p.Proofs.Root()
		}
	}
	sub, err := parseDID(subDID)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	if err := ValidCommand(p.Command); err != nil {
		return nil, err
	}
	a, err := buildArgs(p.Args)
	if err != nil {
		return nil, err
	}
	opts := []invocation.Option{invocation.WithArguments(a), invocation.WithoutIssuedAt()}
	if p.Audience != "" && p.Audience != subDID {
		if _, err := parseDID(p.Audience); err != nil {
			return nil, fmt.Errorf("audience: %w", err)
		}
		opts = append(opts, invocation.WithAudience(didText(p.Audience)))
	}
	if !p.IssuedAt.IsZero() {
		opts = append(opts, invocation.WithIssuedAt(p.IssuedAt))
	}
	if !p.Expiry.IsZero() {
		opts = append(opts, invocation.WithExpiration(p.Expiry))
	}
	for _, k := range sortedKeys(p.Meta) {
		opts = append(opts, invocation.WithMeta(k, p.Meta[k]))
	}
	if p.Nonce != nil {
		opts = append(opts, invocation.WithNonce(p.Nonce))
	}
	// go-ucan orders proofs leaf first.
	prf := make([]cid.Cid, len(p.Proofs))
	for i, d := range p.Proofs {
		c, err := cid.Decode(d.CID())
		if err != nil {
			return nil, err
		}
		prf[len(prf)-1-i] = c
	}
	tok, err := invocation.New(iss, command.Command(p.Command), sub, prf, opts...)
	if err != nil {
		return nil, fmt.Errorf("build invocation: %w", err)
	}
	sealed, err := tok.ToDagCbor(priv)
	if err != nil {
		return nil, fmt.Errorf("sign invocation: %w", err)
	}
	return DecodeInvocation(sealed)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}
