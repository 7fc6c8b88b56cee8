package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// issueN issues n notes under p.c, the last final when final.
func issueN(tb testing.TB, p party, n int, final bool) []*SignedNote {
	tb.Helper()
	var out []*SignedNote
	var prev *SignedNote
	for i := 1; i <= n; i++ {
		sn, err := p.c.Issue(p.prov, prev, t0.Add(time.Duration(i)*time.Minute), usageAt(uint64(i)), final && i == n)
		if err != nil {
			tb.Fatal(err)
		}
		out, prev = append(out, sn), sn
	}
	return out
}

// reissue signs a changed copy of note n's body as key.
func reissue(tb testing.TB, n *SignedNote, key *identity.Key, change func(*Note)) *SignedNote {
	tb.Helper()
	v := *n.Note()
	change(&v)
	body, err := json.Marshal(&v)
	if err != nil {
		tb.Fatal(err)
	}
	h := hashHex(body)
	return &SignedNote{Hash: h, Body: body, ProviderSig: key.Sign([]byte(notePrefix + h))}
}

func TestIssueAndAccept(t *testing.T) {
	p := newParty(t)
	notes := issueN(t, p, 3, true)
	rc := wire(t, p.c) // the requester's copy
	var last *SignedNote
	for i, sn := range notes {
		n := sn.Note()
		if n.Seq != uint64(i+1) || n.Contract != p.c.ID || n.Amount != p.c.Terms().Amount(n.Usage) || n.Time.Location() != time.UTC {
			t.Fatalf("note %d: %+v", i+1, n)
		}
		if i > 0 && n.Prev != notes[i-1].Hash {
			t.Fatalf("note %d prev %s, want %s", i+1, n.Prev, notes[i-1].Hash)
		}
		got := wire(t, sn)
		if got.Accepted(rc) {
			t.Fatal("Accepted before the countersignature")
		}
		wantRefusal(t, CheckNote(rc, last, got), nil)
		got.Countersign(p.req)
		if !got.Accepted(rc) {
			t.Fatal("not Accepted after Countersign")
		}
		back := wire(t, got)
		if !back.Accepted(p.c) {
			t.Fatal("countersigned note not Accepted on the provider's side")
		}
		// The provider's shortcut: the countersignature on its own note.
		sn.RequesterSig = back.RequesterSig
		if !sn.Accepted(p.c) {
			t.Fatal("own note with the countersignature not Accepted")
		}
		last = got
	}
	if _, err := p.c.Issue(p.prov, notes[2], t0.Add(time.Hour), usageAt(9), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Issue after final: %v, want ErrClosed", err)
	}
}

func TestIssueRefusals(t *testing.T) {
	p := newParty(t)
	other := newPartyWith(t, 3, 2)
	first := issueN(t, p, 1, false)[0]
	cases := []struct {
		name string
		key  *identity.Key
		prev *SignedNote
		at   time.Time
		u    Usage
		want error
	}{
		{"ok", p.prov, first, t0, usageAt(2), nil},
		{"requester key", p.req, nil, t0, usageAt(1), ErrWrongParty},
		{"no key", nil, nil, t0, usageAt(1), ErrWrongParty},
		{"no time", p.prov, nil, time.Time{}, usageAt(1), ErrMalformed},
		{"usage back", p.prov, first, t0, usageAt(0), ErrRegress},
		{"prev of another contract", p.prov, issueN(t, other, 1, false)[0], t0, usageAt(2), ErrUnknown},
		{"prev tampered", p.prov, &SignedNote{Hash: first.Hash, Body: []byte(`{}`)}, t0, usageAt(2), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.c.Issue(tc.key, tc.prev, tc.at, tc.u, false)
			wantRefusal(t, err, tc.want)
		})
	}
}

// newPartyWith is a signed contract between the keys of seeds r and p.
func newPartyWith(tb testing.TB, r, p byte) party {
	tb.Helper()
	req, prov := testKey(tb, r), testKey(tb, p)
	tr := testTerms(req, prov)
	tr.Reservation = "r-other"
	c, err := New(tr, req)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.SignAsProvider(prov); err != nil {
		tb.Fatal(err)
	}
	return party{req: req, prov: prov, c: c}
}

