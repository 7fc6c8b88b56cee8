package contract

import (
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/dmsnet/dms/internal/identity"
)

func verifyKey(t testing.TB, name string) *identity.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("verify test key " + name))
	k, err := identity.KeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// nonCanonical returns sig with S replaced by S+L (the same scalar, not
// reduced): crypto/ed25519 refuses it, so must verifyDID.
func nonCanonical(sig []byte) []byte {
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) *big.Int {
		be := make([]byte, len(b))
		for i := range b {
			be[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(be)
	}
	s := new(big.Int).Add(le(sig[32:]), l)
	be := s.FillBytes(make([]byte, 32))
	out := append([]byte(nil), sig[:32]...)
	for i := range be {
		out = append(out, be[31-i])
	}
	return out
}

func TestVerifyDID(t *testing.T) {
	a, b := verifyKey(t, "a"), verifyKey(t, "b")
	msg := []byte("dms-note|" + hashHex([]byte("x")))
	sig := a.Sign(msg)
	flip := func(i int) []byte {
		s := append([]byte(nil), sig...)
		s[i] ^= 1
		return s
	}
	high := append([]byte(nil), sig...)
	high[63] |= 0x80
	// The identity point's encoding: a small-order public key.
	small := identity.DIDFromPublicKey(append([]byte{1}, make([]byte, 31)...))
	for _, tc := range []struct {
		name string
		did  identity.DID
		msg  []byte
		sig  []byte
		want bool
	}{
		{"valid", a.DID(), msg, sig, true},
		{"valid again (cached key)", a.DID(), msg, sig, true},
		{"another key", b.DID(), msg, sig, false},
		{"another message", a.DID(), append(msg, '!'), sig, false},
		{"R flipped", a.DID(), msg, flip(0), false},
		{"S flipped", a.DID(), msg, flip(40), false},
		{"high bits of S", a.DID(), msg, high, false},
		{"S not reduced", a.DID(), msg, nonCanonical(sig), false},
		{"short", a.DID(), msg, sig[:63], false},
		{"empty", a.DID(), msg, nil, false},
		{"not a DID", identity.DID("did:key:zzz"), msg, sig, false},
		{"small-order key", small, msg, sig, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyDID(tc.did, tc.msg, tc.sig); got != tc.want {
				t.Errorf("verifyDID = %v, want %v", got, tc.want)
			}
			if std := identity.Verify(tc.did, tc.msg, tc.sig); std != tc.want {
				t.Errorf("identity.Verify = %v, want %v (the test's expectation is wrong)", std, tc.want)
			}
		})
	}
}

// FuzzVerifyDID checks that verifyDID agrees with identity.Verify
// (crypto/ed25519) on any signature and message, for a valid key.
func FuzzVerifyDID(f *testing.F) {
	a := verifyKey(f, "a")
	msg := []byte("dms-note-accept|" + hashHex([]byte("y")))
	sig := a.Sign(msg)
	f.Add(msg, sig, byte(0))
	f.Add(msg, nonCanonical(sig), byte(0))
	f.Add([]byte{}, make([]byte, 64), byte(1))
	keys := []*identity.Key{a, verifyKey(f, "b")}
	f.Fuzz(func(t *testing.T, m, s []byte, which byte) {
		did := keys[int(which)%len(keys)].DID()
		if got, want := verifyDID(did, m, s), identity.Verify(did, m, s); got != want {
			t.Fatalf("verifyDID(%x, %x) = %v, crypto/ed25519 says %v", m, s, got, want)
		}
	})
}
