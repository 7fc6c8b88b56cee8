package contract

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"

	"filippo.io/edwards25519"

	"github.com/dmsnet/dms/internal/identity"
)

// VerifyProviderSigs checks the provider's signatures of several notes
// together: ok[i] reports whether notes[i].ProviderSig is providers[i]'s
// signature of the note's hash. A requester receives its providers'
// notes in bursts (a provider's tick sends a note for each of its
// contracts at once), and one batch of 16 to 32 signatures costs about
// a third of as many single verifications (BenchmarkVerifyProviderSigs).
//
// The batch equation is the cofactored one (as in ZIP-215), with a
// random 128-bit coefficient per signature, so a batch with a bad
// signature passes with probability below 2⁻¹²⁸. Before it, each
// signature gets crypto/ed25519's own checks (length, canonical S, a
// canonical encoding of R, a public key that decodes), and a key with a
// small-order component is checked alone. When a batch fails, each of
// its signatures is verified alone with crypto/ed25519, so a refusal is
// always crypto/ed25519's. A batch can accept, beyond what
// crypto/ed25519 accepts, only a signature whose R has a small-order
// component; making one needs the provider's private key, for a note
// the provider could as well have signed plainly: it does not let
// anyone else forge a note.
//
// A signature that verified here is remembered for CheckNote on the same
// note (its provider's signature is not verified again), but not for
// Accepted: a ledger that settles the note verifies the provider's
// signature with crypto/ed25519 before it pays.
func VerifyProviderSigs(providers []identity.DID, notes []*SignedNote) []bool {
	ok := make([]bool, len(notes))
	if len(providers) != len(notes) {
		return ok
	}
	var batch []int // indexes of the notes in the batch
	for i, n := range notes {
		switch {
		case n == nil:
		case n.provOK.holds(n.Hash, providers[i], n.ProviderSig, true):
			ok[i] = true
		case len(notes) == 1 || !batchable(providers[i], n.ProviderSig):
			// Alone, or a key or a signature the batch would not judge
			// as crypto/ed25519 does: the plain check.
			if verifySig(&n.provOK, notePrefix, n.Hash, providers[i], n.ProviderSig) {
				ok[i] = true
				n.provOK = memo(n.Hash, providers[i], n.ProviderSig)
			}
		default:
			batch = append(batch, i)
		}
	}
	if len(batch) == 0 {
		return ok
	}
	if len(batch) > 1 && batchVerify(providers, notes, batch) {
		for _, i := range batch {
			ok[i] = true
			notes[i].provOK = memo(notes[i].Hash, providers[i], notes[i].ProviderSig)
			notes[i].provOK.batch = true
		}
		return ok
	}
	for _, i := range batch { // the plain check finds the bad ones
		n := notes[i]
		if verifyDID(providers[i], []byte(notePrefix+n.Hash), n.ProviderSig) {
			ok[i] = true
			n.provOK = memo(n.Hash, providers[i], n.ProviderSig)
		}
	}
	return ok
}

// batchable reports whether sig by did can go into a batch: a key that
// decodes, without a small-order component, and a signature that passes
// crypto/ed25519's checks of its form.
func batchable(did identity.DID, sig []byte) bool {
	k := keyOf(did)
	if k == nil || !k.primeOrder() {
		return false
	}
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	if _, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:]); err != nil {
		return false
	}
	return canonicalPoint(sig[:32])
}

// canonicalPoint reports whether b is a canonical encoding of a point's
// y coordinate and x sign, as Point.Bytes writes it (and so as
// crypto/ed25519 compares R): y below 2²⁵⁵-19, and no sign bit on the
// two points whose x is 0 (y = 1 and y = -1). Whether it is on the curve
// is for Point.SetBytes.
func canonicalPoint(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	top := b[31] & 0x7f
	allFF := true
	for _, c := range b[1:31] {
		if c != 0xff {
			allFF = false
			break
		}
	}
	if top == 0x7f && allFF && b[0] >= 0xed { // y ≥ p
		return false
	}
	if b[31]&0x80 != 0 {
		one := b[0] == 1 && top == 0
		for _, c := range b[1:31] {
			if c != 0 {
				one = false
				break
			}
		}
		minusOne := b[0] == 0xec && top == 0x7f && allFF
		if one || minusOne {
			return false
		}
	}
	return true
}

// batchVerify checks [8](Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ − (Σ zᵢsᵢ)B) = 0 for the
// notes at idx (all batchable), with the terms of one key summed.
func batchVerify(providers []identity.DID, notes []*SignedNote, idx []int) bool {
	zs := make([]byte, 16*len(idx))
	if _, err := rand.Read(zs); err != nil {
		return false
	}
	scalars := make([]*edwards25519.Scalar, 0, len(idx)+4)
	points := make([]*edwards25519.Point, 0, len(idx)+4)
	sB := edwards25519.NewScalar() // Σ zᵢsᵢ
	var keys []identity.DID        // the keys' terms follow the Rᵢ's
	var keyScalars []*edwards25519.Scalar
	var keyPoints []*edwards25519.Point
	var zb [32]byte
	var h [sha512.Size]byte
	for j, i := range idx {
		n, did := notes[i], providers[i]
		k := keyOf(did)
		R, err := new(edwards25519.Point).SetBytes(n.ProviderSig[:32])
		if err != nil {
			return false
		}
		s, err := new(edwards25519.Scalar).SetCanonicalBytes(n.ProviderSig[32:])
		if err != nil {
			return false
		}
		copy(zb[:16], zs[16*j:16*j+16])
		z, err := edwards25519.NewScalar().SetCanonicalBytes(zb[:])
		if err != nil {
			return false
		}
		d := sha512.New()
		d.Write(n.ProviderSig[:32])
		d.Write(k.pub)
		d.Write([]byte(notePrefix))
		d.Write([]byte(n.Hash))
		kk, err := edwards25519.NewScalar().SetUniformBytes(d.Sum(h[:0]))
		if err != nil {
			return false
		}
		sB.MultiplyAdd(z, s, sB)
		scalars = append(scalars, z)
		points = append(points, R)
		at := -1
		for x, o := range keys {
			if o == did {
				at = x
				break
			}
		}
		if at < 0 {
			keys = append(keys, did)
			keyScalars = append(keyScalars, edwards25519.NewScalar())
			keyPoints = append(keyPoints, k.point)
			at = len(keys) - 1
		}
		keyScalars[at].MultiplyAdd(z, kk, keyScalars[at])
	}
	scalars = append(append(scalars, keyScalars...), sB.Negate(sB))
	points = append(append(points, keyPoints...), edwards25519.NewGeneratorPoint())
	sum := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	return sum.MultByCofactor(sum).Equal(edwards25519.NewIdentityPoint()) == 1
}

// lMinusOne is the group order minus one, little-endian: [ℓ-1]P + P is
// the identity exactly when P has no small-order component.
var lMinusOne = func() *edwards25519.Scalar {
	b := [32]byte{0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 31: 0x10}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic("contract: ℓ-1 is not canonical: " + err.Error())
	}
	return s
}()

// primeOrder reports whether k's point decodes and has no small-order
// component (computed once per key).
func (k *decodedKey) primeOrder() bool {
	k.once.Do(func() {
		p, err := new(edwards25519.Point).SetBytes(k.pub)
		if err != nil {
			return
		}
		q := new(edwards25519.Point).ScalarMult(lMinusOne, p)
		if q.Add(q, p).Equal(edwards25519.NewIdentityPoint()) == 1 {
			k.point, k.prime = p, true
		}
	})
	return k.prime
}
