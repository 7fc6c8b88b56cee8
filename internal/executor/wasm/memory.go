package wasm

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// memory is a module instance's linear memory. It refuses to grow past its
// limit and remembers that it did (so an end that follows is an
// out-of-memory end), and tracks the peak size.
//
// Where it can (Linux), it maps the whole limit at once as anonymous,
// unreserved memory: pages cost nothing until touched, growing never
// copies, and the Go heap and its garbage collector never see the module's
// memory. wazero calls Free when the module closes, which may be while its
// code still runs (a cancelled context closes the module from another
// goroutine), so the mapping is released by release, once the instance
// has returned.
type memory struct {
	limit   uint64
	refused atomic.Bool
	peak    atomic.Uint64
	size    atomic.Uint64 // the memory's size now (Stats)

	buf    []byte // the memory; its capacity is all that can be used without copying
	mapped []byte // the mapping behind buf, nil when buf is on the Go heap
}

var _ experimental.MemoryAllocator = (*memory)(nil)

// Allocate implements experimental.MemoryAllocator.
func (m *memory) Allocate(capacity, maxSize uint64) experimental.LinearMemory {
	if b, ok := mapMemory(min(maxSize, m.limit)); ok {
		m.mapped, m.buf = b, b[:0]
	} else {
		m.buf = make([]byte, 0, min(capacity, m.limit))
	}
	return m
}

// Reallocate implements experimental.LinearMemory.
func (m *memory) Reallocate(size uint64) []byte {
	if size > m.limit && size > uint64(len(m.buf)) {
		m.refused.Store(true)
		return nil
	}
	switch {
	case size <= uint64(cap(m.buf)):
		m.buf = m.buf[:size]
	case m.mapped != nil:
		m.refused.Store(true) // past a module's own maximum
		return nil
	default:
		grown := make([]byte, size, min(m.limit, max(size, 2*uint64(cap(m.buf)))))
		copy(grown, m.buf)
		m.buf = grown
	}
	if size > m.peak.Load() {
		m.peak.Store(size)
	}
	m.size.Store(size)
	return m.buf
}

// Free implements experimental.LinearMemory. It does nothing: see release.
func (m *memory) Free() {}

// release gives the memory back; the instance must not run any more.
func (m *memory) release() {
	if m.mapped != nil {
		unmapMemory(m.mapped)
		m.mapped = nil
	}
	m.buf = nil
	m.size.Store(0)
}
