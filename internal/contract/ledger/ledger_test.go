package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// step is one call of a scripted sequence.
type step struct {
	op string // "settle" (countersigned note), "plain" (not countersigned), "close"
	// note indexes the chain; with a final note, index 4 is a note both
	// parties signed after it (which CheckNote forbids the requester).
	note int
	// paid is the index of the note whose amount the contract has paid
	// after the step (-1: nothing yet).
	paid int
	err  error // the sentinel the step fails with, nil for none
}

func TestSettleSequences(t *testing.T) {
	ctx := context.Background()
	req, prov := seedKey(t, "req"), seedKey(t, "prov")
	tests := []struct {
		name  string
		final bool // the last note of the 4 is the invoice
		steps []step
	}{
		{"in order", true, []step{{"settle", 0, 0, nil}, {"settle", 1, 1, nil}, {"settle", 2, 2, nil}, {"settle", 3, 3, nil}}},
		{"reversed", true, []step{{"settle", 3, 3, nil}, {"settle", 2, 3, nil}, {"settle", 1, 3, nil}, {"settle", 0, 3, nil}}},
		{"duplicates", false, []step{{"settle", 0, 0, nil}, {"settle", 0, 0, nil}, {"settle", 1, 1, nil}, {"settle", 1, 1, nil}, {"settle", 0, 1, nil}}},
		{"gap then fill", false, []step{{"settle", 2, 2, nil}, {"settle", 0, 2, nil}, {"settle", 1, 2, nil}, {"settle", 3, 3, nil}}},
		{"early final invoice", true, []step{{"settle", 3, 3, nil}, {"settle", 0, 3, nil}, {"settle", 3, 3, nil}}},
		{"not countersigned pays nothing", false, []step{{"plain", 1, -1, contract.ErrNotAccepted}, {"settle", 0, 0, nil}, {"plain", 2, 0, contract.ErrNotAccepted}, {"settle", 2, 2, nil}}},
		{"close, then the final invoice still pays", true, []step{{"settle", 0, 0, nil}, {"close", 0, 0, nil}, {"settle", 3, 3, nil}, {"settle", 1, 3, nil}, {"close", 0, 3, nil}}},
		// A ledger cannot take a payment back: to end equal whatever the
		// order, a countersigned note after the invoice pays like any.
		{"a note after the final one", true, []step{{"settle", 3, 3, nil}, {"settle", 4, 4, nil}, {"settle", 2, 4, nil}}},
		{"a note after the final one, the final late", true, []step{{"settle", 1, 1, nil}, {"settle", 4, 4, nil}, {"settle", 3, 4, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLedger(t)
			c := signedContract(t, req, prov, "seq", 0)
			if err := l.Open(ctx, c); err != nil {
				t.Fatal(err)
			}
			notes := issue(t, c, prov, usageSteps([]uint64{60, 30, 120, 10}), tt.final)
			if tt.final {
				n := *notes[3].Note()
				n.Seq, n.Prev, n.Final = n.Seq+1, notes[3].Hash, false
				n.Usage.CPUMicros += 3_600_000_000
				n.Amount = c.Terms().Amount(n.Usage)
				notes = append(notes, handNote(t, n, prov, nil))
			}
			for i := 1; i < len(notes); i++ {
				if notes[i].Note().Amount <= notes[i-1].Note().Amount {
					t.Fatalf("fixture: note %d amount %s not above note %d's %s", i+1, notes[i].Note().Amount, i, notes[i-1].Note().Amount)
				}
			}
			amount := func(i int) match.Money {
				if i < 0 {
					return 0
				}
				return notes[i].Note().Amount
			}
			paid := -1
			for i, s := range tt.steps {
				var moved match.Money
				var err error
				switch s.op {
				case "settle":
					moved, err = l.Settle(ctx, countersigned(t, notes[s.note], req))
				case "plain":
					moved, err = l.Settle(ctx, clone(t, notes[s.note]))
				case "close":
					err = l.Close(ctx, c.ID)
				}
				if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
					t.Fatalf("step %d (%s %d): err = %v, want %v", i, s.op, s.note+1, err, s.err)
				}
				wantMoved := max(0, amount(s.paid)-amount(paid))
				if s.op != "close" && moved != wantMoved {
					t.Errorf("step %d (%s %d): moved %s, want %s", i, s.op, s.note+1, moved, wantMoved)
				}
				paid = s.paid
				if got := state(t, l, c.ID).Paid; got != amount(paid) {
					t.Errorf("step %d (%s %d): contract paid %s, want %s", i, s.op, s.note+1, got, amount(paid))
				}
				if got := balance(t, l, req.DID()).Paid; got != amount(paid) {
					t.Errorf("step %d: requester paid %s, want %s", i, got, amount(paid))
				}
				if got := balance(t, l, prov.DID()).Received; got != amount(paid) {
					t.Errorf("step %d: provider received %s, want %s", i, got, amount(paid))
				}
				audit(t, l)
			}
		})
	}
}

