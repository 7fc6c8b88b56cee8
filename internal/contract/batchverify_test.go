package contract

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"syscall"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"github.com/dmsnet/dms/internal/identity"
)

// signedNotes issues n notes of p, each a new chain's first, so they are
// distinct.
func signedNotes(tb testing.TB, p party, n int) []*SignedNote {
	tb.Helper()
	out := make([]*SignedNote, n)
	for i := range out {
		sn, err := p.c.Issue(p.prov, nil, t0, usageAt(uint64(i+1)), false)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = wire(tb, sn) // no memo
	}
	return out
}

// withSig is a copy of n (no memo) with sig as the provider's signature.
func withSig(n *SignedNote, sig []byte) *SignedNote {
	return &SignedNote{Hash: n.Hash, Body: bytes.Clone(n.Body), ProviderSig: sig}
}

func TestVerifyProviderSigs(t *testing.T) {
	p := newParty(t)
	q := newPartyWith(t, 3, 4) // another provider
	good := signedNotes(t, p, 6)
	other := signedNotes(t, q, 3)
	flip := func(n *SignedNote, i int) *SignedNote {
		s := bytes.Clone(n.ProviderSig)
		s[i] ^= 1
		return withSig(n, s)
	}
	withR := func(n *SignedNote, r []byte) *SignedNote {
		return withSig(n, append(bytes.Clone(r), n.ProviderSig[32:]...))
	}
	high := bytes.Clone(good[0].ProviderSig)
	high[63] |= 0x80
	yp := append([]byte{0xed}, bytes.Repeat([]byte{0xff}, 30)...) // y = p: not canonical
	yp = append(yp, 0x7f)
	oneSigned := append(append([]byte{1}, make([]byte, 30)...), 0x80) // identity with the sign bit
	small := identity.DIDFromPublicKey(append([]byte{1}, make([]byte, 31)...))
	pd, qd := p.prov.DID(), q.prov.DID()
	type item struct {
		did  identity.DID
		note *SignedNote
	}
	for _, tc := range []struct {
		name  string
		items []item
	}{
		{"one", []item{{pd, good[0]}}},
		{"all good, one provider", []item{{pd, good[0]}, {pd, good[1]}, {pd, good[2]}, {pd, good[3]}}},
		{"all good, two providers", []item{{pd, good[0]}, {qd, other[0]}, {pd, good[1]}, {qd, other[1]}}},
		{"the wrong provider", []item{{pd, good[0]}, {qd, good[1]}, {pd, good[2]}}},
		{"R flipped", []item{{pd, good[0]}, {pd, flip(good[1], 3)}, {pd, good[2]}}},
		{"S flipped", []item{{pd, flip(good[0], 40)}, {pd, good[1]}}},
		{"high bits of S", []item{{pd, withSig(good[0], high)}, {pd, good[1]}}},
		{"S not reduced", []item{{pd, withSig(good[0], nonCanonical(good[0].ProviderSig))}, {pd, good[1]}}},
		{"R not canonical", []item{{pd, withR(good[0], yp)}, {pd, good[1]}, {pd, good[2]}}},
		{"R the identity with a sign bit", []item{{pd, withR(good[0], oneSigned)}, {pd, good[1]}}},
		{"short and empty", []item{{pd, withSig(good[0], good[0].ProviderSig[:63])}, {pd, withSig(good[1], nil)}, {pd, good[2]}}},
		{"a small-order key", []item{{small, good[0]}, {pd, good[1]}, {pd, good[2]}}},
		{"not a DID", []item{{identity.DID("did:key:zzz"), good[0]}, {pd, good[1]}}},
		{"a signature of another note", []item{{pd, withSig(good[0], good[1].ProviderSig)}, {pd, good[2]}, {pd, good[3]}}},
		{"two bad of many", []item{{pd, good[0]}, {qd, other[2]}, {pd, flip(good[1], 50)}, {pd, good[2]}, {qd, flip(other[0], 1)}, {pd, good[3]}, {pd, good[4]}, {pd, good[5]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dids := make([]identity.DID, len(tc.items))
			notes := make([]*SignedNote, len(tc.items))
			for i, it := range tc.items {
				dids[i], notes[i] = it.did, withSig(it.note, bytes.Clone(it.note.ProviderSig))
			}
			got := VerifyProviderSigs(dids, notes)
			for i, n := range notes {
				want := identity.Verify(dids[i], []byte(notePrefix+n.Hash), n.ProviderSig)
				if got[i] != want {
					t.Errorf("note %d: VerifyProviderSigs says %v, crypto/ed25519 %v", i, got[i], want)
				}
				if got[i] != n.provOK.holds(n.Hash, dids[i], n.ProviderSig, true) {
					t.Errorf("note %d: verified %v, remembered %v", i, got[i], !got[i])
				}
			}
		})
	}
	if got := VerifyProviderSigs([]identity.DID{pd}, []*SignedNote{good[0], good[1]}); got[0] || got[1] {
		t.Error("lengths that differ: verified")
	}
	if got := VerifyProviderSigs([]identity.DID{pd, pd}, []*SignedNote{nil, good[0]}); got[0] || !got[1] {
		t.Errorf("a nil note: %v", got)
	}
}

// TestBatchMemo: a signature remembered from a batch holds for
// CheckNote, not for Accepted (what a ledger checks before it pays), nor
// for VerifyChain.
func TestBatchMemo(t *testing.T) {
	p := newParty(t)
	rc := wire(t, p.c)
	notes := signedNotes(t, p, 3)
	dids := []identity.DID{p.prov.DID(), p.prov.DID(), p.prov.DID()}
	if got := VerifyProviderSigs(dids, notes); !got[0] || !got[1] || !got[2] {
		t.Fatalf("VerifyProviderSigs = %v", got)
	}
	if !notes[0].provOK.batch {
		t.Fatal("a batch's signature not remembered as a batch's")
	}
	// Forge: a memo from a batch on a signature that does not verify.
	forged := withSig(notes[1], bytes.Clone(notes[2].ProviderSig))
	forged.provOK = memo(forged.Hash, p.prov.DID(), forged.ProviderSig)
	forged.provOK.batch = true
	if err := CheckNote(rc, nil, forged); err != nil {
		t.Fatalf("CheckNote with a batch's memo: %v", err)
	}
	forged.Countersign(p.req)
	if forged.Accepted(rc) {
		t.Error("Accepted trusted a batch's memo of a signature that does not verify")
	}
	if cl := forged.Clone(); cl.Accepted(rc) || !cl.provOK.batch {
		t.Error("a clone: Accepted trusted a batch's memo, or the clone lost that it is a batch's")
	}
	// A good note from a batch is accepted (verified alone once more).
	good := notes[0]
	if err := CheckNote(rc, nil, good); err != nil {
		t.Fatal(err)
	}
	good.Countersign(p.req)
	if !good.Accepted(rc) {
		t.Error("a good note from a batch not accepted")
	}
}

func TestCanonicalPoint(t *testing.T) {
	ff := bytes.Repeat([]byte{0xff}, 30)
	enc := func(first byte, mid []byte, last byte) []byte {
		return append(append([]byte{first}, mid...), last)
	}
	zero := make([]byte, 30)
	base := edwards25519.NewGeneratorPoint().Bytes()
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"the base point", base, true},
		{"y = 0", enc(0, zero, 0), true},
		{"y = 1 (the identity)", enc(1, zero, 0), true},
		{"y = 1 with the sign bit", enc(1, zero, 0x80), false},
		{"y = p-1", enc(0xec, ff, 0x7f), true},
		{"y = p-1 with the sign bit", enc(0xec, ff, 0xff), false},
		{"y = p", enc(0xed, ff, 0x7f), false},
		{"y = p with the sign bit", enc(0xed, ff, 0xff), false},
		{"y = 2^255-1", enc(0xff, ff, 0x7f), false},
		{"y = p-2 with the sign bit", enc(0xeb, ff, 0xff), true},
		{"short", base[:31], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := canonicalPoint(tc.b); got != tc.want {
				t.Errorf("canonicalPoint(%x) = %v, want %v", tc.b, got, tc.want)
			}
			// Canonical means: what Point.Bytes writes for the point
			// SetBytes reads (when it is one).
			if pt, err := new(edwards25519.Point).SetBytes(tc.b); err == nil && len(tc.b) == 32 {
				if same := bytes.Equal(pt.Bytes(), tc.b); same != tc.want {
					t.Errorf("re-encoded %x: same %v, canonicalPoint says %v", pt.Bytes(), same, tc.want)
				}
			}
		})
	}
}

