package cap

import (
	"testing"
	"time"
)

// BenchmarkDelegationCodec: signing a delegation (Delegate) and decoding
// and verifying one not decoded before (DecodeDelegation over more tokens
// than its cache holds), the two halves of a chain link.
//
//	go test -run '^$' -bench DelegationCodec ./internal/cap/
func BenchmarkDelegationCodec(b *testing.B) {
	w := newWorld(b)
	p := DelegationParams{Audience: w.bob.DID(), Subject: w.carol.DID(), Command: "/dms/deployment", Expiry: w.t0.Add(time.Hour)}
	b.Run("delegate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Delegate(w.alice, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		sealed := make([][]byte, 4*decodedSize)
		for i := range sealed {
			sealed[i] = must[*Delegation](b)(Delegate(w.alice, p)).Sealed()
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := DecodeDelegation(sealed[i%len(sealed)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
