package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
)

// Key is an Ed25519 private key with its did:key. The node key is also the
// node's libp2p identity (internal/p2p converts it).
type Key struct {
	priv ed25519.PrivateKey
	did  DID
}

// NewKey generates a random key.
func NewKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return KeyFromPrivate(priv), nil
}

// KeyFromSeed derives a key from a 32-byte seed.
func KeyFromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return KeyFromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

// KeyFromPrivate wraps an existing private key.
func KeyFromPrivate(priv ed25519.PrivateKey) *Key {
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{priv: priv, did: DIDFromPublicKey(pub)}
}

// DID returns the key's did:key.
func (k *Key) DID() DID { return k.did }

// Public returns the public key.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Private returns the private key. Callers must not modify or persist it in
// plaintext.
func (k *Key) Private() ed25519.PrivateKey { return k.priv }

// Seed returns the 32-byte seed the key derives from.
func (k *Key) Seed() []byte { return k.priv.Seed() }

// Sign signs msg.
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// Verify reports whether sig is did's signature of msg.
func Verify(did DID, msg, sig []byte) bool {
	pub, err := did.PublicKey()
	if err != nil {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}
