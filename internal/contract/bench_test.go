package contract

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkNoteSignVerify is one note's round between two nodes: the
// provider issues it (sign), the requester decodes it, checks it (verify)
// and countersigns it (sign), the provider decodes the reply and checks
// the countersignature on its own note (verify). JSON encoding between
// them is included, as on the wire. provider-µs and requester-µs split
// the time per side; anchor-µs is one bare ed25519 sign and verify of a
// message as long as a note's signed bytes, timed in the same iterations
// (outside ns/op), so that per-side/anchor ratios hold on a busy machine.
// Each side is one sign and one verify, so its floor is 1.0× the anchor.
func BenchmarkNoteSignVerify(b *testing.B) {
	p := newParty(b)
	rc := wire(b, p.c) // the requester's copy, opened once as the notary keeps it
	if err := rc.Open(); err != nil {
		b.Fatal(err)
	}
	var prov, req, anchor time.Duration
	var mine, accepted *SignedNote
	msg := []byte(acceptPrefix + p.c.ID)
	pub := p.prov.Public()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		n, err := p.c.Issue(p.prov, mine, t0, usageAt(uint64(i+1)), false)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := json.Marshal(n)
		t1 := time.Now()
		var got SignedNote
		if err := json.Unmarshal(out, &got); err != nil {
			b.Fatal(err)
		}
		if err := CheckNote(rc, accepted, &got); err != nil {
			b.Fatal(err)
		}
		got.Countersign(p.req)
		back, _ := json.Marshal(&got)
		t2 := time.Now()
		var reply SignedNote
		if err := json.Unmarshal(back, &reply); err != nil {
			b.Fatal(err)
		}
		if reply.Hash != n.Hash {
			b.Fatal("reply is another note")
		}
		n.RequesterSig = reply.RequesterSig
		if !n.Accepted(p.c) {
			b.Fatal("not accepted")
		}
		t3 := time.Now()
		prov += t1.Sub(t0) + t3.Sub(t2)
		req += t2.Sub(t1)
		mine, accepted = n, &got

		b.StopTimer()
		t4 := time.Now()
		if !ed25519.Verify(pub, msg, p.prov.Sign(msg)) {
			b.Fatal("anchor signature does not verify")
		}
		anchor += time.Since(t4)
		b.StartTimer()
	}
	perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
	b.ReportMetric(perOp(prov), "provider-µs/op")
	b.ReportMetric(perOp(req), "requester-µs/op")
	b.ReportMetric(perOp(anchor), "anchor-µs/op")
	b.ReportMetric(float64(prov)/float64(anchor), "provider/anchor")
	b.ReportMetric(float64(req)/float64(anchor), "requester/anchor")
}

// BenchmarkVerifyChain1000 verifies a chain of 1000 countersigned notes
// as `dms contract verify --file` reads it (decoded from JSON, nothing
// remembered): VerifyChain, VerifyChainAll, and the JSON decoding plus
// VerifyChain.
func BenchmarkVerifyChain1000(b *testing.B) {
	p := newParty(b)
	raw, err := json.Marshal(chainOf(b, p, 1000, 1000, true))
	if err != nil {
		b.Fatal(err)
	}
	ch := new(Chain)
	if err := json.Unmarshal(raw, ch); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode bool
		verify func(*Chain) (Summary, error)
	}{
		{"chain", false, VerifyChain},
		{"all", false, VerifyChainAll},
		{"decode+chain", true, VerifyChain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				c := ch
				if bc.decode {
					c = new(Chain)
					if err := json.Unmarshal(raw, c); err != nil {
						b.Fatal(err)
					}
				}
				s, err := bc.verify(c)
				if err != nil || s.Notes != 1000 || s.Accepted != 1000 {
					b.Fatal(s, err)
				}
			}
		})
	}
}

// BenchmarkCheckNote is the requester's check of a note it has opened
// and whose provider signature verified (in a batch, as the notary
// does), against the contract and the last accepted note it keeps
// opened: what CheckNote costs beyond the signatures.
//
//	go test -run '^$' -bench CheckNote -benchtime 20000x -count 3 ./internal/contract/
func BenchmarkCheckNote(b *testing.B) {
	p := newParty(b)
	ns := issueN(b, p, 2, false)
	rc := wire(b, p.c)
	if err := rc.Open(); err != nil {
		b.Fatal(err)
	}
	last, n := wire(b, ns[0]), wire(b, ns[1])
	last.Countersign(p.req)
	for _, x := range []*SignedNote{last, n} {
		if err := x.Open(); err != nil {
			b.Fatal(err)
		}
	}
	if err := CheckNote(rc, last, n); err != nil { // verifies n's signature once, remembered
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckNote(rc, last, n); err != nil {
			b.Fatal(err)
		}
	}
}
