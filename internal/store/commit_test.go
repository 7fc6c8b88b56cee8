package store

import (
	"errors"
	"testing"
	"time"
)

// TestOnCommit: Options.OnCommit hears of every Update that committed,
// and of none that rolled back.
func TestOnCommit(t *testing.T) {
	var got []time.Duration
	db := openTemp(t, Options{OnCommit: func(d time.Duration) { got = append(got, d) }})
	jobs := jobKind()
	for _, tc := range []struct {
		name string
		fn   func(tx *Tx) error
		want int
	}{
		{"commit", func(tx *Tx) error { return jobs.Put(tx, job{ID: "j1", State: "new"}) }, 1},
		{"rollback", func(tx *Tx) error { return errors.New("no") }, 1},
		{"another commit", func(tx *Tx) error { return jobs.Put(tx, job{ID: "j2", State: "new"}) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = db.Update(tc.fn)
			if len(got) != tc.want {
				t.Fatalf("OnCommit called %d times, want %d", len(got), tc.want)
			}
			if got[len(got)-1] < 0 {
				t.Fatalf("commit latency %v < 0", got[len(got)-1])
			}
		})
	}
}
