package store

import (
	"encoding/json"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Benchmarks of the typed layer, each beside its anchor: the same operation
// on raw bbolt (same record, JSON-encoded by the caller).
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/store/

const benchRecords = 10000

func seedBench(b *testing.B) (*DB, *Kind[job]) {
	db := openTemp(b, Options{})
	jobs := jobKind()
	err := db.Update(func(tx *Tx) error {
		for i := range benchRecords {
			if err := jobs.Put(tx, benchJob(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return db, jobs
}

func benchJob(i int) job {
	return job{ID: fmt.Sprintf("job-%06d", i), State: fmt.Sprintf("s%d", i%100), Owner: "did:key:z6Mkowner", Tags: []string{"eu"}}
}

func BenchmarkPut(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		db, jobs := seedBench(b)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			err := db.Update(func(tx *Tx) error { return jobs.Put(tx, benchJob(i%benchRecords)) })
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same record kind without its three indexes: what the indexes
	// cost (each is a B+tree whose pages the commit writes).
	b.Run("store-no-index", func(b *testing.B) {
		db, _ := seedBench(b)
		plain := NewKind("plain", func(j job) string { return j.ID })
		db.Update(func(tx *Tx) error {
			for i := range benchRecords {
				plain.Put(tx, benchJob(i))
			}
			return nil
		})
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			err := db.Update(func(tx *Tx) error { return plain.Put(tx, benchJob(i%benchRecords)) })
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anchor-raw-bbolt", func(b *testing.B) {
		db, _ := seedBench(b)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			j := benchJob(i % benchRecords)
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("raw"))
				if err != nil {
					return err
				}
				data, _ := json.Marshal(j)
				return bk.Put([]byte(j.ID), data)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	// Many puts per transaction: the cost of the typed layer without fsync.
	b.Run("store-batched-1000", func(b *testing.B) {
		db, jobs := seedBench(b)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if i%1000 == 0 {
				db.Update(func(tx *Tx) error {
					for k := range 1000 {
						if err := jobs.Put(tx, benchJob((i+k)%benchRecords)); err != nil {
							return err
						}
					}
					return nil
				})
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	db, jobs := seedBench(b)
	// Raw copy of the records for the anchor.
	db.Update(func(tx *Tx) error {
		bk, _ := tx.tx.CreateBucketIfNotExists([]byte("raw"))
		for i := range benchRecords {
			j := benchJob(i)
			data, _ := json.Marshal(j)
			bk.Put([]byte(j.ID), data)
		}
		return nil
	})
	b.Run("store", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			err := db.View(func(tx *Tx) error {
				_, err := jobs.Get(tx, benchJob(i%benchRecords).ID)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anchor-raw-bbolt", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			err := db.bolt.View(func(tx *bolt.Tx) error {
				var j job
				return json.Unmarshal(tx.Bucket([]byte("raw")).Get([]byte(benchJob(i%benchRecords).ID)), &j)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFind finds the 100 records of one state among 10,000.
func BenchmarkFind(b *testing.B) {
	db, jobs := seedBench(b)
	b.Run("store-index-100-of-10000", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			err := db.View(func(tx *Tx) error {
				got, err := jobs.Find(tx, "state", fmt.Sprintf("s%d", i%100))
				if len(got) != benchRecords/100 {
					return fmt.Errorf("found %d", len(got))
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anchor-full-scan-10000", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			want := fmt.Sprintf("s%d", i%100)
			n := 0
			err := db.View(func(tx *Tx) error {
				all, err := jobs.List(tx, "")
				for _, j := range all {
					if j.State == want {
						n++
					}
				}
				return err
			})
			if err != nil || n != benchRecords/100 {
				b.Fatal(err, n)
			}
		}
	})
}