func TestCheckNote(t *testing.T) {
	p := newParty(t)
	other := newPartyWith(t, 3, 2) // same provider, another contract
	mallory := testKey(t, 9)
	notes := issueN(t, p, 4, true) // 1, 2, 3, 4 (final)
	unsigned := wire(t, p.c)
	unsigned.ProviderSig = nil
	wrongKey := wire(t, p.c)
	wrongKey.ProviderSig = mallory.Sign([]byte(contractPrefix + p.c.ID))
	cases := []struct {
		name string
		c    *Contract
		last *SignedNote
		n    *SignedNote
		want error
	}{
		{"first", p.c, nil, notes[0], nil},
		{"next", p.c, notes[0], notes[1], nil},
		{"final", p.c, notes[2], notes[3], nil},
		{"forged by another key", p.c, notes[0], reissue(t, notes[1], mallory, func(*Note) {}), ErrSignature},
		{"signature of another note", p.c, notes[0], &SignedNote{Hash: notes[1].Hash, Body: notes[1].Body, ProviderSig: notes[2].ProviderSig}, ErrSignature},
		{"countersign form passed as note signature", p.c, notes[0], &SignedNote{Hash: notes[1].Hash, Body: notes[1].Body, ProviderSig: p.prov.Sign([]byte(acceptPrefix + notes[1].Hash))}, ErrSignature},
		{"no signature", p.c, notes[0], &SignedNote{Hash: notes[1].Hash, Body: notes[1].Body}, ErrSignature},
		{"body tampered", p.c, notes[0], &SignedNote{Hash: notes[1].Hash, Body: bytes.Replace(notes[1].Body, []byte(`"seq":2`), []byte(`"seq":3`), 1), ProviderSig: notes[1].ProviderSig}, ErrMalformed},
		{"note of another contract", p.c, nil, issueN(t, other, 1, false)[0], ErrUnknown},
		{"note under another contract", other.c, nil, notes[0], ErrUnknown},
		{"last of another contract", p.c, issueN(t, other, 1, false)[0], notes[1], ErrUnknown},
		{"no contract", nil, nil, notes[0], ErrUnknown},
		{"contract without provider signature", unsigned, nil, notes[0], ErrTerms},
		{"contract signed by the wrong key", wrongKey, nil, notes[0], ErrSignature},
		{"first not seq 1", p.c, nil, notes[1], ErrOutOfOrder},
		{"gap", p.c, notes[0], notes[2], ErrOutOfOrder},
		{"replay of last", p.c, notes[1], notes[1], ErrReplay},
		{"replay of older", p.c, notes[2], notes[0], ErrReplay},
		{"fork: another note 2", p.c, notes[1], reissue(t, notes[1], p.prov, func(n *Note) { n.Usage.NetBytes++ }), ErrOutOfOrder},
		{"prev not last", p.c, notes[0], reissue(t, notes[1], p.prov, func(n *Note) { n.Prev = notes[2].Hash }), ErrOutOfOrder},
		{"amount too high", p.c, notes[0], reissue(t, notes[1], p.prov, func(n *Note) { n.Amount++ }), ErrAmount},
		{"amount too low", p.c, notes[0], reissue(t, notes[1], p.prov, func(n *Note) { n.Amount-- }), ErrAmount},
		{"cpu back", p.c, notes[1], reissue(t, notes[2], p.prov, func(n *Note) {
			n.Usage.CPUMicros = 1
			n.Amount = p.c.Terms().Amount(n.Usage)
		}), ErrRegress},
		{"net back", p.c, notes[1], reissue(t, notes[2], p.prov, func(n *Note) { n.Usage.NetBytes = 0 }), ErrRegress},
		{"after final", p.c, notes[3], reissue(t, notes[3], p.prov, func(n *Note) {
			n.Seq, n.Prev, n.Final = 5, notes[3].Hash, false
		}), ErrClosed},
		{"replay of final", p.c, notes[3], notes[3], ErrReplay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *Contract
			if tc.c != nil {
				c = wire(t, tc.c)
			}
			var last *SignedNote
			if tc.last != nil {
				last = wire(t, tc.last)
			}
			wantRefusal(t, CheckNote(c, last, wire(t, tc.n)), tc.want)
		})
	}
}

