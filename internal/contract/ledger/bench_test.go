package ledger

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger/ledgertest"
	"github.com/dmsnet/dms/internal/store"
)

// BenchmarkSettle measures a settlement against its anchor, one bare
// store Update writing one record (the fsync every commit costs):
//
//	go test -run '^$' -bench Settle -benchtime 200x ./internal/contract/ledger/
func BenchmarkSettle(b *testing.B) {
	ctx := context.Background()
	b.Run("anchor=store-update", func(b *testing.B) {
		db, err := store.Open(filepath.Join(b.TempDir(), "dms.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		kind := store.NewKind("bench", func(s State) string { return s.ID })
		for i := 0; b.Loop(); i++ {
			err := db.Update(func(tx *store.Tx) error { return kind.Put(tx, State{ID: strconv.Itoa(i)}) })
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	req, prov := ledgertest.Key(b, "req"), ledgertest.Key(b, "prov")
	c := ledgertest.Contract(b, req, prov, "bench", 1_000_000)
	chain := func(n int) []*contract.SignedNote {
		cpu := make([]uint64, n)
		for i := range cpu {
			cpu[i] = 1
		}
		notes := ledgertest.Notes(b, c, prov, ledgertest.Usages(cpu), false)
		for i, x := range notes {
			notes[i] = ledgertest.Countersigned(b, x, req)
		}
		return notes
	}
	b.Run("settle=new-note", func(b *testing.B) {
		l := openLedger(b)
		if err := l.Open(ctx, c); err != nil {
			b.Fatal(err)
		}
		notes := chain(b.N)
		b.ResetTimer()
		for i := range b.N {
			if m, err := l.Settle(ctx, notes[i]); err != nil || m == 0 {
				b.Fatalf("Settle(note %d) = %s, %v", i+1, m, err)
			}
		}
	})
	b.Run("settle=duplicate", func(b *testing.B) {
		l := openLedger(b)
		if err := l.Open(ctx, c); err != nil {
			b.Fatal(err)
		}
		n := chain(1)[0]
		if _, err := l.Settle(ctx, n); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if m, err := l.Settle(ctx, n); err != nil || m != 0 {
				b.Fatalf("Settle(duplicate) = %s, %v", m, err)
			}
		}
	})
}
