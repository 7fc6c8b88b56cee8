package cap

import (
	"errors"
	"testing"
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
