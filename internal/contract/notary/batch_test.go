package notary

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
			b.q.mu.Lock()
			defer b.q.mu.Unlock()
			if b.q.leader || len(b.q.queue) > 0 {
				t.Errorf("after all writes: leader %v, %d queued", b.q.leader, len(b.q.queue))
			}
		})
	}
}

type testItem struct {
	slot
	runs int // set by the batch
}

// The leader queue runs every item exactly once, in batches of at most
// its limit, and leaves no leader and nothing queued behind.
func TestLeaderQueue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		callers int
		window  time.Duration
		limit   int
	}{
		{"one", 1, 0, 0},
		{"many, no limit", 64, time.Millisecond, 0},
		{"many, limit 3", 64, time.Millisecond, 3},
		{"many at once, limit 1", 32, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q leaderQueue[*testItem]
			var mu sync.Mutex
			var batches, largest int
			items := make([]*testItem, tc.callers)
			var wg sync.WaitGroup
			for i := range tc.callers {
				items[i] = &testItem{slot: newSlot()}
				wg.Go(func() {
					q.run(items[i], tc.window, tc.limit, func(b []*testItem) {
						mu.Lock()
						batches++
						largest = max(largest, len(b))
						mu.Unlock()
						for _, x := range b {
							x.runs++
						}
					})
				})
			}
			wg.Wait()
			for i, x := range items {
				if x.runs != 1 {
					t.Errorf("item %d ran %d times, want 1", i, x.runs)
				}
			}
			if tc.limit > 0 && largest > tc.limit {
				t.Errorf("a batch of %d items, limit %d", largest, tc.limit)
			}
			if batches < 1 || batches > tc.callers {
				t.Errorf("%d batches for %d items", batches, tc.callers)
			}
			if q.leader || len(q.queue) > 0 {
				t.Errorf("after all items: leader %v, %d queued", q.leader, len(q.queue))
			}
		})
	}
}
