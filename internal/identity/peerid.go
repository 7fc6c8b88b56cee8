package identity

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/mr-tron/base58"

	"github.com/dmsnet/dms/internal/lru"
)

// A libp2p peer ID of an Ed25519 key is the identity multihash (0x00, length
// 36) of the key's protobuf encoding (Type=Ed25519 is 0x08 0x01, Data is
// 0x12 0x20 + 32 bytes), in base58btc: "12D3KooW…". The node key is both a
// DID and a peer ID, so each converts to the other without a network.
var peerIDPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// PeerID returns the libp2p peer ID of the key d names.
func (d DID) PeerID() (string, error) {
	pub, err := d.PublicKey()
	if err != nil {
		return "", err
	}
	return PeerIDFromPublicKey(pub), nil
}

// PeerIDFromPublicKey returns the libp2p peer ID (base58btc) of pub.
func PeerIDFromPublicKey(pub ed25519.PublicKey) string {
	return base58.Encode(append(append([]byte{}, peerIDPrefix...), pub...))
}

// DIDFromPeerID returns the did:key of an Ed25519 libp2p peer ID. The
// conversions made last are kept (peerDIDs): a node asks for the DIDs of the
// same few providers at every message and placement, and each conversion
// decodes and encodes base58 (a dozen allocations).
func DIDFromPeerID(id string) (DID, error) {
	if d, ok := peerDIDs.Get(id); ok {
		return d, nil
	}
	d, err := didFromPeerID(id)
	if err == nil {
		peerDIDs.Put(id, d)
	}
	return d, err
}

func didFromPeerID(id string) (DID, error) {
	if len(id) > 64 {
		return "", fmt.Errorf("%q is not an ed25519 peer ID: too long", id[:64]+"…")
	}
	raw, err := base58.Decode(id)
	if err != nil || len(raw) != len(peerIDPrefix)+ed25519.PublicKeySize || !bytes.HasPrefix(raw, peerIDPrefix) {
		return "", fmt.Errorf("%q is not an ed25519 peer ID (12D3KooW…)", id)
	}
	return DIDFromPublicKey(raw[len(peerIDPrefix):]), nil
}

// peerDIDs are the peer IDs DIDFromPeerID converted last, and their DIDs.
// Only valid peer IDs (at most 64 bytes) are kept.
var peerDIDs = lru.New[string, DID](maxPeerDIDs)

const maxPeerDIDs = 4096

// ShortPeerID abbreviates a peer ID for messages: "12D3KooW…x7Yq2a".
func ShortPeerID(id string) string {
	if len(id) > 16 {
		return id[:8] + "…" + id[len(id)-6:]
	}
	return id
}
