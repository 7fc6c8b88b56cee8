package contract

import (
	"crypto/ed25519"
	"sync"

	"filippo.io/edwards25519"

	"github.com/dmsnet/dms/internal/identity"
)

// verifyDID reports whether sig is did's ed25519 signature of msg, as
// identity.Verify does, but with did's public key decoded from its
// base58 once: a requester verifies the notes of a few providers over and
// over. The check itself is crypto/ed25519's (FuzzVerifyDID compares the
// two).
func verifyDID(did identity.DID, msg, sig []byte) bool {
	k := keyOf(did)
	return k != nil && ed25519.Verify(k.pub, msg, sig)
}

// maxDecodedKeys bounds the cache; it is emptied when full.
const maxDecodedKeys = 4096

var decoded struct {
	mu sync.RWMutex
	m  map[identity.DID]*decodedKey
}

// decodedKey is a DID's public key, and for batch verification its
// point (see primeOrder).
type decodedKey struct {
	pub   ed25519.PublicKey
	once  sync.Once
	point *edwards25519.Point // set when prime
	prime bool                // the point decodes and has no small-order component
}

// keyOf returns did's public key (nil: not an ed25519 did:key).
func keyOf(did identity.DID) *decodedKey {
	decoded.mu.RLock()
	k := decoded.m[did]
	decoded.mu.RUnlock()
	if k != nil {
		return k
	}
	raw, err := did.PublicKey()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil
	}
	k = &decodedKey{pub: ed25519.PublicKey(append([]byte(nil), raw...))}
	decoded.mu.Lock()
	if decoded.m == nil || len(decoded.m) >= maxDecodedKeys {
		decoded.m = make(map[identity.DID]*decodedKey)
	}
	decoded.m[did] = k
	decoded.mu.Unlock()
	return k
}
