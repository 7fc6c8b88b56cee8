package contract

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// isRefusal reports whether err is a *RefusalError wrapping a sentinel.
func isRefusal(err error) bool {
	var r *RefusalError
	if !errors.As(err, &r) || r.Detail == "" {
		return false
	}
	for _, s := range []error{ErrMalformed, ErrSignature, ErrWrongParty, ErrTerms, ErrOutOfOrder, ErrReplay, ErrAmount, ErrRegress, ErrBudget, ErrClosed, ErrUnknown, ErrNotAccepted} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzOpenContract feeds an encoded contract (the wire form) to Open.
func FuzzOpenContract(f *testing.F) {
	p := newParty(f)
	good, _ := json.Marshal(p.c)
	f.Add(good)
	f.Add([]byte(`{"id":"","body":null}`))
	f.Add([]byte(`{"id":"` + p.c.ID + `","body":{"v":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Contract
		if json.Unmarshal(b, &c) != nil {
			return
		}
		err := c.Open()
		if err != nil {
			if !isRefusal(err) {
				t.Fatalf("Open: %v is not a typed refusal", err)
			}
			return
		}
		if c.Terms() == nil || c.Terms().Validate() != nil || hashHex(c.Body) != c.ID {
			t.Fatalf("Open accepted %s", b)
		}
		// Only the test keys can sign, so an accepted contract is theirs.
		if c.Terms().Requester != p.req.DID() {
			t.Fatalf("Open accepted a contract signed by someone else: %s", b)
		}
	})
}

// FuzzOpenNote feeds an encoded note to Open, CheckNote and Accepted.
func FuzzOpenNote(f *testing.F) {
	p := newParty(f)
	notes := issueN(f, p, 2, false)
	for _, n := range notes {
		n.Countersign(p.req)
		b, _ := json.Marshal(n)
		f.Add(b)
	}
	f.Add([]byte(`{"hash":"","body":"x"}`))
	first := wire(f, notes[0])
	f.Fuzz(func(t *testing.T, b []byte) {
		var n SignedNote
		if json.Unmarshal(b, &n) != nil {
			return
		}
		if err := n.Open(); err != nil {
			if !isRefusal(err) {
				t.Fatalf("Open: %v is not a typed refusal", err)
			}
			return
		}
		if n.Note() == nil || n.Note().validate() != nil {
			t.Fatalf("Open accepted %s", b)
		}
		err := CheckNote(p.c, first, &n)
		if err != nil && !isRefusal(err) {
			t.Fatalf("CheckNote: %v is not a typed refusal", err)
		}
		if err == nil && (n.Hash != notes[1].Hash) {
			t.Fatalf("CheckNote accepted a note the provider never issued: %s", b)
		}
		if n.Accepted(p.c) && n.Hash != notes[0].Hash && n.Hash != notes[1].Hash {
			t.Fatalf("Accepted a note never countersigned: %s", b)
		}
	})
}

// FuzzVerifyChain feeds an encoded chain to VerifyChain and VerifyChainAll.
func FuzzVerifyChain(f *testing.F) {
	p := newParty(f)
	for _, k := range []int{0, 1, 3} {
		b, _ := json.Marshal(chainOf(f, p, 3, k, k == 3))
		f.Add(b)
	}
	f.Add([]byte(`{"contract":null,"notes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ch Chain
		if json.Unmarshal(b, &ch) != nil {
			return
		}
		s, err := VerifyChain(&ch)
		if err != nil && !isRefusal(err) {
			t.Fatalf("VerifyChain: %v is not a typed refusal", err)
		}
		sa, errAll := VerifyChainAll(&ch)
		if errAll != nil && !isRefusal(errAll) {
			t.Fatalf("VerifyChainAll: %v is not a typed refusal", errAll)
		}
		if err != nil && errAll == nil {
			t.Fatalf("VerifyChainAll passed what VerifyChain refused (%v): %s", err, b)
		}
		if err != nil {
			return
		}
		if s.Notes != len(ch.Notes) || s.Accepted > s.Notes || s.Owed > s.Amount {
			t.Fatalf("summary %+v of %d notes", s, len(ch.Notes))
		}
		if errAll == nil && (sa.Notes != s.Notes || sa.Owed != s.Owed || sa.Amount != s.Amount) {
			t.Fatalf("summaries differ: %+v and %+v", s, sa)
		}
	})
}

// FuzzNoteFastPath checks that the fast note decoder accepts only what
// encoding/json decodes to the very same note.
func FuzzNoteFastPath(f *testing.F) {
	p := newParty(f)
	for _, n := range issueN(f, p, 3, true) {
		f.Add([]byte(n.Body))
	}
	f.Add([]byte(`{"contract":"` + p.c.ID + `","seq":01,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0}`))
	f.Add([]byte(`{"contract":"` + p.c.ID + `","seq":1,"time":"2026-12-04T22:00:00+01:00","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0,"net_bytes":0},"amount":1.5e3,"final":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseNoteFast(b)
		if !ok {
			return
		}
		slow := new(Note)
		if err := decodeStrict(b, slow); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", b, err)
		}
		if !sameNote(fast, slow) {
			t.Fatalf("fast path read %q as %+v, encoding/json as %+v", b, fast, slow)
		}
	})
}

// sameNote compares notes field by field, times by instant and zone.
func sameNote(a, b *Note) bool {
	an, ao := a.Time.Zone()
	bn, bo := b.Time.Zone()
	x, y := *a, *b
	x.Time, y.Time = time.Time{}, time.Time{}
	return x == y && a.Time.Equal(b.Time) && an == bn && ao == bo
}

// FuzzAppendNote checks that the note encoder writes what encoding/json
// writes, or declines.
func FuzzAppendNote(f *testing.F) {
	id := hashHex([]byte("c"))
	f.Add(id, uint64(1), "", int64(1796421600), int64(0), uint64(1), uint64(2), uint64(3), uint64(0), int64(5), false)
	f.Add(id, uint64(7), hashHex([]byte("p")), int64(-62135596800), int64(999999999), uint64(1<<63), uint64(0), uint64(0), uint64(9), int64(-3), true)
	f.Add("x", uint64(0), "\"<", int64(253402300800), int64(1), uint64(0), uint64(0), uint64(0), uint64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, c string, seq uint64, prev string, sec, nsec int64, cpu, mem, wall, net uint64, amount int64, final bool) {
		n := &Note{Contract: c, Seq: seq, Prev: prev, Time: time.Unix(sec, nsec).UTC(),
			Usage: Usage{CPUMicros: cpu, MemoryByteSeconds: mem, WallMillis: wall, NetBytes: net}, Amount: match.Money(amount), Final: final}
		got, ok := appendNote(nil, n)
		want, err := json.Marshal(n)
		switch {
		case !ok:
			return
		case err != nil:
			t.Fatalf("appendNote wrote %s, encoding/json refuses the note: %v", got, err)
		case string(got) != string(want):
			t.Fatalf("appendNote wrote\n%s\nencoding/json\n%s", got, want)
		}
	})
}
