package ledger

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger/ledgertest"
	"github.com/dmsnet/dms/internal/match"
)

var (
	propertySeed  = flag.Uint64("ledger.seed", 0, "seed of the property test (0: from the clock)")
	propertyIters = flag.Int("ledger.iters", 30, "iterations of the property test")
)

// TestConformance runs the settlement ledgers' suite on the local ledger,
// checking after each step what only it records: every contract paid its
// largest countersigned amount, its journal sums to that with no note
// paid twice, and the ledger audits clean.
func TestConformance(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("property test seed %d: rerun with -ledger.seed=%d", seed, seed)
	iters := *propertyIters
	if testing.Short() {
		iters = 10
	}
	ledgertest.Conformance(t, ledgertest.Harness{
		New:        func(t *testing.T) contract.Ledger { return openLedger(t) },
		Check:      checkLocal,
		Seed:       seed,
		Iterations: iters,
	})
}

func checkLocal(t *testing.T, cl contract.Ledger, paid map[string]match.Money) {
	t.Helper()
	l := cl.(*Local)
	for id, want := range paid {
		if s := state(t, l, id); s.Paid != want {
			t.Fatalf("contract %s paid %s, want %s", id, s.Paid, want)
		}
		ps, err := l.Payments(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var sum match.Money
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p.Hash] {
				t.Fatalf("contract %s: note %s paid twice", id, p.Hash)
			}
			seen[p.Hash] = true
			sum += p.Moved
		}
		if sum != want {
			t.Fatalf("contract %s: journal sums to %s, want %s", id, sum, want)
		}
	}
	audit(t, l)
}
