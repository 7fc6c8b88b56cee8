package resource

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Persister keeps the Ledger's state (one JSON document). The node backs it
// with the store; FilePersister and MemPersister serve tests and tools.
type Persister interface {
	// Load returns the last saved document, or nil and no error (or an
	// error wrapping fs.ErrNotExist) when none was saved.
	Load() ([]byte, error)
	// Save stores data durably: after it returns nil, a crash does not
	// lose it.
	Save(data []byte) error
}

// FilePersister keeps the state in one file, replaced atomically (write a
// temporary file, fsync, rename, fsync the directory).
type FilePersister struct {
	Path string
}

var _ Persister = (*FilePersister)(nil)

// Load reads the file; a missing file is nothing saved.
func (p *FilePersister) Load() ([]byte, error) {
	b, err := os.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save replaces the file atomically.
func (p *FilePersister) Save(data []byte) error {
	dir := filepath.Dir(p.Path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p.Path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.Path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MemPersister keeps the state in memory: a restart within one process (a
// new Ledger on the same MemPersister) sees it.
type MemPersister struct {
	mu    sync.Mutex
	data  []byte // guarded by mu
	saves int    // guarded by mu
}

var _ Persister = (*MemPersister)(nil)

// Load returns a copy of the last saved document.
func (p *MemPersister) Load() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.data), nil
}

// Save keeps a copy of data.
func (p *MemPersister) Save(data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.data = slices.Clone(data)
	p.saves++
	return nil
}

// Saves is how many times Save was called.
func (p *MemPersister) Saves() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saves
}
