package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// jobCodec is a toy encoding of a job: its fields joined by '|'.
var jobCodec = Codec[job]{
	Encode: func(b []byte, j job) ([]byte, error) {
		return fmt.Appendf(b, "%s|%s|%s|%s", j.ID, j.State, j.Owner, strings.Join(j.Tags, ",")), nil
	},
	Decode: func(data []byte) (job, error) {
		f := strings.Split(string(data), "|")
		if len(f) != 4 {
			return job{}, fmt.Errorf("%d fields", len(f))
		}
		j := job{ID: f[0], State: f[1], Owner: f[2]}
		if f[3] != "" {
			j.Tags = strings.Split(f[3], ",")
		}
		return j, nil
	},
}

// TestCodec: a kind with a codec writes its records in it, reads them
// back, still reads the records written as JSON before it had one, finds
// both by its indexes, and reports bytes its codec refuses as corrupt.
func TestCodec(t *testing.T) {
	db := openTemp(t, Options{})
	plain := jobKind()
	coded := plain.WithCodec(jobCodec)
	old := job{ID: "a1", State: "running", Owner: "alice", Tags: []string{"gpu"}}
	fresh := job{ID: "a2", State: "running", Owner: "bob"}
	if err := db.Update(func(tx *Tx) error {
		if err := plain.Put(tx, old); err != nil { // JSON, as before the codec
			return err
		}
		return coded.Put(tx, fresh)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *Tx) error {
		raw := tx.tx.Bucket([]byte("jobs")).Bucket(dataBucket)
		if got := raw.Get([]byte("a1")); got[0] != '{' {
			t.Errorf("plain kind stored %q", got)
		}
		if got := raw.Get([]byte("a2")); got[0] != codecTag || string(got[1:]) != "a2|running|bob|" {
			t.Errorf("coded kind stored %q", got)
		}
		for _, want := range []job{old, fresh} {
			got, err := coded.Get(tx, want.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Get %s = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		all, err := coded.Find(tx, "state", "running")
		if err != nil || !reflect.DeepEqual(ids(all), []string{"a1", "a2"}) {
			t.Errorf("Find = %v, %v", ids(all), err)
		}
		all, err = coded.List(tx, "")
		if err != nil || len(all) != 2 {
			t.Errorf("List = %v, %v", ids(all), err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Replaced by a coded record: the old index entries go.
	if err := db.Update(func(tx *Tx) error {
		return coded.Put(tx, job{ID: "a1", State: "done", Owner: "alice"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		if all, err := coded.Find(tx, "state", "running"); err != nil || len(all) != 1 {
			t.Errorf("after replace, running = %v, %v", ids(all), err)
		}
		raw := tx.tx.Bucket([]byte("jobs")).Bucket(dataBucket)
		if err := raw.Put([]byte("a3"), []byte{codecTag, 'x'}); err != nil {
			return err
		}
		if _, err := coded.Get(tx, "a3"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get of a bad coded record: %v, want ErrCorrupt", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *Tx) error {
		_, err := plain.WithCodec(Codec[job]{}).Get(tx, "a1")
		if err == nil {
			t.Error("a codec without functions is accepted")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