func TestEscrow(t *testing.T) {
	ctx := context.Background()
	req, prov, prov2 := seedKey(t, "req"), seedKey(t, "prov"), seedKey(t, "prov2")
	l := openLedger(t)
	c := signedContract(t, req, prov, "escrow", 50_000)
	c2 := signedContract(t, req, prov2, "escrow2", 7_000)
	free := signedContract(t, req, prov, "free", 0)
	notes := issue(t, c, prov, usageSteps([]uint64{60, 60, 60}), true) // 20833, 41666, 62499 with memory
	for _, cc := range []*contract.Contract{c, c2, free, c} {
		if err := l.Open(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, escrowed, paid match.Money) {
		t.Helper()
		b := balance(t, l, req.DID())
		if b.Escrowed != escrowed || b.Paid != paid {
			t.Errorf("%s: requester escrows %s and paid %s, want %s and %s", when, b.Escrowed, b.Paid, escrowed, paid)
		}
		audit(t, l)
	}
	a := func(i int) match.Money { return notes[i].Note().Amount }
	if a(1) >= 50_000 || a(2) <= 50_000 {
		t.Fatalf("fixture: amounts %s, %s must straddle the budget 50", a(1), a(2))
	}
	check("opened (twice)", 57_000, 0)
	mustSettle(t, l, countersigned(t, notes[0], req))
	check("note 1", 57_000-a(0), a(0))
	mustSettle(t, l, countersigned(t, notes[2], req)) // beyond the budget: escrow empty, still paid
	check("note 3", 7_000, a(2))
	if s := state(t, l, c.ID); s.Escrow != 0 || s.Paid != a(2) {
		t.Errorf("contract: escrow %s paid %s, want 0 and %s", s.Escrow, s.Paid, a(2))
	}
	if err := l.Close(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
	check("c2 closed", 0, a(2))
	if err := l.Close(ctx, c2.ID); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	check("c2 closed twice", 0, a(2))
	if s := state(t, l, free.ID); s.Escrow != 0 || s.Budget != 0 {
		t.Errorf("contract without budget: escrow %s budget %s, want 0", s.Escrow, s.Budget)
	}
	ps, err := l.Payments(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Moved != a(0) || ps[1].Moved != a(2)-a(0) || ps[1].Hash != notes[2].Hash {
		t.Errorf("Payments = %+v, want note 1 moving %s and note 3 moving %s", ps, a(0), a(2)-a(0))
	}
	for _, tc := range []struct {
		did  identity.DID
		want int
	}{{req.DID(), 3}, {prov.DID(), 2}, {prov2.DID(), 1}, {seedKey(t, "stranger").DID(), 0}, {"", 3}} {
		got, err := l.Contracts(ctx, tc.did)
		if err != nil || len(got) != tc.want {
			t.Errorf("Contracts(%s) = %d contracts, %v; want %d", tc.did.Short(), len(got), err, tc.want)
		}
	}
}

func mustSettle(t *testing.T, l *Local, n *contract.SignedNote) match.Money {
	t.Helper()
	m, err := l.Settle(context.Background(), n)
	if err != nil {
		t.Fatalf("Settle(note %d): %v", n.Note().Seq, err)
	}
	return m
}

// reHash is n with its body passed through edit and the hash recomputed
// (so it opens), the signatures kept: a forgery.
func reHash(t *testing.T, n *contract.SignedNote, edit func(*contract.Note)) *contract.SignedNote {
	t.Helper()
	note := *n.Note()
	edit(&note)
	body, err := json.Marshal(note)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(body)
	cp := &contract.SignedNote{Hash: hex.EncodeToString(d[:]), Body: body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig}
	return cp
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	req, prov, mallory := seedKey(t, "req"), seedKey(t, "prov"), seedKey(t, "mallory")
	c := signedContract(t, req, prov, "bad", 10_000)
	notes := issue(t, c, prov, usageSteps([]uint64{60, 60}), false)
	good := countersigned(t, notes[1], req)
	stranger := signedContract(t, req, prov, "never-opened", 0)

	noteTests := []struct {
		name string
		note func() *contract.SignedNote
		want error
	}{
		{"no note", func() *contract.SignedNote { return nil }, contract.ErrMalformed},
		{"not countersigned", func() *contract.SignedNote { return clone(t, notes[1]) }, contract.ErrNotAccepted},
		{"countersigned by another key", func() *contract.SignedNote { return countersigned(t, notes[1], mallory) }, contract.ErrNotAccepted},
		{"signed by another provider key", func() *contract.SignedNote {
			return handNote(t, *notes[1].Note(), mallory, req)
		}, contract.ErrNotAccepted},
		{"amount raised after signing", func() *contract.SignedNote {
			return reHash(t, good, func(n *contract.Note) { n.Amount *= 10 })
		}, contract.ErrNotAccepted},
		{"body changed, hash kept", func() *contract.SignedNote {
			f := reHash(t, good, func(n *contract.Note) { n.Amount *= 10 })
			f.Hash = good.Hash
			return f
		}, contract.ErrMalformed},
		{"body not JSON", func() *contract.SignedNote {
			body := []byte("not json")
			d := sha256.Sum256(body)
			return &contract.SignedNote{Hash: hex.EncodeToString(d[:]), Body: body, ProviderSig: good.ProviderSig, RequesterSig: good.RequesterSig}
		}, contract.ErrMalformed},
		{"note of a contract never opened", func() *contract.SignedNote {
			return countersigned(t, issue(t, stranger, prov, usageSteps([]uint64{60}), false)[0], req)
		}, contract.ErrUnknown},
		{"note naming no contract", func() *contract.SignedNote {
			return reHash(t, good, func(n *contract.Note) { n.Contract = "../../etc" })
		}, contract.ErrMalformed},
	}
	contractTests := []struct {
		name     string
		contract func() *contract.Contract
		want     error
	}{
		{"no contract", func() *contract.Contract { return nil }, contract.ErrMalformed},
		{"not signed by the provider", func() *contract.Contract {
			cc, err := contract.New(terms(req.DID(), prov.DID(), "unsigned", 5), req)
			if err != nil {
				t.Fatal(err)
			}
			return cc
		}, contract.ErrSignature},
		{"provider's signature by another key", func() *contract.Contract {
			cc, err := contract.New(terms(req.DID(), prov.DID(), "wrong-prov", 5), req)
			if err != nil {
				t.Fatal(err)
			}
			cc.ProviderSig = mallory.Sign([]byte("dms-contract|" + cc.ID))
			return cc
		}, contract.ErrSignature},
		{"requester's signature by another key", func() *contract.Contract {
			cc := signedContract(t, req, prov, "wrong-req", 5)
			return &contract.Contract{ID: cc.ID, Body: cc.Body, RequesterSig: mallory.Sign([]byte("dms-contract|" + cc.ID)), ProviderSig: cc.ProviderSig}
		}, contract.ErrSignature},
	}

	l := openLedger(t)
	if err := l.Open(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, tt := range noteTests {
		t.Run("settle "+tt.name, func(t *testing.T) {
			moved, err := l.Settle(ctx, tt.note())
			var r *contract.RefusalError
			if !errors.Is(err, tt.want) || !errors.As(err, &r) {
				t.Errorf("Settle = %s, %v; want a *RefusalError wrapping %v", moved, err, tt.want)
			}
			if moved != 0 {
				t.Errorf("Settle moved %s, want nothing", moved)
			}
		})
	}
	for _, tt := range contractTests {
		t.Run("open "+tt.name, func(t *testing.T) {
			cc := tt.contract()
			err := l.Open(ctx, cc)
			var r *contract.RefusalError
			if !errors.Is(err, tt.want) || !errors.As(err, &r) {
				t.Errorf("Open = %v; want a *RefusalError wrapping %v", err, tt.want)
			}
			if cc == nil {
				return
			}
			if _, err := l.Contract(ctx, cc.ID); !errors.Is(err, contract.ErrUnknown) {
				t.Errorf("Contract after a refused Open = %v, want ErrUnknown", err)
			}
		})
	}
	for _, id := range []string{"", "nope", stranger.ID} {
		if err := l.Close(ctx, id); !errors.Is(err, contract.ErrUnknown) {
			t.Errorf("Close(%q) = %v, want ErrUnknown", id, err)
		}
	}
	// Nothing moved: the accounts are as opened.
	if b := balance(t, l, req.DID()); b.Paid != 0 || b.Escrowed != 10_000 {
		t.Errorf("requester after refusals: %+v, want nothing paid and 10000 escrowed", b)
	}
	if b := balance(t, l, prov.DID()); b.Received != 0 {
		t.Errorf("provider after refusals: %+v, want nothing received", b)
	}
	if ps, err := l.Payments(ctx, c.ID); err != nil || len(ps) != 0 {
		t.Errorf("Payments after refusals = %v, %v; want none", ps, err)
	}
	audit(t, l)
	// The good note still pays after all that.
	if moved := mustSettle(t, l, good); moved != good.Note().Amount {
		t.Errorf("good note moved %s, want %s", moved, good.Note().Amount)
	}
	// A cancelled context changes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Settle(cctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("Settle with a cancelled context = %v", err)
	}
}

// FuzzSettle feeds arbitrary notes to a ledger holding one contract:
// Settle must not panic, and nothing moves unless both parties signed.
func FuzzSettle(f *testing.F) {
	req, prov := seedKey(f, "req"), seedKey(f, "prov")
	c := signedContract(f, req, prov, "fuzz", 0)
	notes := issue(f, c, prov, usageSteps([]uint64{60}), true)
	good := countersigned(f, notes[0], req)
	f.Add([]byte(good.Hash), []byte(good.Body), good.ProviderSig, good.RequesterSig)
	f.Add([]byte(good.Hash), []byte(`{"contract":"`+c.ID+`","seq":1,"amount":"-1"}`), good.ProviderSig, good.RequesterSig)
	f.Add([]byte(""), []byte("{}"), []byte{}, []byte{})
	l := openLedger(f)
	if err := l.Open(context.Background(), c); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hash, body, psig, rsig []byte) {
		n := &contract.SignedNote{Hash: string(hash), Body: body, ProviderSig: psig, RequesterSig: rsig}
		moved, err := l.Settle(context.Background(), n)
		if err != nil && moved != 0 {
			t.Fatalf("Settle failed (%v) but moved %s", err, moved)
		}
		if moved > 0 && (n.Open() != nil || !n.Accepted(c)) {
			t.Fatalf("Settle moved %s for a note not accepted under the contract", moved)
		}
		if err := l.Audit(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSettleConcurrent settles the same notes from several goroutines at
// once: the moves add up to the largest amount, paid once.
func TestSettleConcurrent(t *testing.T) {
	ctx := context.Background()
	req, prov := seedKey(t, "req"), seedKey(t, "prov")
	l := openLedger(t)
	c := signedContract(t, req, prov, "concurrent", 30_000)
	if err := l.Open(ctx, c); err != nil {
		t.Fatal(err)
	}
	notes := issue(t, c, prov, usageSteps([]uint64{10, 20, 30, 40, 50, 60}), true)
	for i, n := range notes {
		notes[i] = countersigned(t, n, req)
	}
	const workers = 6
	moved := make([]match.Money, workers)
	errs := make([]error, workers)
	// Each worker walks its own copy of the chain from a different place.
	walks := make([][]*contract.SignedNote, workers)
	for w := range workers {
		for i := range notes {
			walks[w] = append(walks[w], clone(t, notes[(i+w)%len(notes)]))
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range walks[w] {
				m, err := l.Settle(ctx, n)
				if err != nil {
					errs[w] = err
					return
				}
				moved[w] += m
			}
		}()
	}
	wg.Wait()
	var sum match.Money
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		sum += moved[w]
	}
	want := notes[len(notes)-1].Note().Amount
	if sum != want {
		t.Errorf("the workers moved %s in all, want %s", sum, want)
	}
	if b := balance(t, l, prov.DID()); b.Received != want {
		t.Errorf("provider received %s, want %s", b.Received, want)
	}
	audit(t, l)
}
