package resource

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/dmsnet/dms/internal/atomicfile"
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

// FilePersister keeps the state in one file (mode 0600), replaced with
// atomicfile.WriteFile.
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
	return atomicfile.WriteFile(p.Path, data, 0o600)
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
