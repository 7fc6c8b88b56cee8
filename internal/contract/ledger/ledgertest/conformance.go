// Package ledgertest is the conformance suite of settlement ledgers
// (contract.Ledger) and the fixtures it builds them from: keys derived
// from names, contracts both parties signed, chains of real signed notes.
//
// Usage, in a ledger's tests:
//
//	func TestConformance(t *testing.T) {
//		ledgertest.Conformance(t, ledgertest.Harness{
//			New:   func(t *testing.T) contract.Ledger { return openLedger(t) },
//			Check: func(t *testing.T, l contract.Ledger, paid map[string]match.Money) { … },
//		})
//	}
//
// Every backend must pass it: the local ledger (package ledger) and any
// payment channel or chain behind the same interface.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Harness tells Conformance how to make and inspect ledgers.
type Harness struct {
	// New returns a new, empty ledger.
	New func(t *testing.T) contract.Ledger
	// Check, when set, checks a backend's own records after each round of
	// the property test: paid is what each contract (by ID) must have paid.
	Check func(t *testing.T, l contract.Ledger, paid map[string]match.Money)
	// Seed of the property test (0: from the clock; the seed is logged).
	Seed uint64
	// Iterations of the property test (0: 40).
	Iterations int
}

// Conformance runs the suite: scripted sequences of settlements, escrow,
// refusals of bad input, and the property test (random chains delivered
// to two ledgers in random orders, with duplicates, losses, notes never
// countersigned, early final invoices and Close at any point).
func Conformance(t *testing.T, h Harness) {
	t.Run("Sequences", func(t *testing.T) { sequences(t, h) })
	t.Run("Escrow", func(t *testing.T) { escrow(t, h) })
	t.Run("SharedEscrow", func(t *testing.T) { sharedEscrow(t, h) })
	t.Run("Refusals", func(t *testing.T) { refusals(t, h) })
	t.Run("Property", func(t *testing.T) { property(t, h) })
}

func balance(t *testing.T, l contract.Ledger, did identity.DID) contract.Balance {
	t.Helper()
	b, err := l.Balance(context.Background(), did)
	if err != nil {
		t.Fatalf("Balance(%s): %v", did.Short(), err)
	}
	if b.DID != did {
		t.Fatalf("Balance(%s) is the account of %s", did.Short(), b.DID.Short())
	}
	return b
}

func settle(t *testing.T, l contract.Ledger, n *contract.SignedNote) match.Money {
	t.Helper()
	m, err := l.Settle(context.Background(), n)
	if err != nil {
		t.Fatalf("Settle(note %d): %v", n.Note().Seq, err)
	}
	return m
}

// step is one call of a scripted sequence.
type step struct {
	op string // "settle" (countersigned), "plain" (not countersigned), "close"
	// note indexes the chain of 4; with a final note, index 4 is a note
	// both parties signed after it (which CheckNote forbids the
	// requester).
	note int
	// paid is the index of the note whose amount the contract has paid
	// after the step (-1: nothing yet).
	paid int
	err  error // the sentinel the step fails with, nil for none
}

func sequences(t *testing.T, h Harness) {
	ctx := context.Background()
	req, prov := Key(t, "req"), Key(t, "prov")
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
			l := h.New(t)
			c := Contract(t, req, prov, "seq", 0)
			if err := l.Open(ctx, c); err != nil {
				t.Fatal(err)
			}
			notes := Notes(t, c, prov, Usages([]uint64{60, 30, 120, 10}), tt.final)
			if tt.final {
				n := *notes[3].Note()
				n.Seq, n.Prev, n.Final = n.Seq+1, notes[3].Hash, false
				n.Usage.CPUMicros += 3_600_000_000
				n.Amount = c.Terms().Amount(n.Usage)
				notes = append(notes, HandNote(t, n, prov, nil))
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
					moved, err = l.Settle(ctx, Countersigned(t, notes[s.note], req))
				case "plain":
					moved, err = l.Settle(ctx, Copy(t, notes[s.note]))
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
				if got := balance(t, l, req.DID()).Paid; got != amount(paid) {
					t.Errorf("step %d: requester paid %s, want %s", i, got, amount(paid))
				}
				if got := balance(t, l, prov.DID()).Received; got != amount(paid) {
					t.Errorf("step %d: provider received %s, want %s", i, got, amount(paid))
				}
			}
			if h.Check != nil {
				h.Check(t, l, map[string]match.Money{c.ID: amount(paid)})
			}
		})
	}
}

