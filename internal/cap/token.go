package cap

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	did "github.com/MetaMask/go-did-it"
	didcrypto "github.com/MetaMask/go-did-it/crypto/ed25519"
	_ "github.com/MetaMask/go-did-it/verifiers/did-key" // registers did:key for did.Parse
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-multihash"
	"github.com/ucan-wg/go-ucan/pkg/policy"
	"github.com/ucan-wg/go-ucan/token"
	"github.com/ucan-wg/go-ucan/token/delegation"
	"github.com/ucan-wg/go-ucan/token/invocation"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/lru"
)

// MaxTokenSize bounds one sealed token; larger input is refused before
// decoding.
const MaxTokenSize = 64 << 10

// goucanBadSignature is the text of go-ucan's (untyped) signature failure;
// TestDecodeBrokenSignature keeps it honest.
const goucanBadSignature = "failed to verify the token's signature"

// tokenID returns the CID go-ucan gives sealed token bytes (CIDv1,
// dag-cbor, sha2-256), as text.
func tokenID(sealed []byte) string {
	return cidOf(sha256.Sum256(sealed))
}

// cidOf is tokenID of the bytes whose SHA-256 is sum.
func cidOf(sum [sha256.Size]byte) string {
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	return cid.NewCidV1(uint64(multicodec.DagCbor), mh).String()
}

// decodeFailure classifies a go-ucan decoding error of the token id.
func decodeFailure(id, what string, err error) *DeniedError {
	if strings.Contains(err.Error(), goucanBadSignature) {
		return deny(RuleSignature, id, "signature does not verify against the issuer's key")
	}
	return deny(RuleMalformed, id, "not a valid %s: %v", what, err)
}

// offline makes DID resolution fail at once for methods that would go to
// the network (did:web, did:plc, if anything registered them): only
// self-certifying did:key issuers can be verified, and decoding never does
// I/O.
func offline() did.ResolutionOption {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return did.WithResolutionContext(ctx)
}

// safely runs decode, turning a panic in the decoding libraries into an
// error: sealed bytes come from the network and from files.
func safely[T any](decode func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return decode()
}

// Delegation is a decoded delegation whose signature verified. It is
// immutable.
type Delegation struct {
	// tok is go-ucan's token; nil when the fast codec decoded it (fast).
	tok    *delegation.Token
	fast   *fastFields
	id     string
	sealed []byte
	// The DIDs' text, made once: chain checks ask for them many times.
	iss, aud, sub identity.DID
}

// DecodeDelegation decodes sealed (DAG-CBOR envelope) bytes and verifies
// their signature. Failures are *DeniedError (RuleMalformed or
// RuleSignature) naming the token's CID.
//
// The delegations decoded last are kept by the sealed bytes' SHA-256
// (decoded): the same bytes decode to the same delegation with the same
// signature, so a delegation this node verified once — at an invocation's
// check (Verifier), then again in the chain an allocation's start brings —
// is not decoded and verified again. Only success is kept, and the
// delegations this process signed (Delegate): their bytes come back in the
// chains of its own actors.
func DecodeDelegation(sealed []byte) (*Delegation, error) {
	sum := sha256.Sum256(sealed)
	if d, ok := decoded.Get(sum); ok {
		return d, nil
	}
	d, err := decodeDelegation(sealed, cidOf(sum))
	if err == nil && len(sealed) <= maxDecodedSize {
		decoded.Put(sum, d)
	}
	return d, err
}

// decodeDelegation is DecodeDelegation without its cache.
func decodeDelegation(sealed []byte, id string) (*Delegation, error) {
	if len(sealed) > MaxTokenSize {
		return nil, deny(RuleMalformed, id, "token is %d bytes, max %d", len(sealed), MaxTokenSize)
	}
	// Dms's own delegations take the fast path; anything else, and any
	// refusal, is go-ucan's.
	if d, ok := decodeFast(sealed, id); ok {
		return d, nil
	}
	tok, err := safely(func() (*delegation.Token, error) { return delegation.FromDagCbor(sealed, offline()) })
	if err != nil {
		return nil, decodeFailure(id, "delegation", err)
	}
	return wrapDelegation(tok, id, sealed)
}

// decoded are the delegations DecodeDelegation decoded last, by the SHA-256
// of their sealed bytes; at most decodedSize of at most maxDecodedSize
// bytes each (8 MiB in all; a delegation of dms is 300–600 bytes).
var decoded = lru.New[[sha256.Size]byte, *Delegation](decodedSize)

const (
	decodedSize    = 1024
	maxDecodedSize = 8 << 10
)

func wrapDelegation(tok *delegation.Token, id string, sealed []byte) (*Delegation, error) {
	if tok.Issuer() == nil || tok.Audience() == nil {
		return nil, deny(RuleMalformed, id, "issuer and audience are required")
	}
	return &Delegation{tok: tok, id: id, sealed: append([]byte(nil), sealed...),
		iss: didOf(tok.Issuer()), aud: didOf(tok.Audience()), sub: didOf(tok.Subject())}, nil
}

