package notary

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/store"
)

type batchItem struct {
	K string `json:"k"`
}

var batchItems = store.NewKind("notary-batch-test", func(b batchItem) string { return b.K })

// The batcher commits every write exactly once whatever the
// concurrency, answers each caller with its batch's result, and a
// failing write fails its batch only (its write is not stored).
func TestBatcher(t *testing.T) {
	errBad := errors.New("bad write")
	for _, tc := range []struct {
		name    string
		writers int
		gather  bool
		fail    int // index of a failing write (-1: none)
	}{
		{"one", 1, false, -1},
		{"one gathering", 1, true, -1},
		{"many gathering", 64, true, -1},
		{"many at once", 64, false, -1},
		{"a failing write", 32, true, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(filepath.Join(t.TempDir(), "b.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			n := &Notary{}
			b := &batcher{db: db, stats: n}
			errs := make([]error, tc.writers)
			var wg sync.WaitGroup
			for i := range tc.writers {
				wg.Go(func() {
					errs[i] = b.do(newWrite(func(tx *store.Tx) error {
						if i == tc.fail {
							return errBad
						}
						return batchItems.Put(tx, batchItem{K: fmt.Sprint(i)})
					}), tc.gather)
				})
			}
			wg.Wait()
			stored := 0
			for i := range tc.writers {
				var got error
				if err := db.View(func(tx *store.Tx) error {
					_, got = batchItems.Get(tx, fmt.Sprint(i))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				switch {
				case errs[i] == nil && got != nil:
					t.Errorf("write %d: no error, but not stored: %v", i, got)
				case errs[i] != nil && !errors.Is(errs[i], errBad):
					t.Errorf("write %d: %v, want the failing write's error", i, errs[i])
				case errs[i] != nil && !errors.Is(got, store.ErrNotFound):
					t.Errorf("write %d failed but is stored", i)
				case i == tc.fail && errs[i] == nil:
					t.Errorf("the failing write %d got no error", i)
				}
				if errs[i] == nil {
					stored++
				}
			}
			if w := n.writes.Load(); w != int64(tc.writers) {
				t.Errorf("%d writes counted, want %d", w, tc.writers)
			}
			if c := n.commits.Load(); c < 1 || c > int64(tc.writers) {
				t.Errorf("%d commits for %d writes", c, tc.writers)
			}
			if tc.fail < 0 && stored != tc.writers {
				t.Errorf("%d of %d writes stored", stored, tc.writers)
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.leader || len(b.queue) > 0 {
				t.Errorf("after all writes: leader %v, %d queued", b.leader, len(b.queue))
			}
		})
	}
}
