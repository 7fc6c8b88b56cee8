package cap

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/cbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/ucan-wg/go-ucan/pkg/container"

	did "github.com/MetaMask/go-did-it"

	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ucan-wg/go-ucan/pkg/command"
	"github.com/ucan-wg/go-ucan/pkg/policy"
	"github.com/ucan-wg/go-ucan/token"
	"github.com/ucan-wg/go-ucan/token/delegation"

	"github.com/dmsnet/dms/internal/identity"
)

// refDecodeDelegation is DecodeDelegation through go-ucan only (as before
// the fast codec), without the cache.
func refDecodeDelegation(sealed []byte) (*Delegation, error) {
	id := tokenID(sealed)
	if len(sealed) > MaxTokenSize {
		return nil, deny(RuleMalformed, id, "token is %d bytes, max %d", len(sealed), MaxTokenSize)
	}
	tok, err := safely(func() (*delegation.Token, error) { return delegation.FromDagCbor(sealed, offline()) })
	if err != nil {
		return nil, decodeFailure(id, "delegation", err)
	}
	return wrapDelegation(tok, id, sealed)
}

// decodeUncached is DecodeDelegation without its cache (so that the
// decoding runs every time).
func decodeUncached(t testing.TB, sealed []byte) (*Delegation, error) {
	t.Helper()
	return decodeDelegation(sealed, tokenID(sealed))
}

