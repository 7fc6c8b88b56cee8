package cap

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"slices"

	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/cbor"
	"github.com/ipld/go-ipld-prime/datamodel"

	"github.com/dmsnet/dms/internal/identity"
)

// Chain is a delegation chain, root first: Chain[0] is a root delegation
// (issuer = subject), each next delegation is issued by the previous one's
// audience, and the last audience is the holder who may invoke or
// re-delegate.
type Chain []*Delegation

// Root returns the subject of the chain: whose authority it carries.
func (c Chain) Root() identity.DID {
	if len(c) == 0 {
		return ""
	}
	return c[0].Subject()
}

// Holder returns the last delegation's audience.
func (c Chain) Holder() identity.DID {
	if len(c) == 0 {
		return ""
	}
	return c[len(c)-1].Audience()
}

// Leaf returns the last delegation, or nil.
func (c Chain) Leaf() *Delegation {
	if len(c) == 0 {
		return nil
	}
	return c[len(c)-1]
}

// CIDs returns the delegations' CIDs, root first.
func (c Chain) CIDs() []string {
	out := make([]string, len(c))
	for i, d := range c {
		out[i] = d.CID()
	}
	return out
}

// Upto returns the chain up to and including the delegation with cid.
func (c Chain) Upto(cid string) (Chain, bool) {
	for i, d := range c {
		if d.CID() == cid {
			return c[:i+1], true
		}
	}
	return nil, false
}

// NewChain orders delegations into a chain by following issuer/audience
// links from the single root delegation. It refuses a set that is not one
// linear chain (RuleMalformed), but checks nothing else: Verifier does.
func NewChain(ds ...*Delegation) (Chain, error) {
	if len(ds) == 0 {
		return nil, deny(RuleMalformed, "", "no delegation")
	}
	var root *Delegation
	for _, d := range ds {
		if d.IsRoot() {
			if root != nil {
				return nil, deny(RuleMalformed, d.CID(), "a second root delegation (first %s): a token file holds one chain", root.CID())
			}
			root = d
		}
	}
	if root == nil {
		return nil, deny(RuleMalformed, ds[0].CID(), "no root delegation (issuer = subject) among %d token(s)", len(ds))
	}
	used := map[*Delegation]bool{root: true}
	chain := Chain{root}
	for len(chain) < len(ds) {
		cur := chain[len(chain)-1]
		var next *Delegation
		for _, d := range ds {
			if used[d] || d.Issuer() != cur.Audience() {
				continue
			}
			if next != nil {
				return nil, deny(RuleMalformed, d.CID(), "the chain forks after %s (also %s)", cur.CID(), next.CID())
			}
			next = d
		}
		if next == nil {
			for _, d := range ds {
				if !used[d] {
					return nil, deny(RuleMalformed, d.CID(), "not linked to the chain: its issuer %s is no delegation's audience", d.Issuer().Short())
				}
			}
			return nil, deny(RuleMalformed, cur.CID(), "chain ends early")
		}
		used[next] = true
		chain = append(chain, next)
	}
	return chain, nil
}

// CheckLinks checks the chain's structure without time, trust or
// revocation: it starts at a root delegation, every subject is the root,
// each audience issues the next delegation and each command is under its
// parent's. A refusal is a *DeniedError.
func (c Chain) CheckLinks() error {
	if err := checkLinks(c); err != nil {
		return err
	}
	for i := 1; i < len(c); i++ {
		if !Covers(c[i-1].Command(), c[i].Command()) {
			return deny(RuleCommandEscalation, c[i].CID(), "%s is not under its parent's %s", c[i].Command(), c[i-1].Command())
		}
	}
	return nil
}

// Extend returns c followed by d, checking only that d is issued by c's
// holder and has c's subject.
func (c Chain) Extend(d *Delegation) (Chain, error) {
	if len(c) > 0 {
		if d.Issuer() != c.Holder() {
			return nil, deny(RuleAudience, d.CID(), "issued by %s, but the chain is held by %s", d.Issuer().Short(), c.Holder().Short())
		}
		if d.Subject() != c.Root() {
			return nil, deny(RuleSubject, d.CID(), "subject %s, the chain's is %s", d.Subject().Short(), c.Root().Short())
		}
	}
	out := make(Chain, len(c), len(c)+1)
	copy(out, c)
	return append(out, d), nil
}

// MaxContainerSize bounds a token file (and a decompressed container).
const MaxContainerSize = 1 << 20

