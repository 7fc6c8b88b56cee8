package cap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/dmsnet/dms/internal/identity"
)

// What the package keeps between calls: the delegations decoded last, the
// signing keys converted last, the DIDs parsed last.

// TestDecodeDelegationKept: the same sealed bytes decode once; other bytes
// (a flipped bit, in the signature or in the payload) are decoded and
// refused as before, and a refusal is not kept.
func TestDecodeDelegationKept(t *testing.T) {
	w := newWorld(t)
	d := w.grant(t, w.alice, w.bob, "/dms/node/deployment")
	sealed := append([]byte(nil), d.Sealed()...)
	first := must[*Delegation](t)(DecodeDelegation(sealed))
	again := must[*Delegation](t)(DecodeDelegation(append([]byte(nil), sealed...)))
	if first != again {
		t.Errorf("the same bytes were decoded twice (%p, %p): the decoded delegation is not kept", first, again)
	}
	if first.CID() != d.CID() || first.Issuer() != w.alice.DID() || first.Audience() != w.bob.DID() {
		t.Errorf("kept %s %s → %s, want %s %s → %s", first.CID(), first.Issuer(), first.Audience(), d.CID(), w.alice.DID(), w.bob.DID())
	}
	for _, at := range []int{len(sealed) - 1, len(sealed) / 2} {
		bad := append([]byte(nil), sealed...)
		bad[at] ^= 1
		for range 2 {
			if _, err := DecodeDelegation(bad); !errors.Is(err, ErrDenied) {
				t.Errorf("bit %d flipped: %v, want a refusal", at, err)
			}
		}
	}
	// The kept delegation is not changed by the caller's bytes.
	sealed[0] ^= 1
	if got := must[*Delegation](t)(DecodeDelegation(d.Sealed())); got.CID() != d.CID() {
		t.Errorf("kept delegation %s, want %s", got.CID(), d.CID())
	}
}

// TestSignerKept: a key signing again is not converted again (the
// conversion derives the key from its seed: a scalar multiplication).
func TestSignerKept(t *testing.T) {
	w := newWorld(t)
	if _, _, err := signer(w.carol); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() {
		if _, _, err := signer(w.carol); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("signer allocates %v times for a key it converted before; want 0 (kept)", n)
	}
	_, iss, err := signer(w.carol)
	if err != nil {
		t.Fatal(err)
	}
	if iss.String() != string(w.carol.DID()) {
		t.Errorf("signer's DID %s, want %s", iss, w.carol.DID())
	}
	// What the kept key signs verifies as carol's.
	d := must[*Delegation](t)(Delegate(w.carol, DelegationParams{Audience: w.bob.DID(), Command: "/dms/node/deployment"}))
	if got := must[*Delegation](t)(DecodeDelegation(append([]byte(nil), d.Sealed()...))); got.Issuer() != w.carol.DID() {
		t.Errorf("issuer %s, want %s", got.Issuer(), w.carol.DID())
	}
}

// TestDelegateKeepsWhatItSigned: a delegation Delegate signs is kept as
// if decoded, so that this node does not verify its own signature when the
// same bytes come back (the orchestrator's chains, in its allocations'
// reports); bytes that differ — another signature over the same payload,
// the payload signed by another key, a flipped bit — are still decoded,
// verified and refused, and what is kept stays bounded.
func TestDelegateKeepsWhatItSigned(t *testing.T) {
	w := newWorld(t)
	d := w.grant(t, w.alice, w.bob, "/dms/node/deployment")
	if got := must[*Delegation](t)(DecodeDelegation(append([]byte(nil), d.Sealed()...))); got != d {
		t.Errorf("DecodeDelegation of the bytes Delegate signed gave %p, want Delegate's %p (kept)", got, d)
	}
	sameDelegation(t, d, must[*Delegation](t)(refDecodeDelegation(d.Sealed())))

	sealed := d.Sealed()
	payload := sealed[3+64:] // after [sig-bytes head (3 bytes), 64-byte signature]
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"signature bit flipped", func() []byte { b := bytes.Clone(sealed); b[10] ^= 1; return b }()},
		{"payload signed by another key", resign(w.carol, payload)},
		{"payload bit flipped", func() []byte { b := bytes.Clone(sealed); b[len(b)-1] ^= 1; return b }()},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 2 { // a refusal is not kept either
				if got, err := DecodeDelegation(c.b); !errors.Is(err, ErrDenied) {
					t.Errorf("DecodeDelegation: %v, %v; want a refusal", got, err)
				}
			}
		})
	}

	// Bytes that name another issuer than the signing key are not kept.
	other := resign(w.carol, payload)
	sum := sha256.Sum256(other)
	if _, ok := signedFast(w.carol, other, sum, cidOf(sum)); ok {
		t.Error("signedFast kept bytes naming alice as issuer, signed by carol")
	}
	if _, ok := decoded.Get(sum); ok {
		t.Error("bytes carol signed for alice's payload are kept as decoded")
	}

	// Bounded: never more than decodedSize delegations.
	for range decodedSize + 8 {
		w.grant(t, w.alice, w.bob, "/dms/node/deployment")
	}
	if n := decoded.Len(); n > decodedSize {
		t.Errorf("%d delegations kept, at most %d", n, decodedSize)
	}
}

// TestDelegateWithPolicyNotKept: a delegation the fast decoder does not
// read (a policy) is not kept at its signing: its decoding is go-ucan's,
// verification included.
func TestDelegateWithPolicyNotKept(t *testing.T) {
	w := newWorld(t)
	d := w.grant(t, w.alice, w.bob, "/dms/node/deployment", func(p *DelegationParams) { p.Policy = `[["==", ".a", 1]]` })
	if _, ok := decoded.Get(sha256.Sum256(d.Sealed())); ok {
		t.Fatal("a delegation with a policy was kept at its signing")
	}
	got := must[*Delegation](t)(DecodeDelegation(d.Sealed()))
	if got == d {
		t.Error("DecodeDelegation returned the signed value, not a decoding")
	}
	sameDelegation(t, got, d)
}

// TestKnownDIDKept: a DID knownDID accepted is not printed again (go-did-it
// formats it at every String); what it refuses is refused every time, and
// at most 1,024 are kept.
func TestKnownDIDKept(t *testing.T) {
	w := newWorld(t)
	bob := string(w.bob.DID())
	if !knownDID(bob) {
		t.Fatalf("knownDID(%s) = false", bob)
	}
	if n := testing.AllocsPerRun(10, func() {
		if !knownDID(bob) {
			t.Fatal("refused the second time")
		}
	}); n != 0 {
		t.Errorf("knownDID allocates %v times for a DID it accepted before; want 0 (kept)", n)
	}
	for _, s := range []string{
		"did:key:nope",
		bob + "x",        // another key's text, not a valid one
		bob[:len(bob)-1], // a prefix of a kept DID
		"did:web:" + bob[len("did:key:"):],
		"",
	} {
		for range 2 {
			if knownDID(s) {
				t.Errorf("knownDID(%q) = true", s)
			}
		}
	}
	for range 1024 + 8 {
		k := must[*identity.Key](t)(identity.NewKey())
		if !knownDID(string(k.DID())) {
			t.Fatalf("knownDID(%s) = false", k.DID())
		}
	}
	if n := knownDIDs.Len(); n > 1024 {
		t.Errorf("%d DIDs kept, at most 1024", n)
	}
}
