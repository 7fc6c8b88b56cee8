package cap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A bundle is an invocation with the delegations it needs, as one byte
// string: what an actor envelope carries and what the CLI sends to the REST
// API. Layout: uvarint count, then count × (uvarint length, token), the
// invocation first. Delegations the receiver already verified may be left
// out; the verifier asks for what it lacks.

// MaxBundleTokens bounds the tokens in a bundle (the invocation and the
// deepest chain accepted, with room to spare).
const MaxBundleTokens = 65

// EncodeBundle packs a sealed invocation and sealed delegations.
func EncodeBundle(inv []byte, proofs [][]byte) []byte {
	n := 1 + len(proofs)
	size := binary.MaxVarintLen64 * (n + 1)
	size += len(inv)
	for _, p := range proofs {
		size += len(p)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(inv)))
	b = append(b, inv...)
	for _, p := range proofs {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// BundleOf packs an invocation with its proof chain.
func BundleOf(inv *Invocation, chain Chain) []byte {
	proofs := make([][]byte, len(chain))
	for i, d := range chain {
		proofs[i] = d.Sealed()
	}
	return EncodeBundle(inv.Sealed(), proofs)
}

var errBundle = errors.New("malformed capability bundle")

// DecodeBundle splits a bundle into the sealed invocation and delegations.
// The slices alias b.
func DecodeBundle(b []byte) (inv []byte, proofs [][]byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxBundleTokens {
		return nil, nil, fmt.Errorf("%w: token count", errBundle)
	}
	b = b[k:]
	toks := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > MaxTokenSize || l > uint64(len(b)-k) {
			return nil, nil, fmt.Errorf("%w: token %d", errBundle, i)
		}
		toks = append(toks, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes", errBundle, len(b))
	}
	return toks[0], toks[1:], nil
}
