// Package identity holds Ed25519 keys, their did:key identifiers and the
// encrypted keystore.
//
// A DID is "did:key:z…", the multibase base58btc encoding of the multicodec
// ed25519-pub prefix and the public key, interoperable with go-ucan. The node
// key is also the node's libp2p identity.
//
// Usage:
//
//	ks := identity.OpenKeystore(filepath.Join(home, "keys"), identity.DefaultKDF)
//	k, err := ks.Create("user", passphrase)  // refuses to overwrite
//	did, err := ks.DID("user")               // no passphrase needed
//	k, err = ks.Load("user", passphrase)     // *PassphraseError when wrong
//
// Every private key at rest is encrypted: keystore files with scrypt and
// XChaCha20-Poly1305 (mode 0600), child actor keys with a Sealer derived from
// the node key.
package identity