// sameDelegation fails t unless every accessor of got answers as want's.
func sameDelegation(t testing.TB, got, want *Delegation) {
	t.Helper()
	type view struct {
		CID, Iss, Aud, Sub, Cmd, Pol string
		Nbf, Exp                     time.Time
		Root                         bool
		Sealed                       []byte
	}
	v := func(d *Delegation) view {
		return view{d.CID(), string(d.Issuer()), string(d.Audience()), string(d.Subject()), d.Command(), d.Policy(),
			d.NotBefore(), d.Expiry(), d.IsRoot(), d.Sealed()}
	}
	g, w := v(got), v(want)
	if !g.Nbf.Equal(w.Nbf) || !g.Exp.Equal(w.Exp) || g.Nbf.Location() != w.Nbf.Location() || g.Exp.Location() != w.Exp.Location() {
		t.Fatalf("times differ:\n got %+v\nwant %+v", g, w)
	}
	g.Nbf, g.Exp, w.Nbf, w.Exp = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g.CID != w.CID || g.Iss != w.Iss || g.Aud != w.Aud || g.Sub != w.Sub || g.Cmd != w.Cmd || g.Pol != w.Pol ||
		g.Root != w.Root || !bytes.Equal(g.Sealed, w.Sealed) {
		t.Fatalf("delegations differ:\n got %+v\nwant %+v", g, w)
	}
	keys := []string{"", "host", "a", "zz", "bbb", "missing", "n"}
	for _, d := range []*Delegation{got, want} {
		if d.tok != nil {
			for k := range d.tok.Meta().Iter() {
				keys = append(keys, k)
			}
		} else {
			for k := range d.fast.meta {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		gs, gok := got.Meta(k)
		ws, wok := want.Meta(k)
		if gs != ws || gok != wok {
			t.Fatalf("Meta(%q) = %q, %v; want %q, %v", k, gs, gok, ws, wok)
		}
	}
}

func TestFastVarsigHeader(t *testing.T) {
	w := newWorld(t)
	tok, priv, err := delegationToken(w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms"})
	if err != nil {
		t.Fatal(err)
	}
	sealed := must[[]byte](t)(tok.ToDagCbor(priv))
	n := must[ipld.Node](t)(ipld.Decode(sealed, dagcbor.Decode))
	h := must[[]byte](t)(must[ipld.Node](t)(must[ipld.Node](t)(n.LookupByIndex(1)).LookupByString("h")).AsBytes())
	if !bytes.Equal(h, varsigEd25519DagCbor) {
		t.Fatalf("go-ucan's varsig header is %x, the fast codec's %x", h, varsigEd25519DagCbor)
	}
}

// TestFastEncodeEqualsGoUcan: for the delegations dms makes, the fast
// encoder writes go-ucan's bytes, and the fast decoder (where it takes the
// token) answers as go-ucan's decoding.
func TestFastEncodeEqualsGoUcan(t *testing.T) {
	w := newWorld(t)
	soon := w.t0.Add(time.Hour).Truncate(time.Second)
	far := time.Date(2200, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name     string
		issuer   *identity.Key
		p        DelegationParams
		fastRead bool // decodeFast takes it (else go-ucan does)
	}{
		{"bare", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms"}, true},
		{"top command", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/"}, true},
		{"expiry", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/node/peers", Expiry: soon}, true},
		{"expiry sub-second", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Expiry: soon.Add(time.Millisecond)}, true},
		{"far expiry", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Expiry: far}, true},
		{"not before", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", NotBefore: soon, Expiry: far}, true},
		{"not before only", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", NotBefore: far}, true},
		{"subject", w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.alice.DID(), Command: "/dms/x", Expiry: soon}, true},
		{"subject is issuer", w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.bob.DID(), Command: "/dms/x"}, true},
		{"self audience", w.bob, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x"}, true},
		{"nonce", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Nonce: bytes.Repeat([]byte{7}, 12)}, true},
		{"long nonce", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Nonce: bytes.Repeat([]byte{1}, 300)}, true},
		{"meta", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Meta: map[string]string{"host": "12D3KooW"}}, true},
		{"meta order", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x",
			Meta: map[string]string{"zz": "1", "a": "2", "bbb": "3", "ab": "", "b": "ü", "": "empty key"}}, true},
		{"meta long", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x",
			Meta: map[string]string{string(bytes.Repeat([]byte("k"), 30)): string(bytes.Repeat([]byte("v"), 70000/100))}}, true},
		{"everything", w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.alice.DID(), Command: "/dms/deployment",
			NotBefore: soon, Expiry: far, Meta: map[string]string{"n": "1"}, Nonce: []byte("0123456789ab")}, true},
		{"empty policy text", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Policy: "[]"}, true},
		// Policies are written by the fast encoder, read by go-ucan.
		{"policy", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Policy: `[["==", ".executor", "docker"]]`}, false},
		{"policies", w.alice, DelegationParams{Audience: w.bob.DID(), Command: "/dms/x", Expiry: soon,
			Policy: `[["<=", ".cpu", 4], ["or", [["==", ".a", 1.5], ["like", ".b", "x*"]]], ["all", ".p[]", [">", ".", -3]], ["not", ["!=", ".c", null]]]`}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, priv, err := delegationToken(c.issuer, c.p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tok.ToDagCbor(priv)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := encodeFast(c.issuer, tok)
			if err != nil || !ok {
				t.Fatalf("encodeFast: ok %v, %v", ok, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encodeFast wrote\n%s\ngo-ucan\n%s", hex.EncodeToString(got), hex.EncodeToString(want))
			}
			ref, err := refDecodeDelegation(want)
			if err != nil {
				t.Fatal(err)
			}
			fast, ok := decodeFast(want, tokenID(want))
			if ok != c.fastRead {
				t.Fatalf("decodeFast took it: %v, want %v", ok, c.fastRead)
			}
			if ok {
				sameDelegation(t, fast, ref)
			}
			dec, err := decodeUncached(t, want)
			if err != nil {
				t.Fatal(err)
			}
			sameDelegation(t, dec, ref)
			// Delegate's own answer (a fresh nonce) agrees with its decoding.
			d, err := Delegate(c.issuer, c.p)
			if err != nil {
				t.Fatal(err)
			}
			sameDelegation(t, d, must[*Delegation](t)(refDecodeDelegation(d.Sealed())))
			// decodeToken (chains) takes the same path.
			td, _, err := decodeToken(want)
			if err != nil {
				t.Fatal(err)
			}
			sameDelegation(t, td, ref)
		})
	}
}

