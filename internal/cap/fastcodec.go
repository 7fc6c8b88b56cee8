package cap

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ucan-wg/go-ucan/pkg/command"
	"github.com/ucan-wg/go-ucan/pkg/policy/limits"
	"github.com/ucan-wg/go-ucan/token/delegation"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/lru"
)

// The fast codec reads and writes the sealed delegations dms makes without
// go-ipld-prime, whose generic node trees cost most of a placement's CPU.
//
// A sealed delegation is the DAG-CBOR list [signature, {"h": varsig header,
// "ucan/dlg@1.0.0-rc.1": payload}], and go-ucan verifies the signature over
// its own canonical re-encoding of that map. decodeFast therefore accepts
// only input that already is that canonical encoding (shortest heads, keys
// in length-then-bytes order, definite lengths, nothing after the list), of
// the shape go-ucan writes for dms's tokens: an Ed25519 did:key issuer
// (one go-did-it would resolve: see issuerKey), string DIDs go-did-it
// parses, a subject, an empty policy, string meta values. The signed bytes
// are then exactly the map's bytes in the input. Anything else — another
// shape, another key type, a signature that does not verify — is not
// refused here: decodeFast declines and the caller decodes with go-ucan,
// whose answer (and error text) stands. So a token decodeFast accepts is
// one go-ucan accepts, with the same fields (FuzzDecodeFast checks it).
//
// encodeFast writes the bytes go-ucan's ToDagCbor writes for the same
// token (TestFastEncodeEqualsGoUcan), and declines shapes it does not
// write.

// varsigEd25519DagCbor is the varsig header go-ucan writes for an Ed25519
// signature over a DAG-CBOR payload (TestFastVarsigHeader).
var varsigEd25519DagCbor = []byte{0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71}

// fastFields are the payload fields of a delegation decoded by decodeFast
// (its Delegation has no go-ucan token).
type fastFields struct {
	cmd      string
	nbf, exp time.Time // zero: absent
	meta     map[string]string
}

// CBOR major types.
const (
	cborUint  = 0
	cborNeg   = 1
	cborBytes = 2
	cborText  = 3
	cborList  = 4
	cborMap   = 5
	cborNull  = 0xf6
)

// cborReader reads canonical (shortest-form, definite-length) CBOR heads.
type cborReader struct {
	b   []byte
	off int
}

