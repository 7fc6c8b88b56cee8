package ledger

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/match"
)

var (
	propertySeed  = flag.Uint64("ledger.seed", 0, "seed of TestSettleProperty (0: from the clock)")
	propertyIters = flag.Int("ledger.iters", 60, "rounds of TestSettleProperty")
)

// delivery is one arrival at a ledger: a note of contract k (countersigned
// or not), or the contract's Close.
type delivery struct {
	k        int
	note     *contract.SignedNote
	accepted bool
	close    bool
}

// TestSettleProperty delivers random chains of real signed notes to two
// ledgers (the requester's and the provider's node), each in its own
// random order, with duplicates, losses, notes never countersigned, an
// early final invoice and Close at any point. Each contract must pay the
// largest amount among its delivered countersigned notes, never more and
// never twice, and both ledgers must end equal.
func TestSettleProperty(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -ledger.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x1ed6e7))
	iters := *propertyIters
	if testing.Short() {
		iters = 10
	}
	ctx := context.Background()
	ledgers := [2]*Local{openLedger(t), openLedger(t)}
	var settled, refused int
	for it := range iters {
		req := seedKey(t, fmt.Sprintf("req %d %d", seed, it))
		nc := 1 + rng.IntN(3)
		cs := make([]*contract.Contract, nc)
		want := make([]match.Money, nc) // the largest countersigned amount delivered
		var ds []delivery
		for k := range nc {
			prov := seedKey(t, fmt.Sprintf("prov %d %d %d", seed, it, k))
			var budget match.Money
			if rng.IntN(2) == 0 {
				budget = match.Money(rng.Int64N(400_000))
			}
			c := signedContract(t, req, prov, fmt.Sprintf("%d-%d", it, k), budget)
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
			notes := issue(t, c, prov, usageSteps(cpu), final)
			for _, n := range notes {
				accepted := rng.IntN(6) != 0
				copies := rng.IntN(4) // 0: lost
				if n.Note().Final {
					copies = max(copies, 1)
				}
				for range copies {
					if accepted {
						ds = append(ds, delivery{k: k, note: countersigned(t, n, req), accepted: true})
						want[k] = max(want[k], n.Note().Amount)
					} else {
						ds = append(ds, delivery{k: k, note: clone(t, n)})
					}
				}
			}
			if rng.IntN(2) == 0 {
				ds = append(ds, delivery{k: k, close: true})
			}
		}
		// Each ledger gets its own order; in half the orders the final
		// invoices come first.
		for li, l := range ledgers {
			order := rng.Perm(len(ds))
			if rng.IntN(2) == 0 {
				front := order[:0:0]
				var rest []int
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
			for k, c := range cs {
				s := state(t, l, c.ID)
				if s.Paid != want[k] || moved[k] != want[k] {
					t.Fatalf("iteration %d ledger %d contract %d: paid %s, moved %s in all; want %s (the largest countersigned amount)", it, li, k, s.Paid, moved[k], want[k])
				}
				ps, err := l.Payments(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				var sum match.Money
				seen := map[string]bool{}
				for _, p := range ps {
					if seen[p.Hash] {
						t.Fatalf("iteration %d ledger %d contract %d: note %s paid twice", it, li, k, p.Hash)
					}
					seen[p.Hash] = true
					sum += p.Moved
				}
				if sum != want[k] {
					t.Fatalf("iteration %d ledger %d contract %d: journal sums to %s, want %s", it, li, k, sum, want[k])
				}
				if b := balance(t, l, c.Terms().Provider); b.Received != want[k] || b.Paid != 0 {
					t.Fatalf("iteration %d ledger %d contract %d: provider %+v, want received %s", it, li, k, b, want[k])
				}
				total += want[k]
			}
			if b := balance(t, l, req.DID()); b.Paid != total || b.Received != 0 {
				t.Fatalf("iteration %d ledger %d: requester %+v, want paid %s", it, li, b, total)
			}
			audit(t, l)
		}
		// Both ledgers end equal, whatever order each saw.
		for _, c := range cs {
			x, y := state(t, ledgers[0], c.ID), state(t, ledgers[1], c.ID)
			x.Opened, y.Opened = time.Time{}, time.Time{}
			if x != y {
				t.Fatalf("iteration %d: the two ledgers differ on contract %s:\n%+v\n%+v", it, c.ID, x, y)
			}
		}
		if x, y := balance(t, ledgers[0], req.DID()), balance(t, ledgers[1], req.DID()); x != y {
			t.Fatalf("iteration %d: the two ledgers differ on the requester: %+v, %+v", it, x, y)
		}
	}
	t.Logf("%d iterations: %d countersigned notes settled, %d refused", iters, settled, refused)
	if settled == 0 || refused == 0 {
		t.Fatalf("the generator settled %d and refused %d notes: it must do both", settled, refused)
	}
}
