package notary

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/store"
)

// layoutRow is a stored note's size and shape for BenchmarkNoteCommitLayout.
type layoutRow struct {
	Key  string `json:"key"`
	Note []byte `json:"note"`
}

var layoutRows = store.NewKind("notary-layout-bench", func(r layoutRow) string { return r.Key })

// BenchmarkNoteCommitLayout is the CPU time of one requester commit (28
// countersigned notes of random contracts, the batch size of the cost
// test) as the store holds more notes, with notes keyed by contract
// (contract-notes: each note of a commit lands on its own leaf page) and,
// as the anchor, keyed by time (a log: a commit's notes are adjacent).
// It reports cpu-us/commit, the process's user and system time (the
// fsyncs' kernel work included) over the commits.
//
//	go test -run '^$' -bench NoteCommitLayout -benchtime 200x ./internal/contract/notary/
func BenchmarkNoteCommitLayout(b *testing.B) {
	const contracts, perCommit = 1000, 28
	note := make([]byte, 520) // a countersigned note: body and two signatures
	for _, stored := range []int{5, 100} {
		for _, layout := range []string{"by-contract", "by-time"} {
			b.Run(fmt.Sprintf("notes-per-contract=%d/%s", stored, layout), func(b *testing.B) {
				db, err := store.Open(filepath.Join(b.TempDir(), "s.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				seqs := make([]uint64, contracts)
				var clock uint64
				key := func(c int) string {
					seqs[c]++
					clock++
					id := fmt.Sprintf("%064x", c*2654435761) // spread like hashes
					if layout == "by-time" {
						return fmt.Sprintf("%020d/", clock) + id
					}
					return noteKey(id, RoleRequester, seqs[c])
				}
				for range stored {
					if err := db.Update(func(tx *store.Tx) error {
						for c := range contracts {
							if err := layoutRows.Put(tx, layoutRow{Key: key(c), Note: note}); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				c0 := selfCPU()
				n := 0
				for b.Loop() {
					if err := db.Update(func(tx *store.Tx) error {
						for range perCommit {
							if err := layoutRows.Put(tx, layoutRow{Key: key(rand.IntN(contracts)), Note: note}); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64((selfCPU()-c0)/time.Microsecond)/float64(n), "cpu-us/commit")
			})
		}
	}
}

// BenchmarkNoteRowCommit is BenchmarkNoteCommitLayout's by-contract case
// with real note rows, stored as JSON (stores before the rows' codec) and
// in the rows' binary encoding: the CPU time of one commit of 28 notes
// of random contracts among 1,000 with 5 notes each stored.
//
//	go test -run '^$' -bench NoteRowCommit -benchtime 200x -count 3 ./internal/contract/notary/
func BenchmarkNoteRowCommit(b *testing.B) {
	const contracts, perCommit, stored = 1000, 28, 5
	body := []byte(`{"contract":"` + fmt.Sprintf("%064x", 1) + `","seq":12,"prev":"` + fmt.Sprintf("%064x", 2) +
		`","time":"2026-12-05T15:00:00.123456789Z","usage":{"cpu_us":123456,"memory_byte_s":987654321,"wall_ms":120000},"amount":1234}`)
	sig := make([]byte, 64)
	for _, kind := range []struct {
		name string
		k    *store.Kind[noteRow]
	}{{"json", jsonNotes}, {"binary", notes}} {
		b.Run(kind.name, func(b *testing.B) {
			db, err := store.Open(filepath.Join(b.TempDir(), "s.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			seqs := make([]uint64, contracts)
			row := func(c int) noteRow {
				seqs[c]++
				return noteRow{Contract: fmt.Sprintf("%064x", c*2654435761), Role: RoleRequester, Seq: seqs[c],
					Note: storedNote{Hash: fmt.Sprintf("%064x", seqs[c]), Body: body, ProviderSig: sig, RequesterSig: sig}}
			}
			for range stored {
				if err := db.Update(func(tx *store.Tx) error {
					for c := range contracts {
						if err := kind.k.Put(tx, row(c)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			c0 := selfCPU()
			n := 0
			for b.Loop() {
				if err := db.Update(func(tx *store.Tx) error {
					for range perCommit {
						if err := kind.k.Put(tx, row(rand.IntN(contracts))); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64((selfCPU()-c0)/time.Microsecond)/float64(n), "cpu-us/commit")
		})
	}
}
