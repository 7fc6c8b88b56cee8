package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type job struct {
	ID    string   `json:"id"`
	State string   `json:"state"`
	Owner string   `json:"owner"`
	Tags  []string `json:"tags,omitempty"`
}

func jobKind() *Kind[job] {
	return NewKind("jobs", func(j job) string { return j.ID },
		IndexOn("state", func(j job) string { return j.State }),
		IndexOn("owner", func(j job) string { return j.Owner }),
		Index[job]{Name: "tag", Values: func(j job) []string { return j.Tags }},
	)
}

func openTemp(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "data", "dms.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ids(js []job) []string {
	out := []string{}
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func TestKindOperations(t *testing.T) {
	jobs := jobKind()
	seed := []job{
		{ID: "a1", State: "running", Owner: "alice", Tags: []string{"gpu", "eu"}},
		{ID: "a2", State: "queued", Owner: "alice", Tags: []string{"eu"}},
		{ID: "b1", State: "running", Owner: "bob"},
		{ID: "b2", State: "", Owner: "bob"}, // empty value: not indexed
	}
	tests := []struct {
		name  string
		write func(tx *Tx) error // run after seeding, in its own Update
		read  func(tx *Tx) ([]job, error)
		want  []string
	}{
		{"get", nil, func(tx *Tx) ([]job, error) {
			j, err := jobs.Get(tx, "a2")
			return []job{j}, err
		}, []string{"a2"}},
		{"list all", nil, func(tx *Tx) ([]job, error) { return jobs.List(tx, "") }, []string{"a1", "a2", "b1", "b2"}},
		{"list prefix", nil, func(tx *Tx) ([]job, error) { return jobs.List(tx, "b") }, []string{"b1", "b2"}},
		{"list no match", nil, func(tx *Tx) ([]job, error) { return jobs.List(tx, "z") }, []string{}},
		{"find", nil, func(tx *Tx) ([]job, error) { return jobs.Find(tx, "state", "running") }, []string{"a1", "b1"}},
		{"find multi-valued", nil, func(tx *Tx) ([]job, error) { return jobs.Find(tx, "tag", "eu") }, []string{"a1", "a2"}},
		{"find is exact, not prefix", nil, func(tx *Tx) ([]job, error) { return jobs.Find(tx, "state", "run") }, []string{}},
		{"empty values not indexed", nil, func(tx *Tx) ([]job, error) { return jobs.Find(tx, "state", "") }, []string{}},
		{"update moves index entries", func(tx *Tx) error {
			return jobs.Put(tx, job{ID: "a1", State: "done", Owner: "alice"})
		}, func(tx *Tx) ([]job, error) {
			r, err := jobs.Find(tx, "state", "running")
			if err != nil {
				return nil, err
			}
			g, err := jobs.Find(tx, "tag", "gpu")
			d, _ := jobs.Find(tx, "state", "done")
			return append(append(r, g...), d...), err
		}, []string{"b1", "a1"}},
		{"delete removes index entries", func(tx *Tx) error { return jobs.Delete(tx, "b1") },
			func(tx *Tx) ([]job, error) {
				r, err := jobs.Find(tx, "owner", "bob")
				return r, err
			}, []string{"b2"}},
		{"multi-kind transaction rolls back together", func(tx *Tx) error {
			other := NewKind("other", func(s string) string { return s })
			if err := other.Put(tx, "x"); err != nil {
				return err
			}
			if err := jobs.Put(tx, job{ID: "c1", State: "running"}); err != nil {
				return err
			}
			return errors.New("abort")
		}, func(tx *Tx) ([]job, error) {
			other := NewKind("other", func(s string) string { return s })
			if o, _ := other.List(tx, ""); len(o) != 0 {
				return nil, errors.New("other kind kept a rolled-back write")
			}
			return jobs.Find(tx, "state", "running")
		}, []string{"a1", "b1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t, Options{})
			err := db.Update(func(tx *Tx) error {
				for _, j := range seed {
					if err := jobs.Put(tx, j); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.write != nil {
				if err := db.Update(tt.write); err != nil && err.Error() != "abort" {
					t.Fatal(err)
				}
			}
			var got []job
			err = db.View(func(tx *Tx) error {
				var err error
				got, err = tt.read(tx)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !reflect.DeepEqual(g, tt.want) {
				t.Fatalf("got %v, want %v", g, tt.want)
			}
		})
	}
}

func TestKindErrors(t *testing.T) {
	db := openTemp(t, Options{})
	jobs := jobKind()
	tests := []struct {
		name string
		run  func() error
		is   error  // errors.Is target, or nil
		want string // substring
	}{
		{"get missing", func() error {
			return db.View(func(tx *Tx) error { _, err := jobs.Get(tx, "nope"); return err })
		}, ErrNotFound, `jobs "nope": not found`},
		{"get from never-written kind", func() error {
			k := NewKind("empty", func(s string) string { return s })
			return db.View(func(tx *Tx) error { _, err := k.Get(tx, "x"); return err })
		}, ErrNotFound, "not found"},
		{"delete missing", func() error {
			return db.Update(func(tx *Tx) error { return jobs.Delete(tx, "nope") })
		}, ErrNotFound, "not found"},
		{"empty key", func() error {
			return db.Update(func(tx *Tx) error { return jobs.Put(tx, job{}) })
		}, nil, "empty key"},
		{"put in view", func() error {
			return db.View(func(tx *Tx) error { return jobs.Put(tx, job{ID: "x"}) })
		}, nil, "read-only transaction"},
		{"unknown index", func() error {
			return db.View(func(tx *Tx) error { _, err := jobs.Find(tx, "color", "red"); return err })
		}, nil, `no index "color"`},
		{"NUL in index value", func() error {
			return db.Update(func(tx *Tx) error { return jobs.Put(tx, job{ID: "x", State: "a\x00b"}) })
		}, nil, "NUL byte"},
		{"reserved kind name", func() error {
			k := NewKind("_meta", func(s string) string { return s })
			return db.Update(func(tx *Tx) error { return k.Put(tx, "x") })
		}, nil, "must be non-empty and not start with _"},
		{"duplicate index", func() error {
			k := NewKind("dup", func(s string) string { return s },
				IndexOn("a", func(s string) string { return s }), IndexOn("a", func(s string) string { return s }))
			return db.View(func(tx *Tx) error { _, err := k.List(tx, ""); return err })
		}, nil, "declared twice"},
		{"unencodable value", func() error {
			k := NewKind("funcs", func(f func()) string { return "f" })
			return db.Update(func(tx *Tx) error { return k.Put(tx, func() {}) })
		}, nil, "encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %q (is %v)", err, tt.want, tt.is)
			}
		})
	}
}

func TestCorruptRecord(t *testing.T) {
	db := openTemp(t, Options{})
	jobs := jobKind()
	err := db.Update(func(tx *Tx) error {
		if err := jobs.Put(tx, job{ID: "a", State: "s"}); err != nil {
			return err
		}
		// Overwrite the stored bytes behind the typed API.
		return tx.tx.Bucket([]byte("jobs")).Bucket(dataBucket).Put([]byte("a"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error { _, err := jobs.Get(tx, "a"); return err })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "jobs/a") {
		t.Fatalf("Get of corrupt record = %v, want ErrCorrupt naming jobs/a", err)
	}
	// A corrupt record can still be overwritten and deleted.
	err = db.Update(func(tx *Tx) error {
		if err := jobs.Put(tx, job{ID: "a", State: "t"}); err != nil {
			return err
		}
		return jobs.Delete(tx, "a")
	})
	if err != nil {
		t.Fatalf("overwrite and delete a corrupt record: %v", err)
	}
}

func TestReindex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dms.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := NewKind("jobs", func(j job) string { return j.ID })
	err = db.Update(func(tx *Tx) error {
		for _, j := range []job{{ID: "a", Owner: "x"}, {ID: "b", Owner: "y"}} {
			if err := v1.Put(tx, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Release 2 adds an owner index and a migration that rebuilds it.
	v2 := jobKind()
	db, err = Open(path, Options{Migrations: []Migration{{Component: "jobs", Version: 1, Name: "index owner", Up: v2.Reindex}}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []job
	db.View(func(tx *Tx) error { got, err = v2.Find(tx, "owner", "y"); return err })
	if err != nil || !reflect.DeepEqual(ids(got), []string{"b"}) {
		t.Fatalf("Find after Reindex = %v, %v; want [b]", ids(got), err)
	}
}

func TestMigrations(t *testing.T) {
	counter := NewKind("counter", func(s string) string { return s })
	step := func(v int, name string) Migration {
		return Migration{Component: "test", Version: v, Name: name, Up: func(tx *Tx) error { return counter.Put(tx, name) }}
	}
	tests := []struct {
		name    string
		first   []Migration // run at a first Open (if any)
		second  []Migration
		wantErr string
		want    []string // records after the second Open
		version int
	}{
		{"fresh store runs all in order", nil, []Migration{step(2, "b"), step(1, "a")}, "", []string{"a", "b"}, 2},
		{"only pending ones run", []Migration{step(1, "a")}, []Migration{step(1, "a-again"), step(2, "b")}, "", []string{"a", "b"}, 2},
		{"gap refused", nil, []Migration{step(1, "a"), step(3, "c")}, "want versions 1..2 in order", nil, 0},
		{"newer store refused", []Migration{step(1, "a"), step(2, "b")}, []Migration{step(1, "a")}, "schema version 2 but this dms knows only up to 1", nil, 0},
		{"failing migration rolls back", nil, []Migration{step(1, "a"), {Component: "test", Version: 2, Name: "boom", Up: func(tx *Tx) error {
			counter.Put(tx, "half")
			return errors.New("boom")
		}}}, "migrate test to version 2 (boom): boom", []string{"a"}, 1},
		{"missing component", nil, []Migration{{Version: 1, Up: func(*Tx) error { return nil }}}, "component and Up are required", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dms.db")
			if tt.first != nil {
				db, err := Open(path, Options{Migrations: tt.first})
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			db, err := Open(path, Options{Migrations: tt.second})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v, want error containing %q", err, tt.wantErr)
				}
				if tt.want == nil {
					return
				}
				db, err = Open(path, Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got []string
			db.View(func(tx *Tx) error { got, err = counter.List(tx, ""); return err })
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("records = %v, want %v", got, tt.want)
			}
			if v, _ := db.SchemaVersion("test"); v != tt.version {
				t.Fatalf("version = %d, want %d", v, tt.version)
			}
		})
	}
}

func TestOpenInUseAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "dms.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode = %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode = %v, want 0700", st.Mode().Perm())
	}
	// bbolt's flock is per open file description, so a second Open in this
	// process contends like another process would.
	_, err = Open(path, Options{Timeout: 50 * time.Millisecond})
	want := "store " + path + " is in use by another process (is `dms run` running?)"
	if !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Fatalf("second Open = %v, want %q", err, want)
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	tests := []struct{ name, path, want string }{
		{"parent is a file", filepath.Join(file, "dms.db"), "open store"},
		{"not a bolt file", file, "open store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.path, Options{Timeout: 50 * time.Millisecond})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"a","state":"s","tags":["x"]}`), []byte(`[["state","s"]]`), []byte("v\x00k"))
	f.Add([]byte(`null`), []byte(`[[1,2]]`), []byte("nosep"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte(`[]`), []byte{0})
	f.Fuzz(func(t *testing.T, rec, entries, ikey []byte) {
		if _, err := decodeRecord[job]("jobs", "k", rec); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeRecord error does not wrap ErrCorrupt: %v", err)
		}
		if _, err := decodeEntries("jobs", "k", entries); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeEntries error does not wrap ErrCorrupt: %v", err)
		}
		if v, k, err := splitIndexKey(ikey); err == nil && string(indexKey(v, k)) != string(ikey) {
			t.Fatalf("splitIndexKey(%q) = %q, %q: does not round-trip", ikey, v, k)
		}
		if _, err := decodeVersion(rec); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeVersion error does not wrap ErrCorrupt: %v", err)
		}
	})
}
