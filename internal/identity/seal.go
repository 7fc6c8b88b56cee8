package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// A Sealer encrypts small secrets, such as the keys of child actors
// (orchestrators, allocations), under a key derived from the node key, so
// they are encrypted at rest without a passphrase prompt per child and
// without a costly KDF per child.
type Sealer struct {
	aead cipherAEAD
}

// ErrUnseal is returned when sealed data does not open: wrong node key,
// wrong purpose, or tampering.
var ErrUnseal = errors.New("sealed data does not open with this node key")

// NewSealer derives a sealing key from k for one purpose (e.g. "child-keys").
func NewSealer(k *Key, purpose string) (*Sealer, error) {
	dk := make([]byte, chacha20poly1305.KeySize)
	r := hkdf.New(sha256.New, k.Seed(), []byte("dms-sealer"), []byte(purpose))
	if _, err := io.ReadFull(r, dk); err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(dk)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to ad (e.g. the actor's DID) and returns
// nonce || ciphertext.
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	rand.Read(nonce) // never fails (crypto/rand, Go ≥ 1.24)
	return s.aead.Seal(nonce, nonce, plaintext, ad)
}

// Open decrypts what Seal returned.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: too short", ErrUnseal)
	}
	pt, err := s.aead.Open(nil, sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// SealKey seals a key's seed, bound to its DID.
func (s *Sealer) SealKey(k *Key) []byte { return s.Seal(k.Seed(), []byte(k.DID())) }

// OpenKey opens a sealed key and checks it is did's key.
func (s *Sealer) OpenKey(sealed []byte, did DID) (*Key, error) {
	seed, err := s.Open(sealed, []byte(did))
	if err != nil {
		return nil, err
	}
	k, err := KeyFromSeed(seed)
	if err != nil {
		return nil, err
	}
	if k.DID() != did {
		return nil, fmt.Errorf("%w: key is not %s", ErrUnseal, did)
	}
	return k, nil
}