// TestFastEncodeDeclines: a token the fast encoder does not write is
// sealed by go-ucan (Delegate never makes one; go-ucan's options can).
func TestFastEncodeDeclines(t *testing.T) {
	w := newWorld(t)
	iss := must[did.DID](t)(parseDID(w.alice.DID()))
	aud := must[did.DID](t)(parseDID(w.bob.DID()))
	for _, c := range []struct {
		name string
		sub  bool
		opt  delegation.Option
	}{
		{"int meta", true, delegation.WithMeta("n", int64(3))},
		{"bytes meta", true, delegation.WithMeta("b", []byte{1})},
		{"powerline", false, delegation.WithNonce(bytes.Repeat([]byte{2}, 12))},
	} {
		t.Run(c.name, func(t *testing.T) {
			sub := iss
			if !c.sub {
				sub = nil
			}
			tok := must[*delegation.Token](t)(delegation.New(iss, aud, command.Command("/dms"), policy.Policy{}, sub, c.opt))
			if _, ok, err := encodeFast(w.alice, tok); ok || err != nil {
				t.Fatalf("encodeFast took %s: ok %v, %v", c.name, ok, err)
			}
			// go-ucan's bytes are read by go-ucan, the same as before.
			priv, _, _ := signer(w.alice)
			sealed := must[[]byte](t)(tok.ToDagCbor(priv))
			if _, ok := decodeFast(sealed, tokenID(sealed)); ok {
				t.Fatal("decodeFast took a shape it does not read")
			}
			sameDelegation(t, must[*Delegation](t)(decodeUncached(t, sealed)), must[*Delegation](t)(refDecodeDelegation(sealed)))
		})
	}
}

// fuzzKey is the fixed issuer of the fuzz corpus's re-signed inputs.
func fuzzKey(t testing.TB) *identity.Key {
	return must[*identity.Key](t)(identity.KeyFromSeed(bytes.Repeat([]byte{0x5e}, 32)))
}

// resign seals sigPayload (the envelope's map) with a valid signature of
// key over exactly its bytes.
func resign(key *identity.Key, sigPayload []byte) []byte {
	out := append([]byte{0x82, 0x58, 0x40}, key.Sign(sigPayload)...)
	return append(out, sigPayload...)
}

// fastSeeds are sealed delegations of fuzzKey's of many shapes.
func fastSeeds(t testing.TB) [][]byte {
	k := fuzzKey(t)
	other := must[*identity.Key](t)(identity.KeyFromSeed(bytes.Repeat([]byte{0x11}, 32)))
	far := time.Date(2200, 1, 2, 3, 4, 5, 0, time.UTC)
	var out [][]byte
	for _, p := range []DelegationParams{
		{Audience: other.DID(), Command: "/dms"},
		{Audience: other.DID(), Command: "/dms/x", Expiry: far, NotBefore: far.Add(-time.Hour)},
		{Audience: other.DID(), Subject: other.DID(), Command: "/dms/x", Meta: map[string]string{"a": "1", "zz": "2", "bbb": "3"}},
		{Audience: other.DID(), Command: "/dms/x", Policy: `[["==", ".a", 1]]`},
	} {
		p.Nonce = bytes.Repeat([]byte{9}, 12)
		out = append(out, must[*Delegation](t)(Delegate(k, p)).Sealed())
	}
	return out
}

