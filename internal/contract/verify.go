package contract

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"sync"

	"filippo.io/edwards25519"

	"github.com/dmsnet/dms/internal/identity"
)

// verifyDID reports whether sig is did's ed25519 signature of msg, as
// identity.Verify does, but with did's public key decoded once: the
// base58 of the DID and the point decompression cost a quarter of a
// verification, and a requester verifies the notes of a few providers
// over and over. The check itself is crypto/ed25519's (RFC 8032, the
// same cofactorless equation and the same refusals:
// FuzzVerifyDID compares the two).
func verifyDID(did identity.DID, msg, sig []byte) bool {
	k := pointOf(did)
	if k == nil || len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(k.pub)
	h.Write(msg)
	var d [sha512.Size]byte
	kk, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		return false
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	// [s]B = R + [k]A  ⇔  [k](-A) + [s]B = R
	r := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(kk, k.minusA, s)
	return bytes.Equal(sig[:32], r.Bytes())
}

// decodedKey is a DID's public key, with its point negated.
type decodedKey struct {
	pub    []byte
	minusA *edwards25519.Point // read only once cached
}

// maxDecodedKeys bounds the cache; it is emptied when full.
const maxDecodedKeys = 4096

var decoded struct {
	mu sync.RWMutex
	m  map[identity.DID]*decodedKey
}

// pointOf returns did's decoded key (nil: not an ed25519 did:key, or
// not a point of the curve).
func pointOf(did identity.DID) *decodedKey {
	decoded.mu.RLock()
	k := decoded.m[did]
	decoded.mu.RUnlock()
	if k != nil {
		return k
	}
	pub, err := did.PublicKey()
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil
	}
	k = &decodedKey{pub: bytes.Clone(pub), minusA: new(edwards25519.Point).Negate(a)}
	decoded.mu.Lock()
	if decoded.m == nil || len(decoded.m) >= maxDecodedKeys {
		decoded.m = make(map[identity.DID]*decodedKey)
	}
	decoded.m[did] = k
	decoded.mu.Unlock()
	return k
}
