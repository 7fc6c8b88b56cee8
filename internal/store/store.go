package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned by Kind.Get and Kind.Delete when no record has
// the key.
var ErrNotFound = errors.New("not found")

// ErrInUse is wrapped by the error Open returns when another process holds
// the store file.
var ErrInUse = errors.New("in use by another process")

// ErrCorrupt is wrapped by errors about bytes on disk this package cannot
// decode (a record, an index entry, a schema version).
var ErrCorrupt = errors.New("corrupt store data")

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = time.Second

// metaBucket holds the schema versions, one key per component.
var metaBucket = []byte("_meta")

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the file lock held by another process;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// Migrations to run at Open (see Migrate).
	Migrations []Migration
	// OnCommit, when set, is told how long each commit of an Update took
	// (from fn's return to the commit's end, fsync included); it must be
	// quick.
	OnCommit func(d time.Duration)
}

// Migration changes the stored data from Version-1 to Version of its
// component. Versions of a component start at 1 and are consecutive.
type Migration struct {
	Component string // who owns the data: "cap", "orchestrator", …
	Version   int
	Name      string // what it does, for error messages
	Up        func(tx *Tx) error
}

// DB is an open store. Close it when done.
type DB struct {
	bolt     *bolt.DB
	path     string
	onCommit func(time.Duration) // nil: none
}

// Open opens (creating if needed, mode 0600, parent directory 0700) the
// store at path and runs opts.Migrations. It fails with an error wrapping
// ErrInUse when another process holds the file for longer than
// opts.Timeout.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store %s is %w (is `dms run` running?)", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path, onCommit: opts.OnCommit}
	if err := db.Migrate(opts.Migrations...); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// Path returns the file the store lives in.
func (db *DB) Path() string { return db.path }

// Close releases the file. Transactions in progress finish first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// Tx is a transaction, read-only (View) or read-write (Update).
type Tx struct {
	tx *bolt.Tx
}

// Writable reports whether tx may write.
func (tx *Tx) Writable() bool { return tx.tx.Writable() }

// Update runs fn in a read-write transaction and commits it (durably) if fn
// returns nil; otherwise it rolls back and returns fn's error.
func (db *DB) Update(fn func(tx *Tx) error) error {
	if db.onCommit == nil {
		return db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
	}
	var start time.Time
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		err := fn(&Tx{tx: btx})
		start = time.Now()
		return err
	})
	if err == nil {
		db.onCommit(time.Since(start))
	}
	return err
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Migrate runs the migrations whose version is above the stored version of
// their component, in order, each in its own transaction with its version
// bump. It refuses a list with gaps and a store whose version of a
// component is newer than the list knows.
func (db *DB) Migrate(ms ...Migration) error {
	byComp := map[string][]Migration{}
	for _, m := range ms {
		if m.Component == "" || m.Up == nil {
			return fmt.Errorf("store migration %q: component and Up are required", m.Name)
		}
		byComp[m.Component] = append(byComp[m.Component], m)
	}
	comps := make([]string, 0, len(byComp))
	for c, list := range byComp {
		sort.Slice(list, func(i, j int) bool { return list[i].Version < list[j].Version })
		for i, m := range list {
			if m.Version != i+1 {
				return fmt.Errorf("store migrations of %s: want versions 1..%d in order, found %d at position %d", c, len(list), m.Version, i+1)
			}
		}
		comps = append(comps, c)
	}
	sort.Strings(comps)
	for _, c := range comps {
		list := byComp[c]
		cur, err := db.SchemaVersion(c)
		if err != nil {
			return err
		}
		if cur > len(list) {
			return fmt.Errorf("store %s: %s data is at schema version %d but this dms knows only up to %d: upgrade dms", db.path, c, cur, len(list))
		}
		for _, m := range list[cur:] {
			err := db.Update(func(tx *Tx) error {
				if err := m.Up(tx); err != nil {
					return err
				}
				return setVersion(tx, c, m.Version)
			})
			if err != nil {
				return fmt.Errorf("store %s: migrate %s to version %d (%s): %w", db.path, c, m.Version, m.Name, err)
			}
		}
	}
	return nil
}

// SchemaVersion returns the stored schema version of component (0 when it
// never migrated).
func (db *DB) SchemaVersion(component string) (int, error) {
	var v int
	err := db.View(func(tx *Tx) error {
		b := tx.tx.Bucket(metaBucket)
		if b == nil {
			return nil
		}
		var err error
		v, err = decodeVersion(b.Get(versionKey(component)))
		if err != nil {
			return fmt.Errorf("store %s: schema version of %s: %w", db.path, component, err)
		}
		return nil
	})
	return v, err
}

func versionKey(component string) []byte { return []byte("schema/" + component) }

func setVersion(tx *Tx, component string, v int) error {
	b, err := tx.tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return b.Put(versionKey(component), buf[:])
}

// decodeVersion decodes a stored schema version; nil means 0.
func decodeVersion(b []byte) (int, error) {
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: version is %d bytes, want 8", ErrCorrupt, len(b))
	}
	v := binary.BigEndian.Uint64(b)
	if v > 1<<31 {
		return 0, fmt.Errorf("%w: version %d out of range", ErrCorrupt, v)
	}
	return int(v), nil
}