// head reads an item's head: its major type and argument. It refuses
// non-shortest arguments, indefinite lengths and simple values.
func (r *cborReader) head() (major byte, arg uint64, ok bool) {
	if r.off >= len(r.b) {
		return 0, 0, false
	}
	c := r.b[r.off]
	r.off++
	major, info := c>>5, c&0x1f
	if major == 7 {
		return 0, 0, false
	}
	switch {
	case info < 24:
		return major, uint64(info), true
	case info <= 27:
		n := 1 << (info - 24) // the argument's 1, 2, 4 or 8 bytes
		if r.off+n > len(r.b) {
			return 0, 0, false
		}
		for _, c := range r.b[r.off : r.off+n] {
			arg = arg<<8 | uint64(c)
		}
		r.off += n
		// The shortest form: 24 and up in one byte, else more than
		// the half as many bytes hold.
		if n == 1 && arg < 24 || n > 1 && arg>>(4*n) == 0 {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	return major, arg, true
}

// raw reads a byte or text string of the given major type.
func (r *cborReader) raw(major byte) ([]byte, bool) {
	m, n, ok := r.head()
	if !ok || m != major || n > uint64(len(r.b)-r.off) {
		return nil, false
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	if major == cborText && !utf8.Valid(s) {
		return nil, false
	}
	return s, true
}

func (r *cborReader) text() (string, bool) {
	s, ok := r.raw(cborText)
	return string(s), ok
}

// length reads the head of a list or map.
func (r *cborReader) length(major byte) (int, bool) {
	m, n, ok := r.head()
	if !ok || m != major || n > uint64(len(r.b)-r.off) {
		return 0, false
	}
	return int(n), true
}

// int53 reads an integer within go-ucan's timestamp bounds.
func (r *cborReader) int53() (int64, bool) {
	m, n, ok := r.head()
	switch {
	case !ok:
		return 0, false
	case m == cborUint && n <= uint64(limits.MaxInt53):
		return int64(n), true
	case m == cborNeg && n <= uint64(-limits.MinInt53-1):
		return -1 - int64(n), true
	}
	return 0, false
}

// keyLess is DAG-CBOR's map key order: shorter first, then bytewise.
func keyLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// payloadKeys are the delegation payload's keys in canonical order, and
// whether each may be absent.
var payloadKeys = [...]struct {
	name     string
	optional bool
}{
	{"aud", false}, {"cmd", false}, {"exp", false}, {"iss", false}, {"nbf", true},
	{"pol", false}, {"sub", false}, {"meta", true}, {"nonce", false},
}

// decodeFast decodes and verifies sealed when it is a canonical delegation
// of the shape dms makes; ok is false when it is not (or its signature does
// not verify), and the caller must decode it with go-ucan.
func decodeFast(sealed []byte, id string) (d *Delegation, ok bool) {
	p, ok := parseFast(sealed, id)
	if !ok || !ed25519.Verify(p.pub, sealed[p.signed:], p.sig) {
		return nil, false
	}
	return p.d, true
}

// fastParsed is a delegation parseFast read, not verified: the
// delegation, its issuer's key, its signature and where the signed bytes
// start in the sealed bytes.
type fastParsed struct {
	d      *Delegation
	pub    ed25519.PublicKey
	sig    []byte
	signed int
}

// parseFast is decodeFast without the signature check. Only decodeFast
// and Delegate (for bytes it has just signed: signedFast) use it.
func parseFast(sealed []byte, id string) (fastParsed, bool) {
	r := cborReader{b: sealed}
	if n, ok := r.length(cborList); !ok || n != 2 {
		return fastParsed{}, false
	}
	sig, ok := r.raw(cborBytes)
	if !ok || len(sig) != ed25519.SignatureSize {
		return fastParsed{}, false
	}
	signed := r.off
	if n, ok := r.length(cborMap); !ok || n != 2 {
		return fastParsed{}, false
	}
	if k, ok := r.raw(cborText); !ok || string(k) != "h" {
		return fastParsed{}, false
	}
	if h, ok := r.raw(cborBytes); !ok || !bytes.Equal(h, varsigEd25519DagCbor) {
		return fastParsed{}, false
	}
	if k, ok := r.raw(cborText); !ok || string(k) != delegation.Tag {
		return fastParsed{}, false
	}
	n, ok := r.length(cborMap)
	if !ok {
		return fastParsed{}, false
	}
	var (
		f             fastFields
		iss, aud, sub string
		next          int // index in payloadKeys of the next key allowed
	)
	for range n {
		kb, ok := r.raw(cborText) // compared, not kept: no string made
		if !ok {
			return fastParsed{}, false
		}
		i := next
		for i < len(payloadKeys) && payloadKeys[i].name != string(kb) {
			if !payloadKeys[i].optional {
				return fastParsed{}, false
			}
			i++
		}
		if i == len(payloadKeys) {
			return fastParsed{}, false
		}
		next = i + 1
		switch payloadKeys[i].name {
		case "aud":
			aud, ok = r.text()
		case "cmd":
			f.cmd, ok = r.text()
		case "exp":
			if r.off < len(r.b) && r.b[r.off] == cborNull {
				r.off++
				break
			}
			var s int64
			s, ok = r.int53()
			f.exp = time.Unix(s, 0).UTC()
		case "iss":
			iss, ok = r.text()
		case "nbf":
			var s int64
			s, ok = r.int53()
			f.nbf = time.Unix(s, 0).UTC()
		case "pol":
			// Only the empty policy; statements go to go-ucan.
			var l int
			l, ok = r.length(cborList)
			ok = ok && l == 0
		case "sub":
			sub, ok = r.text()
		case "meta":
			f.meta, ok = r.meta()
		case "nonce":
			var nonce []byte
			nonce, ok = r.raw(cborBytes)
			ok = ok && len(nonce) >= 12
		}
		if !ok {
			return fastParsed{}, false
		}
	}
	for _, k := range payloadKeys[next:] {
		if !k.optional {
			return fastParsed{}, false
		}
	}
	if r.off != len(sealed) {
		return fastParsed{}, false
	}
	if _, err := command.Parse(f.cmd); err != nil {
		return fastParsed{}, false
	}
	pub, ok := issuerKey(identity.DID(iss))
	if !ok || !knownDID(aud) || !knownDID(sub) {
		return fastParsed{}, false
	}
	d := &Delegation{fast: &f, id: id, sealed: append([]byte(nil), sealed...),
		iss: identity.DID(iss), aud: identity.DID(aud), sub: identity.DID(sub)}
	return fastParsed{d: d, pub: pub, sig: sig, signed: signed}, true
}

// meta reads a non-empty map of string keys (in canonical order, so no
// key twice) to string values.
func (r *cborReader) meta() (map[string]string, bool) {
	n, ok := r.length(cborMap)
	if !ok || n == 0 {
		return nil, false
	}
	m := make(map[string]string, n)
	prev := ""
	for i := range n {
		k, ok := r.text()
		if !ok || (i > 0 && !keyLess(prev, k)) {
			return nil, false
		}
		v, ok := r.text()
		if !ok {
			return nil, false
		}
		m[k], prev = v, k
	}
	return m, true
}

// knownDID reports whether go-did-it parses s back to the same text (as
// go-ucan's decoding parses the audience and subject). The DIDs that do are
// kept (knownDIDs): printing one formats it anew each time.
func knownDID(s string) bool {
	if _, ok := knownDIDs.Get(identity.DID(s)); ok {
		return true
	}
	d, err := parseDID(identity.DID(s))
	if err != nil || d.String() != s {
		return false
	}
	knownDIDs.Put(identity.DID(s), struct{}{})
	return true
}

// knownDIDs are DIDs knownDID accepted last.
var knownDIDs = lru.New[identity.DID, struct{}](1024)

// issuerKey returns the Ed25519 key of an issuer DID that go-ucan would
// verify a signature with: a canonical Ed25519 did:key (that go-did-it
// parses to the same text) whose key go-did-it's DID document can be made
// of. The document needs the key's X25519 form u = (1+y)/(1-y), which
// fails when y ≡ 1 (mod p); issuerKey declines every y outside [0, p) and
// y = 1 (TestIssuerKeyDeclinesWhatGoDidItRefuses). Kept for the issuers
// seen last (issuers).
func issuerKey(s identity.DID) (ed25519.PublicKey, bool) {
	if pub, ok := issuers.Get(s); ok {
		return pub, true
	}
	pub, err := identity.ParseDID(string(s))
	if err != nil || identity.DIDFromPublicKey(pub) != s || !montgomeryDefined(pub) {
		return nil, false
	}
	if d, err := parseDID(s); err != nil || d.String() != string(s) {
		return nil, false
	}
	issuers.Put(s, pub)
	return pub, true
}

// fieldP is 2^255-19, little-endian.
var fieldP = [32]byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}

// montgomeryDefined reports whether pub's y coordinate (its sign bit
// cleared) is a canonical field element other than 1.
func montgomeryDefined(pub ed25519.PublicKey) bool {
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f
	// y < p, comparing from the most significant byte.
	for i := 31; i >= 0; i-- {
		if y[i] != fieldP[i] {
			if y[i] > fieldP[i] {
				return false
			}
			break
		}
		if i == 0 {
			return false // y == p
		}
	}
	one := [32]byte{1}
	return y != one
}

// issuers are the issuer keys issuerKey accepted last.
var issuers = lru.New[identity.DID, ed25519.PublicKey](1024)

// cborWriter appends canonical CBOR.
type cborWriter []byte

func (w *cborWriter) head(major byte, n uint64) {
	b := *w
	switch {
	case n < 24:
		b = append(b, major<<5|byte(n))
	case n <= 0xff:
		b = append(b, major<<5|24, byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, major<<5|25), uint16(n))
	case n <= 0xffffffff:
		b = binary.BigEndian.AppendUint32(append(b, major<<5|26), uint32(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, major<<5|27), n)
	}
	*w = b
}

func (w *cborWriter) text(s string) {
	w.head(cborText, uint64(len(s)))
	*w = append(*w, s...)
}

func (w *cborWriter) bytes(p []byte) {
	w.head(cborBytes, uint64(len(p)))
	*w = append(*w, p...)
}

func (w *cborWriter) int(v int64) {
	if v >= 0 {
		w.head(cborUint, uint64(v))
	} else {
		w.head(cborNeg, uint64(-1-v))
	}
}

// encodeFast seals tok, signed by issuer, as go-ucan's ToDagCbor would;
// ok is false for a token it does not write (no subject, a meta value
// other than a string).
func encodeFast(issuer *identity.Key, tok *delegation.Token) (sealed []byte, ok bool, err error) {
	if tok.Subject() == nil || tok.Issuer() == nil || tok.Audience() == nil {
		return nil, false, nil
	}
	md := tok.Meta()
	metaKeys := make([]string, 0, md.Len())
	metaVals := make(map[string]string, md.Len())
	for k, v := range md.Iter() {
		if v.Kind() != datamodel.Kind_String {
			return nil, false, nil
		}
		s, err := v.AsString()
		if err != nil {
			return nil, false, nil
		}
		metaKeys = append(metaKeys, k)
		metaVals[k] = s
	}
	slices.SortFunc(metaKeys, func(a, b string) int {
		switch {
		case keyLess(a, b):
			return -1
		case keyLess(b, a):
			return 1
		}
		return 0
	})
	var pol []byte
	if p := tok.Policy(); len(p) == 0 {
		pol = []byte{cborList << 5}
	} else {
		n, err := p.ToIPLD()
		if err != nil {
			return nil, false, err
		}
		if pol, err = ipld.Encode(n, dagcbor.Encode); err != nil {
			return nil, false, err
		}
	}

	w := make(cborWriter, 0, 512)
	w = append(w, 0x82, 0x58, ed25519.SignatureSize)
	w = append(w, make([]byte, ed25519.SignatureSize)...)
	signed := len(w)
	w.head(cborMap, 2)
	w.text("h")
	w.bytes(varsigEd25519DagCbor)
	w.text(delegation.Tag)
	fields := 7
	if tok.NotBefore() != nil {
		fields++
	}
	if len(metaKeys) > 0 {
		fields++
	}
	w.head(cborMap, uint64(fields))
	w.text("aud")
	w.text(tok.Audience().String())
	w.text("cmd")
	w.text(tok.Command().String())
	w.text("exp")
	if exp := tok.Expiration(); exp != nil {
		w.int(exp.Unix())
	} else {
		w = append(w, cborNull)
	}
	w.text("iss")
	w.text(tok.Issuer().String())
	if nbf := tok.NotBefore(); nbf != nil {
		w.text("nbf")
		w.int(nbf.Unix())
	}
	w.text("pol")
	w = append(w, pol...)
	w.text("sub")
	w.text(tok.Subject().String())
	if len(metaKeys) > 0 {
		w.text("meta")
		w.head(cborMap, uint64(len(metaKeys)))
		for _, k := range metaKeys {
			w.text(k)
			w.text(metaVals[k])
		}
	}
	w.text("nonce")
	w.bytes(tok.Nonce())
	copy(w[3:signed], issuer.Sign(w[signed:]))
	return w, true, nil
}