// decodeToken decodes a sealed delegation or invocation.
func decodeToken(sealed []byte) (*Delegation, *Invocation, error) {
	id := tokenID(sealed)
	if len(sealed) > MaxTokenSize {
		return nil, nil, deny(RuleMalformed, id, "token is %d bytes, max %d", len(sealed), MaxTokenSize)
	}
	if d, ok := decodeFast(sealed, id); ok {
		return d, nil, nil
	}
	tok, err := safely(func() (token.Token, error) { return token.FromDagCbor(sealed, offline()) })
	if err != nil {
		return nil, nil, decodeFailure(id, "token", err)
	}
	switch t := tok.(type) {
	case *delegation.Token:
		d, err := wrapDelegation(t, id, sealed)
		return d, nil, err
	case *invocation.Token:
		inv, err := wrapInvocation(t, id, sealed)
		return nil, inv, err
	}
	return nil, nil, deny(RuleMalformed, id, "unknown token type %T", tok)
}

// CID returns the token's content identifier (bafy…).
func (d *Delegation) CID() string { return d.id }

// Sealed returns the signed bytes. Callers must not modify them.
func (d *Delegation) Sealed() []byte { return d.sealed }

// Issuer returns who signed the delegation.
func (d *Delegation) Issuer() identity.DID { return d.iss }

// Audience returns who receives the authority.
func (d *Delegation) Audience() identity.DID { return d.aud }

// Subject returns whose authority it is (the chain's root); empty for a
// powerline delegation, which dms does not accept.
func (d *Delegation) Subject() identity.DID { return d.sub }

// Command returns the delegated command prefix.
func (d *Delegation) Command() string {
	if d.tok == nil {
		return d.fast.cmd
	}
	return d.tok.Command().String()
}

// policy returns the go-ucan policy (none on the fast path).
func (d *Delegation) policy() policy.Policy {
	if d.tok == nil {
		return nil
	}
	return d.tok.Policy()
}

// Policy returns the policy in its DAG-JSON text form ("[]" for none).
func (d *Delegation) Policy() string { return policyText(d.policy()) }

// NotBefore returns when the delegation becomes valid (zero: always).
func (d *Delegation) NotBefore() time.Time {
	if d.tok == nil {
		return d.fast.nbf
	}
	return timeOf(d.tok.NotBefore())
}

// Expiry returns when the delegation expires (zero: never).
func (d *Delegation) Expiry() time.Time {
	if d.tok == nil {
		return d.fast.exp
	}
	return timeOf(d.tok.Expiration())
}

// IsRoot reports whether the issuer is the subject.
func (d *Delegation) IsRoot() bool {
	// The fast path only decodes delegations with a subject.
	hasSub := d.tok == nil || d.tok.Subject() != nil
	return hasSub && d.Issuer() == d.Subject()
}

// Meta returns the string value of a meta key.
func (d *Delegation) Meta(key string) (string, bool) {
	if d.tok == nil {
		s, ok := d.fast.meta[key]
		return s, ok
	}
	s, err := d.tok.Meta().GetString(key)
	return s, err == nil
}

// Invocation is a decoded invocation whose signature verified. It is
// immutable.
type Invocation struct {
	tok    *invocation.Token
	id     string
	sealed []byte
	proofs []string // CIDs, leaf first as on the wire
}

// DecodeInvocation decodes sealed invocation bytes and verifies their
// signature (only; Verifier.Authorize checks the rest).
func DecodeInvocation(sealed []byte) (*Invocation, error) {
	id := tokenID(sealed)
	if len(sealed) > MaxTokenSize {
		return nil, deny(RuleMalformed, TokenInvocation, "invocation %s is %d bytes, max %d", id, len(sealed), MaxTokenSize)
	}
	tok, err := safely(func() (*invocation.Token, error) { return invocation.FromDagCbor(sealed, offline()) })
	if err != nil {
		return nil, decodeFailure(TokenInvocation, "invocation", err)
	}
	return wrapInvocation(tok, id, sealed)
}

func wrapInvocation(tok *invocation.Token, id string, sealed []byte) (*Invocation, error) {
	if tok.Issuer() == nil || tok.Subject() == nil {
		return nil, deny(RuleMalformed, TokenInvocation, "issuer and subject are required")
	}
	proofs := make([]string, len(tok.Proof()))
	for i, c := range tok.Proof() {
		proofs[i] = c.String()
	}
	return &Invocation{tok: tok, id: id, sealed: append([]byte(nil), sealed...), proofs: proofs}, nil
}

// CID returns the invocation's content identifier.
func (inv *Invocation) CID() string { return inv.id }

// Sealed returns the signed bytes. Callers must not modify them.
func (inv *Invocation) Sealed() []byte { return inv.sealed }

// Issuer returns the invoker.
func (inv *Invocation) Issuer() identity.DID { return didOf(inv.tok.Issuer()) }

