package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/nacl/box"
)

// SealTo encrypts plaintext so that only the holder of the private key of
// did (an Ed25519 did:key, e.g. a provider's) can open it: an anonymous
// NaCl box (ephemeral X25519, XSalsa20-Poly1305) to the X25519 form of the
// key. context (e.g. "<deployment>/<secret name>") is sealed with the
// plaintext and must be given again to open it, so a box cannot be
// replayed for another purpose.
func SealTo(did DID, plaintext, context []byte) ([]byte, error) {
	pub, err := did.PublicKey()
	if err != nil {
		return nil, err
	}
	xpub, err := x25519Public(pub)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, 2+len(context)+len(plaintext))
	msg = append(msg, byte(len(context)>>8), byte(len(context)))
	msg = append(append(msg, context...), plaintext...)
	if len(context) > 0xffff {
		return nil, errors.New("seal: context too long")
	}
	return box.SealAnonymous(nil, msg, xpub, rand.Reader)
}

// OpenSealed opens what SealTo sealed to k's DID with the same context.
func (k *Key) OpenSealed(sealed, context []byte) ([]byte, error) {
	xpriv := x25519Private(k.priv)
	xpub, err := x25519Public(k.Public())
	if err != nil {
		return nil, err
	}
	msg, ok := box.OpenAnonymous(nil, sealed, xpub, xpriv)
	if !ok {
		return nil, ErrUnseal
	}
	if len(msg) < 2 {
		return nil, ErrUnseal
	}
	n := int(msg[0])<<8 | int(msg[1])
	if len(msg) < 2+n || !bytes.Equal(msg[2:2+n], context) {
		return nil, fmt.Errorf("%w: sealed for another purpose", ErrUnseal)
	}
	return msg[2+n:], nil
}

// x25519Public is the Montgomery form of an Ed25519 public key.
func x25519Public(pub ed25519.PublicKey) (*[32]byte, error) {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("seal: not an ed25519 public key: %w", err)
	}
	var out [32]byte
	copy(out[:], p.BytesMontgomery())
	return &out, nil
}

// x25519Private is the X25519 scalar of an Ed25519 private key (RFC 8032:
// the clamped first half of SHA-512 of the seed).
func x25519Private(priv ed25519.PrivateKey) *[32]byte {
	h := sha512.Sum512(priv.Seed())
	var out [32]byte
	copy(out[:], h[:32])
	out[0] &= 248
	out[31] &= 127
	out[31] |= 64
	return &out
}