func TestOpenNoteRefusals(t *testing.T) {
	p := newParty(t)
	n := issueN(t, p, 2, false)[1]
	raw := func(body string) *SignedNote { return &SignedNote{Hash: hashHex([]byte(body)), Body: []byte(body)} }
	good := string(n.Body)
	cases := []struct {
		name string
		n    *SignedNote
		want error
	}{
		{"good", wire(t, n), nil},
		{"hash not of body", &SignedNote{Hash: hashHex([]byte("x")), Body: n.Body}, ErrMalformed},
		{"hash not hex", &SignedNote{Hash: "zz", Body: n.Body}, ErrMalformed},
		{"oversize", raw(good + string(bytes.Repeat([]byte(" "), MaxEncoded))), ErrMalformed},
		{"unknown field", raw(`{"contract":"` + p.c.ID + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{},"amount":0,"tip":1}`), ErrMalformed},
		{"no seq", raw(`{"contract":"` + p.c.ID + `","time":"2026-12-04T22:00:00Z","usage":{},"amount":0}`), ErrMalformed},
		{"no time", raw(`{"contract":"` + p.c.ID + `","seq":1,"usage":{},"amount":0}`), ErrMalformed},
		{"no contract", raw(`{"seq":1,"time":"2026-12-04T22:00:00Z","usage":{},"amount":0}`), ErrMalformed},
		{"seq 2 without prev", raw(`{"contract":"` + p.c.ID + `","seq":2,"time":"2026-12-04T22:00:00Z","usage":{},"amount":0}`), ErrMalformed},
		{"seq 1 with prev", raw(`{"contract":"` + p.c.ID + `","seq":1,"prev":"` + p.c.ID + `","time":"2026-12-04T22:00:00Z","usage":{},"amount":0}`), ErrMalformed},
		{"negative amount", raw(`{"contract":"` + p.c.ID + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{},"amount":-1}`), ErrMalformed},
		{"negative counter", raw(`{"contract":"` + p.c.ID + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":-1},"amount":0}`), ErrMalformed},
		{"trailing", raw(good + "{}"), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, tc.n.Open(), tc.want)
			if (tc.want == nil) != (tc.n.Note() != nil) {
				t.Fatalf("Note() = %v after Open", tc.n.Note())
			}
		})
	}
}

func TestAcceptedRefusals(t *testing.T) {
	p := newParty(t)
	mallory := testKey(t, 9)
	n := wire(t, issueN(t, p, 1, false)[0])
	wantRefusal(t, CheckNote(p.c, nil, n), nil)
	n.Countersign(mallory)
	if wire(t, n).Accepted(p.c) || n.Accepted(p.c) {
		t.Fatal("Accepted with a countersignature by another key")
	}
	n.Countersign(p.req)
	if !n.Accepted(p.c) {
		t.Fatal("not Accepted")
	}
	other := newPartyWith(t, 1, 2)
	if n.Accepted(other.c) {
		t.Fatal("Accepted under another contract")
	}
	m := wire(t, n)
	m.Body = bytes.Replace(m.Body, []byte(`"seq":1`), []byte(`"seq":7`), 1)
	if m.Accepted(p.c) {
		t.Fatal("Accepted with a changed body")
	}
	// A memo does not outlive a change of the bytes it covers.
	n.RequesterSig = append([]byte{}, n.RequesterSig...)
	n.RequesterSig[0] ^= 1
	if n.Accepted(p.c) {
		t.Fatal("Accepted after the countersignature changed")
	}
}

func TestNoteFastPath(t *testing.T) {
	p := newParty(t)
	notes := issueN(t, p, 3, true)
	for _, n := range notes {
		fast, ok := parseNoteFast(n.Body)
		if !ok {
			t.Fatalf("fast path refuses what Issue wrote: %s", n.Body)
		}
		if !sameNote(fast, n.Note()) {
			t.Fatalf("fast path read %+v, Issue wrote %+v", fast, n.Note())
		}
	}
	id := p.c.ID
	for _, body := range []string{
		`{"contract":"` + id + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0} `,
		`{"contract":"` + id + `","seq":01,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0}`,
		`{"contract":"` + id + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":1e3}`,
		`{"contract":"` + id + `","seq":1,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0,"final":false}`,
		`{"contract":"` + id + `","seq":1,"time":"2026\u002d12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0}`,
		`{"contract":"` + id + `","seq":18446744073709551616,"time":"2026-12-04T22:00:00Z","usage":{"cpu_us":0,"memory_byte_s":0,"wall_ms":0},"amount":0}`,
	} {
		if _, ok := parseNoteFast([]byte(body)); ok {
			t.Fatalf("fast path took a body Issue never writes: %s", body)
		}
	}
}

// TestClone: a clone keeps what was verified of a note only for the same
// bytes, and shares none with the original.
func TestClone(t *testing.T) {
	p := newParty(t)
	sn := issueN(t, p, 1, false)[0]
	rc := wire(t, p.c)
	got := wire(t, sn)
	wantRefusal(t, CheckNote(rc, nil, got), nil)
	got.Countersign(p.req)
	cl := got.Clone()
	if err := cl.Open(); err != nil || !cl.Accepted(rc) || cl.Note().Seq != 1 {
		t.Fatalf("clone: Open %v, Accepted %v", err, cl.Accepted(rc))
	}
	if !cl.provOK.holds(cl.Hash, p.prov.DID(), cl.ProviderSig, false) || !cl.reqOK.holds(cl.Hash, p.req.DID(), cl.RequesterSig, false) {
		t.Error("the clone lost the memos of the signatures that verified")
	}
	for name, change := range map[string]func(*SignedNote){
		"provider's signature":  func(n *SignedNote) { n.ProviderSig[0] ^= 1 },
		"requester's signature": func(n *SignedNote) { n.RequesterSig[0] ^= 1 },
		"body":                  func(n *SignedNote) { n.Body[len(n.Body)-2] ^= 1 },
		"hash":                  func(n *SignedNote) { n.Hash = hashHex([]byte("other")) },
	} {
		c := got.Clone()
		change(c)
		if c.Open() == nil && c.Accepted(rc) {
			t.Errorf("a clone with a changed %s is still Accepted", name)
		}
		if !got.Accepted(rc) || !bytes.Equal(got.Body, cl.Body) {
			t.Errorf("changing a clone's %s changed the original", name)
		}
	}
	if (*SignedNote)(nil).Clone() != nil {
		t.Error("Clone of nil")
	}
}

// TestAppendNote: Issue's encoder writes what encoding/json writes, and
// declines what it would write otherwise.
func TestAppendNote(t *testing.T) {
	id, prev := hashHex([]byte("c")), hashHex([]byte("p"))
	at := time.Date(2026, 12, 5, 5, 30, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		n    Note
		ok   bool
	}{
		{"first", Note{Contract: id, Seq: 1, Time: at, Usage: usageAt(1), Amount: 12}, true},
		{"chained, final, net bytes", Note{Contract: id, Seq: 2, Prev: prev, Time: at, Usage: Usage{CPUMicros: 1, MemoryByteSeconds: 2, WallMillis: 3, NetBytes: 4}, Amount: 1_500_001, Final: true}, true},
		{"whole second", Note{Contract: id, Seq: 3, Prev: prev, Time: at.Truncate(time.Second), Amount: 0}, true},
		{"largest counters", Note{Contract: id, Seq: math.MaxUint64, Prev: prev, Time: at, Usage: Usage{math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64}, Amount: match.MaxMoney}, true},
		{"not UTC", Note{Contract: id, Seq: 1, Time: at.In(time.FixedZone("x", 3600))}, false},
		{"year 10000", Note{Contract: id, Seq: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
		{"a contract that is not a hash", Note{Contract: "<x>", Seq: 1, Time: at}, false},
		{"a prev that is not a hash", Note{Contract: id, Seq: 2, Prev: "\"", Time: at}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := appendNote([]byte("keep"), &tc.n)
			if ok != tc.ok {
				t.Fatalf("appendNote ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			want, err := json.Marshal(&tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "keep"+string(want) {
				t.Errorf("appendNote wrote\n%s\nencoding/json\n%s", got, want)
			}
			if _, ok := parseNoteFast(got[4:]); !ok {
				t.Errorf("the fast decoder does not read %s", got[4:])
			}
		})
	}
}

// TestChangedAfterOpen: a contract or a note opened, then changed in
// place (its body's bytes, not the slice), is checked again: what was
// decoded of it holds only for the bytes that were hashed.
func TestChangedAfterOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Contract, last, n *SignedNote)
	}{
		{"nothing", func(*Contract, *SignedNote, *SignedNote) {}},
		{"contract body in place", func(c *Contract, _, _ *SignedNote) { c.Body[len(c.Body)-2] ^= 1 }},
		{"contract body shortened", func(c *Contract, _, _ *SignedNote) { c.Body = c.Body[:len(c.Body)-1] }},
		{"last note's body in place", func(_ *Contract, last, _ *SignedNote) { last.Body[len(last.Body)-2] ^= 1 }},
		{"note's body in place", func(_ *Contract, _, n *SignedNote) { n.Body[len(n.Body)-2] ^= 1 }},
		{"note's body replaced", func(_ *Contract, _, n *SignedNote) { n.Body = append([]byte(nil), n.Body...); n.Body[1] = ' ' }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newParty(t)
			ns := issueN(t, p, 2, false)
			c, last, n := wire(t, p.c), wire(t, ns[0]), wire(t, ns[1])
			if err := c.Open(); err != nil {
				t.Fatal(err)
			}
			for _, x := range []*SignedNote{last, n} {
				if err := x.Open(); err != nil {
					t.Fatal(err)
				}
			}
			wantRefusal(t, CheckNote(c, last, n), nil) // decoded, verified, remembered
			tc.change(c, last, n)
			err := CheckNote(c, last, n)
			if tc.name == "nothing" {
				wantRefusal(t, err, nil)
				return
			}
			if err == nil {
				t.Fatal("a change after Open is not seen")
			}
		})
	}
}