// TestFastDecodeDeclines: inputs the fast decoder must leave to go-ucan,
// whose answer DecodeDelegation then gives (same error rule and text).
func TestFastDecodeDeclines(t *testing.T) {
	k := fuzzKey(t)
	seeds := fastSeeds(t)
	base := seeds[1]
	payload := base[67:]
	// Edits of the payload map (re-signed so that only the edit matters).
	edit := func(old, new string) []byte {
		o, _ := hex.DecodeString(old)
		n, _ := hex.DecodeString(new)
		if !bytes.Contains(payload, o) {
			t.Fatalf("seed has no %s", old)
		}
		return resign(k, bytes.Replace(payload, o, n, 1))
	}
	flip := func(b []byte, i int) []byte {
		b = slices.Clone(b)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"bad signature", flip(base, 10)},
		{"signature over another payload", append(slices.Clone(base[:67]), seeds[0][67:]...)},
		{"trailing byte", append(slices.Clone(base), 0)},
		{"truncated", base[:len(base)-1]},
		{"short signature", append([]byte{0x82, 0x58, 0x3f}, base[4:]...)},
		{"non-shortest signature length", append([]byte{0x82, 0x59, 0x00, 0x40}, base[3:]...)},
		{"cmd non-shortest length", edit("636d64662f646d732f78", "636d6478062f646d732f78")},
		{"policy", edit("706f6c80", "706f6c8183623d3d622e6101")},
		{"policy non-shortest", edit("706f6c80", "706f6c9800")},
		{"exp missing", edit("63657870", "63657871")},
		{"uppercase cmd", edit("662f646d732f78", "662f444d532f78")},
		{"nonce short", edit("4c090909090909090909090909", "4b0909090909090909090909")},
		{"nonce text", edit("4c090909090909090909090909", "6c090909090909090909090909")},
		{"exp followed by a float", edit("63657870", "63657870fb41dbf5f4b2c00000")},
		{"invalid utf-8 cmd", edit("662f646d732f78", "662f646d732fff")},
		{"indefinite map", resign(k, append([]byte{0xbf}, append(slices.Clone(payload[1:]), 0xff)...))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := decodeFast(c.in, tokenID(c.in)); ok {
				t.Fatal("decodeFast took it")
			}
			got, gerr := decodeUncached(t, c.in)
			want, werr := refDecodeDelegation(c.in)
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("DecodeDelegation: %v; go-ucan: %v", gerr, werr)
			}
			if werr != nil {
				if gerr.Error() != werr.Error() || RuleOf(gerr) != RuleOf(werr) {
					t.Fatalf("DecodeDelegation: %v; go-ucan: %v", gerr, werr)
				}
				return
			}
			sameDelegation(t, got, want)
		})
	}
	if _, err := refDecodeDelegation(flip(base, 10)); RuleOf(err) != RuleSignature {
		t.Fatal("a flipped signature bit is not a signature refusal")
	}
}

// FuzzDecodeFast: whatever the input, when the fast decoder takes it,
// go-ucan takes it too with the same answers; when it does not,
// DecodeDelegation answers as go-ucan. With resign the input is the
// envelope's map, sealed with a valid signature of its bytes, so that the
// fuzzer explores payloads past the signature check.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s, false)
		f.Add(s[67:], true)
		for _, i := range []int{0, 1, 2, 3, 67, 70, 80, 90, len(s) / 2, len(s) - 1} {
			m := slices.Clone(s)
			m[i]++
			f.Add(m, false)
			f.Add(m[min(67, len(m)):], true)
		}
	}
	k := fuzzKey(f)
	f.Fuzz(func(t *testing.T, data []byte, doResign bool) {
		if doResign {
			data = resign(k, data)
		}
		id := tokenID(data)
		fast, ok := decodeFast(data, id)
		want, werr := refDecodeDelegation(data)
		if ok {
			if werr != nil {
				t.Fatalf("decodeFast took what go-ucan refuses: %v", werr)
			}
			sameDelegation(t, fast, want)
			tok, err := token.FromDagCbor(data, offline())
			if err != nil {
				t.Fatalf("token.FromDagCbor refuses what decodeFast took: %v", err)
			}
			if _, isDlg := tok.(*delegation.Token); !isDlg {
				t.Fatalf("token.FromDagCbor read a %T", tok)
			}
		}
		got, gerr := decodeUncached(t, data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("DecodeDelegation: %v; go-ucan: %v", gerr, werr)
		}
		if werr != nil {
			if gerr.Error() != werr.Error() {
				t.Fatalf("DecodeDelegation: %v; go-ucan: %v", gerr, werr)
			}
			return
		}
		sameDelegation(t, got, want)
	})
}