// FuzzVerifyProviderSigs checks that a batch agrees with crypto/ed25519
// on every signature, whatever is changed in them.
func FuzzVerifyProviderSigs(f *testing.F) {
	p := newParty(f)
	notes := signedNotes(f, p, 4)
	f.Add(uint8(0), uint8(0), uint8(0), []byte{})
	f.Add(uint8(1), uint8(5), uint8(1), []byte{})
	f.Add(uint8(2), uint8(40), uint8(0x80), []byte{})
	f.Add(uint8(3), uint8(63), uint8(0x10), []byte{})
	f.Add(uint8(0), uint8(0), uint8(0), make([]byte, 32))
	f.Fuzz(func(t *testing.T, which, at, xor uint8, r []byte) {
		batch := make([]*SignedNote, len(notes))
		dids := make([]identity.DID, len(notes))
		for i, n := range notes {
			batch[i], dids[i] = withSig(n, bytes.Clone(n.ProviderSig)), p.prov.DID()
		}
		bad := batch[int(which)%len(batch)]
		bad.ProviderSig[int(at)%ed25519.SignatureSize] ^= xor
		if len(r) == 32 {
			copy(bad.ProviderSig, r)
		}
		got := VerifyProviderSigs(dids, batch)
		for i, n := range batch {
			if want := ed25519.Verify(keyOf(dids[i]).pub, []byte(notePrefix+n.Hash), n.ProviderSig); got[i] != want {
				t.Fatalf("note %d (%x): batch %v, crypto/ed25519 %v", i, n.ProviderSig, got[i], want)
			}
		}
	})
}

func BenchmarkVerifyProviderSigs(b *testing.B) {
	p := newParty(b)
	all := signedNotes(b, p, 64)
	for _, n := range []int{1, 4, 16, 32} {
		b.Run(fmt.Sprint("batch=", n), func(b *testing.B) {
			dids := make([]identity.DID, n)
			for i := range dids {
				dids[i] = p.prov.DID()
			}
			batch := make([]*SignedNote, n)
			c0 := cpuTime()
			for b.Loop() {
				for i := range batch {
					batch[i] = withSig(all[i], all[i].ProviderSig)
				}
				for _, ok := range VerifyProviderSigs(dids, batch) {
					if !ok {
						b.Fatal("not verified")
					}
				}
			}
			// CPU time, steadier than the wall clock on a shared machine.
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N*n)/1000, "cpu-µs/sig")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
