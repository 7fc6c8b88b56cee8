package contract

import (
	"crypto/ed25519"
	"sync"

	"github.com/dmsnet/dms/internal/identity"
)

// verifyDID reports whether sig is did's ed25519 signature of msg, as
// identity.Verify does, but with did's public key decoded from its
// base58 once: a requester verifies the notes of a few providers over and
// over. The check itself is crypto/ed25519's (FuzzVerifyDID compares the
// two).
func verifyDID(did identity.DID, msg, sig []byte) bool {
	pub := keyOf(did)
	return pub != nil && ed25519.Verify(pub, msg, sig)
}

// maxDecodedKeys bounds the cache; it is emptied when full.
const maxDecodedKeys = 4096

var decoded struct {
	mu sync.RWMutex
	m  map[identity.DID]ed25519.PublicKey
}

// keyOf returns did's public key (nil: not an ed25519 did:key).
func keyOf(did identity.DID) ed25519.PublicKey {
	decoded.mu.RLock()
	pub := decoded.m[did]
	decoded.mu.RUnlock()
	if pub != nil {
		return pub
	}
	raw, err := did.PublicKey()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil
	}
	pub = ed25519.PublicKey(append([]byte(nil), raw...))
	decoded.mu.Lock()
	if decoded.m == nil || len(decoded.m) >= maxDecodedKeys {
		decoded.m = make(map[identity.DID]ed25519.PublicKey)
	}
	decoded.m[did] = pub
	decoded.mu.Unlock()
	return pub
}
