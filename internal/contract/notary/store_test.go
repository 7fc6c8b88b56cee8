package notary

import (
	"bytes"
	"path/filepath"
	"reflect"
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
		jsonRows  int                  // how many of rows are stored as JSON (a store written before the rows' codec)
	}{
		{name: "nothing pending", rows: []*contract.SignedNote{signed(0), signed(1)}, stateSeq: 1, wantAcc: 2, wantLast: chain[1].Hash},
		{name: "pending row", rows: []*contract.SignedNote{signed(0), signed(1), chain[2]}, stateSeq: 1, wantAcc: 2, wantLast: chain[2].Hash},
		{name: "first note pending", rows: []*contract.SignedNote{chain[0]}, wantAcc: 0, wantLast: chain[0].Hash},
		{name: "former layout: pending in the state", rows: []*contract.SignedNote{signed(0), signed(1)}, stateSeq: 1, stateLast: chain[2], wantAcc: 2, wantLast: chain[2].Hash},
		{name: "former layout: state's note countersigned since", rows: []*contract.SignedNote{signed(0), signed(1), signed(2)}, stateSeq: 1, stateLast: chain[1], wantAcc: 3, wantLast: chain[2].Hash},
		{name: "pending row wins over the state's", rows: []*contract.SignedNote{signed(0), signed(1), chain[2]}, stateSeq: 2, stateLast: chain[1], wantAcc: 2, wantLast: chain[2].Hash},
		{name: "JSON rows", rows: []*contract.SignedNote{signed(0), signed(1), chain[2]}, stateSeq: 1, wantAcc: 2, wantLast: chain[2].Hash, jsonRows: 3},
		{name: "JSON rows, then binary ones", rows: []*contract.SignedNote{signed(0), signed(1), signed(2), chain[3]}, stateSeq: 1, wantAcc: 3, wantLast: chain[3].Hash, jsonRows: 2},
		{name: "JSON rows, former layout", rows: []*contract.SignedNote{signed(0), signed(1)}, stateSeq: 1, stateLast: chain[2], wantAcc: 2, wantLast: chain[2].Hash, jsonRows: 2},
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
				for i, n := range tc.rows {
					put := putAccepted
					if i < tc.jsonRows {
						put = putAcceptedJSON
					}
					if err := put(tx, RoleProvider, n); err != nil {
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
			if got.Accepted != nil {
				if _, err := got.Accepted.open(); err != nil {
					t.Errorf("loadRow: Accepted does not open: %v", err)
				}
			}
			var listed []noteRow
			if err := db.View(func(tx *store.Tx) (err error) {
				listed, err = notes.List(tx, c.ID+"/")
				return err
			}); err != nil || len(listed) != len(tc.rows) {
				t.Fatalf("List: %d rows, %v; want %d", len(listed), err, len(tc.rows))
			}
			for i, nr := range listed {
				want := noteRow{Contract: c.ID, Role: RoleProvider, Seq: uint64(i + 1), Note: *storeNote(tc.rows[i])}
				if !reflect.DeepEqual(nr, want) {
					t.Errorf("row %d read back as %+v, want %+v", i+1, nr, want)
				}
			}
		})
	}
}

// jsonNotes is the note rows' kind as stores before the rows' codec wrote
// it: JSON.
var jsonNotes = store.NewKind("contract-notes", func(n noteRow) string { return noteKey(n.Contract, n.Role, n.Seq) })

func putAcceptedJSON(tx *store.Tx, role Role, n *contract.SignedNote) error {
	d := n.Note()
	return jsonNotes.Put(tx, noteRow{Contract: d.Contract, Role: role, Seq: d.Seq, Note: *storeNote(n)})
}

// FuzzNoteRow: a note row reads back as written, and arbitrary bytes
// decode or are refused, never more than they hold.
func FuzzNoteRow(f *testing.F) {
	f.Add("c1", "provider", uint64(1), "h", []byte(`{"seq":1}`), []byte{1, 2}, []byte{}, []byte{0, 1})
	f.Add("", "", uint64(1<<63), "", []byte{}, []byte{}, []byte{3}, []byte{0x80})
	f.Fuzz(func(t *testing.T, id, role string, seq uint64, hash string, body, psig, rsig, junk []byte) {
		nil0 := func(b []byte) []byte {
			if len(b) == 0 {
				return nil
			}
			return b
		}
		r := noteRow{Contract: id, Role: Role(role), Seq: seq, Note: storedNote{Hash: hash, Body: nil0(body), ProviderSig: nil0(psig), RequesterSig: nil0(rsig)}}
		enc, err := appendNoteRow([]byte{9}, r)
		if err != nil || enc[0] != 9 {
			t.Fatalf("encode: %v", err)
		}
		got, err := decodeNoteRow(enc[1:])
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, r)
		}
		if _, err := decodeNoteRow(enc[1 : len(enc)-1]); err == nil {
			t.Fatal("a truncated row decodes")
		}
		if _, err := decodeNoteRow(append(bytes.Clone(enc[1:]), 0)); err == nil {
			t.Fatal("a row with a trailing byte decodes")
		}
		if got, err := decodeNoteRow(junk); err == nil {
			if again, _ := appendNoteRow(nil, got); len(again) > len(junk) {
				t.Fatalf("decoded %d bytes into a row of %d", len(junk), len(again))
			}
		}
	})
}
