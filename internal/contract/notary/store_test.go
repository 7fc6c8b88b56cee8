package notary

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/store"
)

// TestLoadRowLayouts: a provider's note that is not countersigned is
// found under its seq in the notes (this layout) or in the state (stores
// written before it), and a countersigned note always wins over a stale
// copy in the state.
func TestLoadRowLayouts(t *testing.T) {
	w := newWorld(t)
	defer w.close()
	c := w.place(w.terms("dep1", 0))
	pk, rk := w.prov.key, w.req.key
	now := time.Now().UTC()
	var chain []*contract.SignedNote // issued notes 1..4, not countersigned
	var prev *contract.SignedNote
	for i := range 4 {
		n, err := c.Issue(pk, prev, now.Add(time.Duration(i)*interval), contract.Usage{CPUMicros: uint64(i+1) * 1000}, false)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, n)
		cs := *n
		cs.Countersign(rk)
		prev = &cs
	}
	signed := func(i int) *contract.SignedNote { // note i+1, countersigned
		cs := *chain[i]
		cs.Countersign(rk)
		return &cs
	}
	for _, tc := range []struct {
		name      string
		rows      []*contract.SignedNote // stored under their seq
		stateSeq  uint64
		stateLast *contract.SignedNote // the former layout's pending note
		wantAcc   uint64               // seq of Accepted (0: none)
		wantLast  string               // hash of Last
	}{
		{name: "nothing pending", rows: []*contract.SignedNote{signed(0), signed(1)}, stateSeq: 1, wantAcc: 2, wantLast: chain[1].Hash},
		{name: "pending row", rows: []*contract.SignedNote{signed(0), signed(1), chain[2]}, stateSeq: 1, wantAcc: 2, wantLast: chain[2].Hash},
		{name: "first note pending", rows: []*contract.SignedNote{chain[0]}, wantAcc: 0, wantLast: chain[0].Hash},
		{name: "former layout: pending in the state", rows: []*contract.SignedNote{signed(0), signed(1)}, stateSeq: 1, stateLast: chain[2], wantAcc: 2, wantLast: chain[2].Hash},
		{name: "former layout: state's note countersigned since", rows: []*contract.SignedNote{signed(0), signed(1), signed(2)}, stateSeq: 1, stateLast: chain[1], wantAcc: 3, wantLast: chain[2].Hash},
		{name: "pending row wins over the state's", rows: []*contract.SignedNote{signed(0), signed(1), chain[2]}, stateSeq: 2, stateLast: chain[1], wantAcc: 2, wantLast: chain[2].Hash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cr := contractRow{ID: c.ID, Role: RoleProvider, Contract: storeContract(c)}
			var got row
			err = db.Update(func(tx *store.Tx) error {
				if err := contracts.Put(tx, cr); err != nil {
					return err
				}
				if err := states.Put(tx, stateRow{ID: c.ID, Role: RoleProvider, State: StateActive, Seq: tc.stateSeq, Last: storeNote(tc.stateLast)}); err != nil {
					return err
				}
				for _, n := range tc.rows {
					if err := putAccepted(tx, RoleProvider, n); err != nil {
						return err
					}
				}
				got, err = loadRow(tx, cr)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.AcceptedSeq != tc.wantAcc {
				t.Errorf("loadRow: Accepted seq = %d, want %d", got.AcceptedSeq, tc.wantAcc)
			}
			if got.Last == nil || got.Last.Hash != tc.wantLast {
				t.Errorf("loadRow: Last = %v, want note %s", got.Last, tc.wantLast)
			}
			if got.Accepted != nil && len(got.Accepted.RequesterSig) == 0 {
				t.Error("loadRow: Accepted is not countersigned")
			}
		})
	}
}
