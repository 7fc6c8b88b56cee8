package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger/ledgertest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// TestStateAndJournal checks what the local ledger records beyond the
// balances: each contract's state, its journal, the contracts by party.
func TestStateAndJournal(t *testing.T) {
	ctx := context.Background()
	req, prov, prov2 := ledgertest.Key(t, "req"), ledgertest.Key(t, "prov"), ledgertest.Key(t, "prov2")
	l := openLedger(t)
	c := ledgertest.Contract(t, req, prov, "escrow", 50_000)
	c2 := ledgertest.Contract(t, req, prov2, "escrow2", 7_000)
	free := ledgertest.Contract(t, req, prov, "free", 0)
	notes := ledgertest.Notes(t, c, prov, ledgertest.Usages([]uint64{60, 60, 60}), true)
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
		t.Fatalf("fixture: amounts %s, %s must straddle the budget 0.05", a(1), a(2))
	}
	check("opened (twice)", 57_000, 0)
	mustSettle(t, l, ledgertest.Countersigned(t, notes[0], req))
	check("note 1", 57_000-a(0), a(0))
	mustSettle(t, l, ledgertest.Countersigned(t, notes[2], req)) // beyond the budget: escrow empty, still paid
	check("note 3", 7_000, a(2))
	if s := state(t, l, c.ID); s.Paid != a(2) {
		t.Errorf("contract: paid %s, want %s", s.Paid, a(2))
	}
	if e, err := l.Escrow(ctx, req.DID(), c.Terms().Deployment); err != nil || e.Held != 0 || e.Paid != a(2) || e.Open != 1 {
		t.Errorf("Escrow = %+v, %v; want nothing held, %s paid, one open", e, err, a(2))
	}
	if err := l.Close(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
	check("c2 closed", 0, a(2))
	if err := l.Close(ctx, c2.ID); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	check("c2 closed twice", 0, a(2))
	if e, err := l.Escrow(ctx, req.DID(), free.Terms().Deployment); err != nil || e.Held != 0 || e.Budget != 0 {
		t.Errorf("contract without budget: Escrow = %+v, %v; want nothing", e, err)
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
	}{{req.DID(), 3}, {prov.DID(), 2}, {prov2.DID(), 1}, {ledgertest.Key(t, "stranger").DID(), 0}, {"", 3}} {
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

// FuzzSettle feeds arbitrary notes to a ledger holding one contract:
// Settle must not panic, and nothing moves unless both parties signed.
func FuzzSettle(f *testing.F) {
	req, prov := ledgertest.Key(f, "req"), ledgertest.Key(f, "prov")
	c := ledgertest.Contract(f, req, prov, "fuzz", 0)
	notes := ledgertest.Notes(f, c, prov, ledgertest.Usages([]uint64{60}), true)
	good := ledgertest.Countersigned(f, notes[0], req)
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
	req, prov := ledgertest.Key(t, "req"), ledgertest.Key(t, "prov")
	l := openLedger(t)
	c := ledgertest.Contract(t, req, prov, "concurrent", 30_000)
	if err := l.Open(ctx, c); err != nil {
		t.Fatal(err)
	}
	notes := ledgertest.Notes(t, c, prov, ledgertest.Usages([]uint64{10, 20, 30, 40, 50, 60}), true)
	for i, n := range notes {
		notes[i] = ledgertest.Countersigned(t, n, req)
	}
	const workers = 6
	moved := make([]match.Money, workers)
	errs := make([]error, workers)
	// Each worker walks its own copy of the chain from a different place.
	walks := make([][]*contract.SignedNote, workers)
	for w := range workers {
		for i := range notes {
			walks[w] = append(walks[w], ledgertest.Copy(t, notes[(i+w)%len(notes)]))
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

// TestSettleInCallersTransaction settles through Prepare and Apply in a
// transaction that also writes for the caller, as the notary does.
func TestSettleInCallersTransaction(t *testing.T) {
	ctx := context.Background()
	req, prov := ledgertest.Key(t, "req"), ledgertest.Key(t, "prov")
	l := openLedger(t)
	c := ledgertest.Contract(t, req, prov, "tx", 100_000)
	if err := l.Open(ctx, c); err != nil {
		t.Fatal(err)
	}
	notes := ledgertest.Notes(t, c, prov, ledgertest.Usages([]uint64{60, 60}), false)
	own := store.NewKind("caller-rows", func(s string) string { return s })
	for i, n := range []*contract.SignedNote{notes[1], notes[0]} {
		st, err := l.Prepare(ctx, ledgertest.Countersigned(t, n, req))
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		var moved match.Money
		if err := l.db.Update(func(tx *store.Tx) error {
			if err := own.Put(tx, fmt.Sprint("row ", i)); err != nil {
				return err
			}
			moved, err = st.Apply(tx)
			return err
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if want := []match.Money{notes[1].Note().Amount, 0}[i]; moved != want {
			t.Errorf("Apply(note %d) moved %s, want %s", n.Note().Seq, moved, want)
		}
	}
	if b := balance(t, l, req.DID()); b.Paid != notes[1].Note().Amount || b.Escrowed != 100_000-notes[1].Note().Amount {
		t.Errorf("requester %+v after the two settlements", b)
	}
	audit(t, l)
	if _, err := l.Prepare(ctx, notes[0]); !errors.Is(err, contract.ErrNotAccepted) {
		t.Errorf("Prepare(a note not countersigned) = %v, want ErrNotAccepted", err)
	}
}
