package cap

import (
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/lru"
)

// BenchmarkAuthorize compares, at chain depths 1, 3 and 5, a fresh
// verification (the anchor: decode and check every signature, no cache)
// with a cache hit (a message reusing a known invocation) and with a new
// invocation over a known chain (delegations cached).
//
//	go test -run '^$' -bench Authorize -benchtime 2000x ./internal/cap/
func BenchmarkAuthorize(b *testing.B) {
	w := newWorld(b)
	for _, depth := range []int{1, 3, 5} {
		keys := []*identity.Key{w.bob}
		for len(keys) < depth {
			k, _ := identity.NewKey()
			keys = append(keys, k)
		}
		c := w.chain(b, "/dms/node/peers", keys...)
		invoker := keys[len(keys)-1]
		inv := w.invoke(b, invoker, "/dms/node/peers/list", c)
		proofs := sealedOf(c)
		cfg := Config{Trust: w.trust(b), Revoked: NewRevocations(), IsLocal: func(d identity.DID) bool { return d == w.node.DID() }}

		b.Run(fmt.Sprintf("depth-%d/anchor-fresh", depth), func(b *testing.B) {
			fresh := cfg
			fresh.CacheSize = -1
			v := NewVerifier(fresh)
			for b.Loop() {
				if _, err := v.Authorize(w.t0, inv.Sealed(), proofs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("depth-%d/cache-hit", depth), func(b *testing.B) {
			v := NewVerifier(cfg)
			if _, err := v.Authorize(w.t0, inv.Sealed(), proofs); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := v.Authorize(w.t0, inv.Sealed(), proofs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("depth-%d/new-invocation-known-chain", depth), func(b *testing.B) {
			v := NewVerifier(cfg)
			invs := make([][]byte, 64)
			for i := range invs {
				invs[i] = w.invoke(b, invoker, "/dms/node/peers/list", c).Sealed()
			}
			if _, err := v.Authorize(w.t0, invs[0], proofs); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				// Forget the authorization, keep the delegations.
				v.authorized = lru.New[[32]byte, *authEntry](-1)
				if _, err := v.Authorize(w.t0, invs[i%len(invs)], proofs); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkNonceCache(b *testing.B) {
	w := newWorld(b)
	c := NewNonceCache(NonceConfig{})
	nonce := make([]byte, 12)
	i := 0
	for b.Loop() {
		nonce[0], nonce[1], nonce[2], nonce[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		if err := c.Check(w.t0, w.alice.DID(), nonce, w.t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