func escrow(t *testing.T, h Harness) {
	ctx := context.Background()
	req, prov, prov2 := Key(t, "req"), Key(t, "prov"), Key(t, "prov2")
	l := h.New(t)
	c := Contract(t, req, prov, "escrow", 50_000)
	c2 := Contract(t, req, prov2, "escrow2", 7_000)
	free := Contract(t, req, prov, "free", 0)
	notes := Notes(t, c, prov, Usages([]uint64{60, 60, 60}), true)
	for _, cc := range []*contract.Contract{c, c2, free, c} {
		if err := l.Open(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	a := func(i int) match.Money { return notes[i].Note().Amount }
	if a(1) >= 50_000 || a(2) <= 50_000 {
		t.Fatalf("fixture: amounts %s, %s must straddle the budget 0.05", a(1), a(2))
	}
	check := func(when string, escrowed, paid match.Money) {
		t.Helper()
		b := balance(t, l, req.DID())
		if b.Escrowed != escrowed || b.Paid != paid {
			t.Errorf("%s: requester escrows %s and paid %s, want %s and %s", when, b.Escrowed, b.Paid, escrowed, paid)
		}
	}
	check("opened (one twice)", 57_000, 0)
	settle(t, l, Countersigned(t, notes[0], req))
	check("note 1", 57_000-a(0), a(0))
	settle(t, l, Countersigned(t, notes[2], req)) // beyond the budget: escrow empty, still paid
	check("note 3", 7_000, a(2))
	for i := range 2 {
		if err := l.Close(ctx, c2.ID); err != nil {
			t.Fatalf("Close %d: %v", i+1, err)
		}
		check(fmt.Sprintf("c2 closed (%d)", i+1), 0, a(2))
	}
	if b := balance(t, l, prov.DID()); b.Received != a(2) || b.Escrowed != 0 || b.Paid != 0 {
		t.Errorf("provider: %+v, want received %s and nothing else", b, a(2))
	}
	if h.Check != nil {
		h.Check(t, l, map[string]match.Money{c.ID: a(2), c2.ID: 0, free.ID: 0})
	}
}

// sharedEscrow: a deployment's contracts hold its budget in escrow once,
// together, until the last of them closes.
func sharedEscrow(t *testing.T, h Harness) {
	ctx := context.Background()
	req, prov, prov2 := Key(t, "req"), Key(t, "prov"), Key(t, "prov2")
	l := h.New(t)
	const budget = 200_000
	t1 := Terms(req.DID(), prov.DID(), "shared-1", budget)
	t2 := Terms(req.DID(), prov2.DID(), "shared-2", budget)
	t2.Deployment = t1.Deployment
	c1, c2 := Signed(t, t1, req, prov), Signed(t, t2, req, prov2)
	check := func(when string, escrowed, paid match.Money) {
		t.Helper()
		b := balance(t, l, req.DID())
		if b.Escrowed != escrowed || b.Paid != paid {
			t.Errorf("%s: requester escrows %s and paid %s, want %s and %s", when, b.Escrowed, b.Paid, escrowed, paid)
		}
	}
	for _, c := range []*contract.Contract{c1, c2, c1} {
		if err := l.Open(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	check("two contracts of one deployment opened", budget, 0)
	n1 := Notes(t, c1, prov, Usages([]uint64{60, 60}), false)
	n2 := Notes(t, c2, prov2, Usages([]uint64{60, 600}), false)
	a1, a2 := n1[0].Note().Amount, n2[0].Note().Amount
	settle(t, l, Countersigned(t, n1[0], req))
	settle(t, l, Countersigned(t, n2[0], req))
	check("a note of each", budget-a1-a2, a1+a2)
	if err := l.Close(ctx, c1.ID); err != nil {
		t.Fatal(err)
	}
	check("one closed, the other open", budget-a1-a2, a1+a2)
	b2 := n2[1].Note().Amount
	if a1+b2 <= budget {
		t.Fatalf("fixture: %s + %s must exceed the budget", a1, b2)
	}
	settle(t, l, Countersigned(t, n2[1], req)) // beyond the budget: escrow empty, still paid
	check("beyond the budget", 0, a1+b2)
	if err := l.Close(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
	check("both closed", 0, a1+b2)
	// A contract opened later (a redeploy after both closed) holds what
	// is left of the budget again.
	t3 := Terms(req.DID(), prov.DID(), "shared-3", 10_000_000)
	t3.Deployment = t1.Deployment
	c3 := Signed(t, t3, req, prov)
	if err := l.Open(ctx, c3); err != nil {
		t.Fatal(err)
	}
	check("a third contract with a larger budget", 10_000_000-a1-b2, a1+b2)
	if err := l.Close(ctx, c3.ID); err != nil {
		t.Fatal(err)
	}
	check("all closed", 0, a1+b2)
	if h.Check != nil {
		h.Check(t, l, map[string]match.Money{c1.ID: a1, c2.ID: b2, c3.ID: 0})
	}
}

func refusals(t *testing.T, h Harness) {
	ctx := context.Background()
	req, prov, mallory := Key(t, "req"), Key(t, "prov"), Key(t, "mallory")
	c := Contract(t, req, prov, "bad", 10_000)
	notes := Notes(t, c, prov, Usages([]uint64{60, 60}), false)
	good := Countersigned(t, notes[1], req)
	stranger := Contract(t, req, prov, "never-opened", 0)

	noteTests := []struct {
		name string
		note func() *contract.SignedNote
		want error
	}{
		{"no note", func() *contract.SignedNote { return nil }, contract.ErrMalformed},
		{"not countersigned", func() *contract.SignedNote { return Copy(t, notes[1]) }, contract.ErrNotAccepted},
		{"countersigned by another key", func() *contract.SignedNote { return Countersigned(t, notes[1], mallory) }, contract.ErrNotAccepted},
		{"signed by another provider key", func() *contract.SignedNote {
			return HandNote(t, *notes[1].Note(), mallory, req)
		}, contract.ErrNotAccepted},
		{"amount raised after signing", func() *contract.SignedNote {
			return ReHash(t, good, func(n *contract.Note) { n.Amount *= 10 })
		}, contract.ErrNotAccepted},
		{"body changed, hash kept", func() *contract.SignedNote {
			f := ReHash(t, good, func(n *contract.Note) { n.Amount *= 10 })
			f.Hash = good.Hash
			return f
		}, contract.ErrMalformed},
		{"body not JSON", func() *contract.SignedNote {
			f := ReHash(t, good, func(*contract.Note) {})
			f.Body = []byte("not json")
			f.Hash = hashHex(f.Body)
			return f
		}, contract.ErrMalformed},
		{"note of a contract never opened", func() *contract.SignedNote {
			return Countersigned(t, Notes(t, stranger, prov, Usages([]uint64{60}), false)[0], req)
		}, contract.ErrUnknown},
		{"note naming no contract", func() *contract.SignedNote {
			return ReHash(t, good, func(n *contract.Note) { n.Contract = "../../etc" })
		}, contract.ErrMalformed},
	}
	contractTests := []struct {
		name     string
		contract func() *contract.Contract
		want     error
	}{
		{"no contract", func() *contract.Contract { return nil }, contract.ErrMalformed},
		{"not signed by the provider", func() *contract.Contract {
			cc, err := contract.New(Terms(req.DID(), prov.DID(), "unsigned", 5), req)
			if err != nil {
				t.Fatal(err)
			}
			return cc
		}, contract.ErrSignature},
		{"provider's signature by another key", func() *contract.Contract {
			cc, err := contract.New(Terms(req.DID(), prov.DID(), "wrong-prov", 5), req)
			if err != nil {
				t.Fatal(err)
			}
			cc.ProviderSig = mallory.Sign([]byte("dms-contract|" + cc.ID))
			return cc
		}, contract.ErrSignature},
		{"requester's signature by another key", func() *contract.Contract {
			cc := Contract(t, req, prov, "wrong-req", 5)
			return &contract.Contract{ID: cc.ID, Body: cc.Body, RequesterSig: mallory.Sign([]byte("dms-contract|" + cc.ID)), ProviderSig: cc.ProviderSig}
		}, contract.ErrSignature},
	}

	l := h.New(t)
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
			// Not opened: closing it is refused, and its budget is not held.
			if err := l.Close(ctx, cc.ID); !errors.Is(err, contract.ErrUnknown) {
				t.Errorf("Close after a refused Open = %v, want ErrUnknown", err)
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
		t.Errorf("requester after refusals: %+v, want nothing paid and 0.01 escrowed", b)
	}
	if b := balance(t, l, prov.DID()); b.Received != 0 {
		t.Errorf("provider after refusals: %+v, want nothing received", b)
	}
	if b := balance(t, l, mallory.DID()); b != (contract.Balance{DID: mallory.DID()}) {
		t.Errorf("mallory after refusals: %+v, want an empty account", b)
	}
	if h.Check != nil {
		h.Check(t, l, map[string]match.Money{c.ID: 0})
	}
	// The good note still pays after all that.
	if moved := settle(t, l, good); moved != good.Note().Amount {
		t.Errorf("good note moved %s, want %s", moved, good.Note().Amount)
	}
	// A cancelled context changes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Settle(cctx, Countersigned(t, Notes(t, c, prov, Usages([]uint64{60, 60, 60}), false)[2], req)); !errors.Is(err, context.Canceled) {
		t.Errorf("Settle with a cancelled context = %v, want context.Canceled", err)
	}
	if h.Check != nil {
		h.Check(t, l, map[string]match.Money{c.ID: good.Note().Amount})
	}
}

// delivery is one arrival at a ledger: a note of contract k (countersigned
// or not), or the contract's Close.
type delivery struct {
	k        int
	note     *contract.SignedNote
	accepted bool
	close    bool
}

// property delivers random chains of real signed notes to two ledgers
// (the requester's and the provider's node), each in its own random
// order. The contracts of an iteration belong to one deployment and
// share its budget. Each contract must pay the largest amount among its
// delivered countersigned notes, never more and never twice; the
// requester's escrow must hold the budget less what was paid while a
// contract is open, nothing once all are closed; both ledgers must end
// equal.
func property(t *testing.T, h Harness) {
	seed := h.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x1ed6e7))
	iters := h.Iterations
	if iters <= 0 {
		iters = 40
	}
	ctx := context.Background()
	ledgers := [2]contract.Ledger{h.New(t), h.New(t)}
	var settled, refused, closed int
	for it := range iters {
		req := Key(t, fmt.Sprintf("req %d %d", seed, it))
		nc := 1 + rng.IntN(3)
		cs := make([]*contract.Contract, nc)
		want := make([]match.Money, nc) // the largest countersigned amount delivered
		var ds []delivery
		var budget match.Money
		if rng.IntN(2) == 0 {
			budget = match.Money(rng.Int64N(400_000))
		}
		closes := 0
		for k := range nc {
			// One provider per contract: its Received is the contract's paid.
			prov := Key(t, fmt.Sprintf("prov %d %d %d", seed, it, k))
			tt := Terms(req.DID(), prov.DID(), fmt.Sprintf("%d-%d", it, k), budget)
			tt.Deployment = fmt.Sprintf("dep-%d", it)
			c := Signed(t, tt, req, prov)
			cs[k] = c
			for _, l := range ledgers {
				if err := l.Open(ctx, c); err != nil {
					t.Fatalf("iteration %d: Open: %v", it, err)
				}
			}
			cpu := make([]uint64, 1+rng.IntN(10))
			for i := range cpu {
				cpu[i] = rng.Uint64N(600) // 0 leaves the amount as it was
			}
			final := rng.IntN(4) != 0
			for _, n := range Notes(t, c, prov, Usages(cpu), final) {
				accepted := rng.IntN(6) != 0
				copies := rng.IntN(4) // 0: lost
				if n.Note().Final {
					copies = max(copies, 1)
				}
				for range copies {
					if accepted {
						ds = append(ds, delivery{k: k, note: Countersigned(t, n, req), accepted: true})
						want[k] = max(want[k], n.Note().Amount)
					} else {
						ds = append(ds, delivery{k: k, note: Copy(t, n)})
					}
				}
			}
			if rng.IntN(2) == 0 {
				ds = append(ds, delivery{k: k, close: true})
				closes++
			}
		}
		// Each ledger gets its own order; in half the orders the final
		// invoices come first.
		for li, l := range ledgers {
			order := rng.Perm(len(ds))
			if rng.IntN(2) == 0 {
				var front, rest []int
				for _, i := range order {
					if d := ds[i]; d.note != nil && d.note.Note().Final {
						front = append(front, i)
					} else {
						rest = append(rest, i)
					}
				}
				order = append(front, rest...)
			}
			paid := make([]match.Money, nc)
			moved := make([]match.Money, nc)
			for _, i := range order {
				d := ds[i]
				if d.close {
					if err := l.Close(ctx, cs[d.k].ID); err != nil {
						t.Fatalf("iteration %d ledger %d: Close: %v", it, li, err)
					}
					closed++
					continue
				}
				m, err := l.Settle(ctx, d.note)
				if !d.accepted {
					if !errors.Is(err, contract.ErrNotAccepted) || m != 0 {
						t.Fatalf("iteration %d ledger %d: Settle(note %d not countersigned) = %s, %v; want 0, ErrNotAccepted", it, li, d.note.Note().Seq, m, err)
					}
					refused++
					continue
				}
				if err != nil {
					t.Fatalf("iteration %d ledger %d: Settle(note %d): %v", it, li, d.note.Note().Seq, err)
				}
				settled++
				amount := d.note.Note().Amount
				if w := max(0, amount-paid[d.k]); m != w {
					t.Fatalf("iteration %d ledger %d: Settle(note %d, amount %s) moved %s after %s paid, want %s", it, li, d.note.Note().Seq, amount, m, paid[d.k], w)
				}
				paid[d.k] = max(paid[d.k], amount)
				moved[d.k] += m
			}
			var total match.Money
			byID := map[string]match.Money{}
			for k, c := range cs {
				if moved[k] != want[k] {
					t.Fatalf("iteration %d ledger %d contract %d: moved %s in all, want %s (the largest countersigned amount)", it, li, k, moved[k], want[k])
				}
				if b := balance(t, l, c.Terms().Provider); b.Received != want[k] || b.Paid != 0 {
					t.Fatalf("iteration %d ledger %d contract %d: provider %+v, want received %s", it, li, k, b, want[k])
				}
				total += want[k]
				byID[c.ID] = want[k]
			}
			held := match.Money(0)
			if closes < nc {
				held = max(0, budget-total)
			}
			if b := balance(t, l, req.DID()); b.Paid != total || b.Received != 0 || b.Escrowed != held {
				t.Fatalf("iteration %d ledger %d: requester %+v, want paid %s and %s escrowed", it, li, b, total, held)
			}
			if h.Check != nil {
				h.Check(t, l, byID)
			}
		}
		// Both ledgers end equal, whatever order each saw.
		dids := []identity.DID{req.DID()}
		for _, c := range cs {
			dids = append(dids, c.Terms().Provider)
		}
		for _, did := range dids {
			if x, y := balance(t, ledgers[0], did), balance(t, ledgers[1], did); x != y {
				t.Fatalf("iteration %d: the two ledgers differ on %s: %+v, %+v", it, did.Short(), x, y)
			}
		}
	}
	t.Logf("%d iterations: %d countersigned notes settled, %d refused, %d closes", iters, settled, refused, closed)
	if settled == 0 || refused == 0 || closed == 0 {
		t.Fatalf("the generator settled %d, refused %d and closed %d: it must do all three", settled, refused, closed)
	}
}