// Encode returns the chain as a go-ucan container ("ctn-v1"), base64
// (standard, padded) text: the token file format of dms cap grant,
// delegate, import and verify.
func (c Chain) Encode() (string, error) {
	// go-ucan's container writer, without go-ipld-prime: the CBOR map
	// {"ctn-v1": [token bytes…]}, each token once, base64 after the header
	// byte (TestChainEncodeEqualsGoUcan).
	size := 16
	for _, d := range c {
		size += len(d.Sealed()) + 9
	}
	w := make(cborWriter, 0, size)
	w.head(cborMap, 1)
	w.text(ctnVersion)
	uniq := make([]*Delegation, 0, len(c))
	for _, d := range c {
		if !slices.ContainsFunc(uniq, func(u *Delegation) bool { return bytes.Equal(u.Sealed(), d.Sealed()) }) {
			uniq = append(uniq, d)
		}
	}
	w.head(cborList, uint64(len(uniq)))
	for _, d := range uniq {
		w.bytes(d.Sealed())
	}
	out := make([]byte, 1+base64.StdEncoding.EncodedLen(len(w)))
	out[0] = ctnBase64
	base64.StdEncoding.Encode(out[1:], w)
	return string(out), nil
}

// Container header bytes (go-ucan pkg/container).
const (
	ctnRaw          = 0x40
	ctnBase64       = 0x42
	ctnBase64URL    = 0x43
	ctnRawGzip      = 0x4D
	ctnBase64Gzip   = 0x4F
	ctnBase64URLGzp = 0x50
	ctnVersion      = "ctn-v1"
)

// DecodeChain decodes a token file: a go-ucan container of delegations
// (any of its encodings; surrounding white space ignored), verifies every
// signature and orders the delegations into a chain. Failures are
// *DeniedError naming the token when one is at fault.
func DecodeChain(data []byte) (Chain, error) {
	raw, err := containerTokens(data)
	if err != nil {
		return nil, deny(RuleMalformed, "", "not a token container: %v", err)
	}
	ds := make([]*Delegation, 0, len(raw))
	seen := map[string]bool{}
	for _, b := range raw {
		d, err := DecodeDelegation(b)
		if err != nil {
			return nil, err
		}
		if !seen[d.CID()] {
			seen[d.CID()] = true
			ds = append(ds, d)
		}
	}
	return NewChain(ds...)
}

// containerTokens returns the sealed tokens of a container.
func containerTokens(data []byte) ([][]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("empty")
	}
	if len(data) > MaxContainerSize {
		return nil, fmt.Errorf("%d bytes, max %d", len(data), MaxContainerSize)
	}
	var r io.Reader = bytes.NewReader(data[1:])
	switch data[0] {
	case ctnRaw, ctnRawGzip:
	case ctnBase64, ctnBase64Gzip:
		r = base64.NewDecoder(base64.StdEncoding, r)
	case ctnBase64URL, ctnBase64URLGzp:
		r = base64.NewDecoder(base64.RawURLEncoding, r)
	default:
		return nil, fmt.Errorf("unknown header byte %#x (a token file starts with B)", data[0])
	}
	switch data[0] {
	case ctnRawGzip, ctnBase64Gzip, ctnBase64URLGzp:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = z
	}
	payload, err := io.ReadAll(io.LimitReader(r, MaxContainerSize+1))
	if err != nil {
		return nil, err
	}
	if len(payload) > MaxContainerSize {
		return nil, fmt.Errorf("decoded container exceeds %d bytes", MaxContainerSize)
	}
	out, ok := payloadTokensFast(payload)
	if !ok {
		if out, err = payloadTokens(payload); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no token")
	}
	return out, nil
}

// payloadTokens reads a container's CBOR payload, {"ctn-v1": [bytes…]}.
func payloadTokens(payload []byte) (out [][]byte, err error) {
	n, err := safely(func() (datamodel.Node, error) { return ipld.Decode(payload, cbor.Decode) })
	if err != nil {
		return nil, err
	}
	if n.Kind() != datamodel.Kind_Map || n.Length() != 1 {
		return nil, fmt.Errorf("want a map with one version key")
	}
	list, err := n.LookupByString(ctnVersion)
	if err != nil {
		return nil, fmt.Errorf("want version %s", ctnVersion)
	}
	if list.Kind() != datamodel.Kind_List {
		return nil, fmt.Errorf("tokens must be a list")
	}
	it := list.ListIterator()
	for !it.Done() {
		_, v, err := it.Next()
		if err != nil {
			return nil, err
		}
		b, err := v.AsBytes()
		if err != nil {
			return nil, fmt.Errorf("token %d is not bytes", len(out))
		}
		out = append(out, b)
	}
	return out, nil
}

// payloadTokensFast is payloadTokens for a payload in the shortest CBOR
// form (the one Chain.Encode and go-ucan write), without go-ipld-prime; ok
// is false for any other payload, which payloadTokens reads.
func payloadTokensFast(payload []byte) (out [][]byte, ok bool) {
	r := cborReader{b: payload}
	if n, ok := r.length(cborMap); !ok || n != 1 {
		return nil, false
	}
	if k, ok := r.text(); !ok || k != ctnVersion {
		return nil, false
	}
	n, ok := r.length(cborList)
	if !ok {
		return nil, false
	}
	out = make([][]byte, 0, n)
	for range n {
		b, ok := r.raw(cborBytes)
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, r.off == len(payload)
}