// Subject returns whose authority is used (the root of the proofs, or the
// issuer itself when there are none).
func (inv *Invocation) Subject() identity.DID { return didOf(inv.tok.Subject()) }

// Audience returns the receiver: the audience field, or the subject when
// the token has none (go-ucan omits an audience equal to the subject).
func (inv *Invocation) Audience() identity.DID {
	if inv.tok.Audience() == nil {
		return inv.Subject()
	}
	return didOf(inv.tok.Audience())
}

// Command returns the invoked command.
func (inv *Invocation) Command() string { return inv.tok.Command().String() }

// Proofs returns the CIDs of the delegations, root first.
func (inv *Invocation) Proofs() []string {
	out := make([]string, len(inv.proofs))
	for i, p := range inv.proofs {
		out[len(out)-1-i] = p
	}
	return out
}

// Nonce returns the invocation's nonce.
func (inv *Invocation) Nonce() []byte { return inv.tok.Nonce() }

// Expiry returns when the invocation expires (zero: never).
func (inv *Invocation) Expiry() time.Time { return timeOf(inv.tok.Expiration()) }

// IssuedAt returns the issued-at time (zero: absent).
func (inv *Invocation) IssuedAt() time.Time { return timeOf(inv.tok.IssuedAt()) }

// Meta returns the string value of a meta key, e.g. the sender's host
// peer ID the actor runtime binds.
func (inv *Invocation) Meta(key string) (string, bool) {
	s, err := inv.tok.Meta().GetString(key)
	return s, err == nil
}

// ArgsJSON returns the arguments as a DAG-JSON object.
func (inv *Invocation) ArgsJSON() ([]byte, error) {
	n, err := inv.tok.Arguments().ToIPLD()
	if err != nil {
		return nil, err
	}
	return ipld.Encode(n, dagjson.Encode)
}

func didOf(d did.DID) identity.DID {
	if d == nil {
		return ""
	}
	return identity.DID(d.String())
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func policyText(p policy.Policy) string {
	n, err := p.ToIPLD()
	if err != nil {
		return p.String()
	}
	b, err := ipld.Encode(n, dagjson.Encode)
	if err != nil {
		return p.String()
	}
	return string(b)
}

// signer converts an identity key for go-ucan. The conversion is kept
// for the most recent keys (signers): deriving the key from its seed costs
// a scalar multiplication, and crypto/ed25519 keeps its precomputed form
// by the key's backing array, so a key converted anew for each signature
// paid that twice per signature.
func signer(k *identity.Key) (didcrypto.PrivateKey, did.DID, error) {
	if s, ok := signers.Get(k); ok {
		return s.priv, s.did, nil
	}
	// From the whole key, not its seed: the seed would be multiplied out
	// again into the public half the key already holds (a scalar
	// multiplication per key, paid once more for every new deployment's
	// and allocation's key).
	priv, err := didcrypto.PrivateKeyFromBytes(k.Private())
	if err != nil {
		return didcrypto.PrivateKey{}, nil, fmt.Errorf("convert key %s: %w", k.DID(), err)
	}
	d, err := parseDID(k.DID())
	if err != nil {
		return didcrypto.PrivateKey{}, nil, err
	}
	signers.Put(k, signerEntry{priv: priv, did: d})
	return priv, d, nil
}

// signers are the keys signer converted last, by key (an identity.Key does
// not change).
var signers = lru.New[*identity.Key, signerEntry](64)

type signerEntry struct {
	priv didcrypto.PrivateKey
	did  did.DID
}

// parseDID parses a DID for go-ucan. The DIDs parsed last are kept
// (parsedDIDs): a did:key's parse decodes and checks its public key, and
// the same audiences and subjects come back for every delegation.
func parseDID(s identity.DID) (did.DID, error) {
	if d, ok := parsedDIDs.Get(s); ok {
		return d, nil
	}
	d, err := did.Parse(string(s))
	if err != nil {
		return nil, fmt.Errorf("DID %q: %w", s.Short(), err)
	}
	parsedDIDs.Put(s, d)
	return d, nil
}

// parsedDIDs are the DIDs parseDID parsed last, by their text.
var parsedDIDs = lru.New[identity.DID, did.DID](1024)

// didText is a did.DID that go-ucan only ever prints. invocation.WithAudience
// compares its argument with the subject using != on the interface, which
// panics when both hold go-did-it's (uncomparable) did:key value; a value of
// another dynamic type compares unequal without panicking.
type didText string

func (d didText) Method() string { return "key" }
func (d didText) Document(opts ...did.ResolutionOption) (did.Document, error) {
	p, err := did.Parse(string(d))
	if err != nil {
		return nil, err
	}
	return p.Document(opts...)
}
func (d didText) String() string              { return string(d) }
func (d didText) ResolutionIsExpensive() bool { return false }
func (d didText) Equal(o did.DID) bool        { return o != nil && o.String() == string(d) }
