package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/mr-tron/base58"
)

// DID is a did:key identifier of an Ed25519 public key:
// "did:key:z" + base58btc(0xed 0x01 || public key), the form go-ucan and
// every did:key implementation use. The zero value is not a valid DID.
type DID string

const (
	didKeyPrefix = "did:key:"
	// multicodec ed25519-pub (0xed) as an unsigned varint.
	codecEd25519Hi = 0xed
	codecEd25519Lo = 0x01
)

// ErrBadDID is wrapped by every error ParseDID returns.
var ErrBadDID = errors.New("not an ed25519 did:key")

// DIDFromPublicKey returns the did:key of pub.
func DIDFromPublicKey(pub ed25519.PublicKey) DID {
	buf := make([]byte, 0, 2+ed25519.PublicKeySize)
	buf = append(buf, codecEd25519Hi, codecEd25519Lo)
	buf = append(buf, pub...)
	return DID(didKeyPrefix + "z" + base58.Encode(buf))
}

// ParseDID checks s is an Ed25519 did:key and returns its public key.
func ParseDID(s string) (ed25519.PublicKey, error) {
	bad := func(why string) (ed25519.PublicKey, error) {
		short := s
		if len(short) > 80 {
			short = short[:80] + "…"
		}
		return nil, fmt.Errorf("%q is %w: %s", short, ErrBadDID, why)
	}
	rest, ok := strings.CutPrefix(s, didKeyPrefix)
	if !ok {
		return bad("want prefix did:key:")
	}
	mb, ok := strings.CutPrefix(rest, "z")
	if !ok {
		return bad("want multibase base58btc (z…)")
	}
	// An ed25519 did:key is 48 base58 characters; refuse long input early.
	if len(mb) > 64 {
		return bad("too long")
	}
	raw, err := base58.Decode(mb)
	if err != nil {
		return bad("bad base58")
	}
	if len(raw) < 2 || raw[0] != codecEd25519Hi || raw[1] != codecEd25519Lo {
		return bad("multicodec is not ed25519-pub")
	}
	if len(raw) != 2+ed25519.PublicKeySize {
		return bad(fmt.Sprintf("key is %d bytes, want %d", len(raw)-2, ed25519.PublicKeySize))
	}
	return ed25519.PublicKey(raw[2:]), nil
}

// PublicKey returns the key d names.
func (d DID) PublicKey() (ed25519.PublicKey, error) { return ParseDID(string(d)) }

// Valid reports whether d is a well-formed Ed25519 did:key.
func (d DID) Valid() bool {
	_, err := ParseDID(string(d))
	return err == nil
}

// String returns the DID text.
func (d DID) String() string { return string(d) }

// Short returns an abbreviation for logs and tables: did:key:z6Mk…last6.
func (d DID) Short() string {
	s := string(d)
	if len(s) <= 24 {
		return s
	}
	return s[:len(didKeyPrefix)+5] + "…" + s[len(s)-6:]
}