// goucanContainer is go-ucan's container.Writer.ToBase64StdPadding with
// the tokens in the given order (go-ucan's writer takes them from a map,
// in any order).
func goucanContainer(t testing.TB, tokens [][]byte) string {
	t.Helper()
	node, err := qp.BuildMap(basicnode.Prototype.Any, 1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, ctnVersion, qp.List(int64(len(tokens)), func(la datamodel.ListAssembler) {
			for _, tok := range tokens {
				qp.ListEntry(la, qp.Bytes(tok))
			}
		}))
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := must[[]byte](t)(ipld.Encode(node, cbor.Encode))
	return string(rune(ctnBase64)) + base64.StdEncoding.EncodeToString(raw)
}

// TestChainEncodeEqualsGoUcan: Chain.Encode writes go-ucan's container
// (its bytes for the chain's order; go-ucan's reader reads the same
// tokens), each token once.
func TestChainEncodeEqualsGoUcan(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/x", w.bob, w.carol, w.dave)
	big := w.grant(t, w.alice, w.bob, "/dms/y", func(p *DelegationParams) { p.Meta = map[string]string{"m": strings.Repeat("x", 70000)} })
	for _, tc := range []struct {
		name  string
		chain Chain
		want  [][]byte
	}{
		{"empty", Chain{}, nil},
		{"one", c[:1], sealedOf(c[:1])},
		{"four", c, sealedOf(c)},
		{"a token twice", Chain{c[0], c[1], c[0]}, sealedOf(c[:2])},
		{"long token", Chain{big}, sealedOf(Chain{big})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := must[string](t)(tc.chain.Encode())
			if want := goucanContainer(t, tc.want); got != want {
				t.Fatalf("Encode wrote\n%s\ngo-ucan\n%s", got, want)
			}
			r := must[container.Reader](t)(container.FromString(got))
			if len(r) != len(tc.want) {
				t.Fatalf("go-ucan read %d tokens, want %d", len(r), len(tc.want))
			}
			for _, s := range tc.want {
				if _, ok := r[cid.MustParse(tokenID(s))]; !ok {
					t.Fatalf("go-ucan did not read token %s", tokenID(s))
				}
			}
		})
	}
}

// TestRedelegateInheritsEmptyPolicy: a re-delegation of a chain with no
// policy has none, in its value and on the wire.
func TestRedelegateInheritsEmptyPolicy(t *testing.T) {
	w := newWorld(t)
	for _, pol := range []string{"", "[]"} {
		parent := Chain{w.grant(t, w.alice, w.bob, "/dms/x", func(p *DelegationParams) { p.Policy = pol })}
		c := must[Chain](t)(Redelegate(w.bob, parent, DelegationParams{Audience: w.carol.DID(), Command: "/dms/x/y"}, w.t0))
		leaf := c.Leaf()
		if leaf.Policy() != "[]" || len(leaf.policy()) != 0 {
			t.Fatalf("policy %q", leaf.Policy())
		}
		sameDelegation(t, leaf, must[*Delegation](t)(refDecodeDelegation(leaf.Sealed())))
	}
}

// FuzzPayloadTokensFast: when the fast container reader takes a payload,
// go-ipld-prime's reading of it gives the same tokens.
func FuzzPayloadTokensFast(f *testing.F) {
	w := newWorld(f)
	c := w.chain(f, "/dms/x", w.bob, w.carol)
	for _, ch := range []Chain{c, c[:1], {}} {
		text := must[string](f)(ch.Encode())
		raw := must[[]byte](f)(base64.StdEncoding.DecodeString(text[1:]))
		f.Add(raw)
		for _, i := range []int{0, 1, 3, 7, 8, 9, 10, len(raw) - 1} {
			if i < len(raw) {
				m := slices.Clone(raw)
				m[i]++
				f.Add(m)
			}
		}
	}
	f.Add([]byte{0xa1, 0x66, 'c', 't', 'n', '-', 'v', '1', 0x9f, 0x41, 1, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := payloadTokensFast(payload)
		if !ok {
			return
		}
		slow, err := payloadTokens(payload)
		if err != nil {
			t.Fatalf("fast reader took what go-ipld-prime refuses: %v", err)
		}
		if len(fast) != len(slow) {
			t.Fatalf("%d tokens, go-ipld-prime %d", len(fast), len(slow))
		}
		for i := range fast {
			if !bytes.Equal(fast[i], slow[i]) {
				t.Fatalf("token %d differs", i)
			}
		}
	})
}

// TestIssuerKeyDeclinesWhatGoDidItRefuses: every issuer key whose DID
// document go-did-it cannot make (go-ucan then refuses, or panics) is
// declined by issuerKey, so go-ucan answers; ordinary keys are taken.
func TestIssuerKeyDeclinesWhatGoDidItRefuses(t *testing.T) {
	le := func(hexBE string) ed25519.PublicKey { // a 255-bit y, big-endian hex
		b := must[[]byte](t)(hex.DecodeString(hexBE))
		slices.Reverse(b)
		return b
	}
	const p = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"
	keys := map[string]ed25519.PublicKey{
		"y=0":          le(strings.Repeat("0", 64)),
		"y=1":          le(strings.Repeat("0", 63) + "1"),
		"y=1 signed":   le("80" + strings.Repeat("0", 61) + "1"),
		"y=2":          le(strings.Repeat("0", 63) + "2"),
		"y=p-1":        le(p[:63] + "c"),
		"y=p":          le(p),
		"y=p+1":        le(p[:63] + "e"),
		"y=p+1 signed": le("ff" + p[2:63] + "e"),
		"y=2^255-1":    le("7f" + strings.Repeat("f", 62)),
		"random":       fuzzKey(t).Public(),
	}
	for name, pub := range keys {
		t.Run(name, func(t *testing.T) {
			s := identity.DIDFromPublicKey(pub)
			d := must[did.DID](t)(parseDID(s))
			_, derr := safely(func() (did.Document, error) { return d.Document(offline()) })
			_, ok := issuerKey(s)
			if derr != nil && ok {
				t.Fatalf("issuerKey took a key go-did-it refuses: %v", derr)
			}
			if ok != montgomeryDefined(pub) {
				t.Fatalf("issuerKey = %v", ok)
			}
			if name == "random" && !ok {
				t.Fatal("issuerKey refused an ordinary key")
			}
			t.Logf("go-did-it: %v; issuerKey: %v", derr, ok)
		})
	}
}

// TestCBORHead checks the fast reader's heads: every argument width, and
// the non-shortest, indefinite and simple forms it refuses.
func TestCBORHead(t *testing.T) {
	cases := []struct {
		name  string
		in    string // hex
		major byte
		arg   uint64
		ok    bool
	}{
		{"immediate", "17", cborUint, 23, true},
		{"one byte", "1818", cborUint, 24, true},
		{"one byte, fits immediate", "1817", 0, 0, false},
		{"two bytes", "590100", cborBytes, 256, true},
		{"two bytes, fits one", "5900ff", 0, 0, false},
		{"four bytes", "7a00010000", cborText, 1 << 16, true},
		{"four bytes, fits two", "7a0000ffff", 0, 0, false},
		{"eight bytes", "1b0000000100000000", cborUint, 1 << 32, true},
		{"eight bytes, fits four", "1b00000000ffffffff", 0, 0, false},
		{"truncated argument", "1b00000001", 0, 0, false},
		{"indefinite length", "9f", 0, 0, false},
		{"reserved info", "1c", 0, 0, false},
		{"simple value", "f6", 0, 0, false},
		{"empty", "", 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.in)
			r := cborReader{b: b}
			major, arg, ok := r.head()
			if ok != tc.ok || ok && (major != tc.major || arg != tc.arg) {
				t.Fatalf("head(%s) = %d, %d, %v; want %d, %d, %v", tc.in, major, arg, ok, tc.major, tc.arg, tc.ok)
			}
			if ok && r.off != len(b) {
				t.Fatalf("head(%s) read %d of %d bytes", tc.in, r.off, len(b))
			}
		})
	}
}
