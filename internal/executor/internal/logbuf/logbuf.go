// Package logbuf keeps the output of one in-process instance (wasm, vm, the
// fake executor): two streams that the workload appends to and any number
// of readers copy, with follow and tail. Each stream keeps at most a fixed
// number of bytes; when it grows past that, the oldest output is dropped.
package logbuf

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// DefaultLimit is the bytes kept per stream when New is given 0.
const DefaultLimit = 8 << 20

// Buffer holds the stdout and stderr of one instance. It is safe for
// concurrent use.
type Buffer struct {
	limit int

	mu      sync.Mutex
	streams [2]stream     // guarded by mu: stdout, stderr
	closed  bool          // guarded by mu: no more output will come
	changed chan struct{} // guarded by mu: closed and replaced on every change
}

type stream struct {
	data []byte
	base int64 // offset of data[0] in the whole stream (bytes dropped before it)
}

// New returns an empty buffer keeping at most limit bytes per stream (0
// means DefaultLimit).
func New(limit int) *Buffer {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Buffer{limit: limit, changed: make(chan struct{})}
}

// Stdout returns the writer of the standard output stream.
func (b *Buffer) Stdout() io.Writer { return writer{b, 0} }

// Stderr returns the writer of the standard error stream.
func (b *Buffer) Stderr() io.Writer { return writer{b, 1} }

type writer struct {
	b *Buffer
	i int
}

func (w writer) Write(p []byte) (int, error) {
	w.b.write(w.i, p)
	return len(p), nil
}

func (b *Buffer) write(i int, p []byte) {
	if len(p) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	s := &b.streams[i]
	s.data = append(s.data, p...)
	if len(s.data) > b.limit {
		// Drop down to three quarters of the limit, at a line start if
		// one is near, so readers never see half a line. A new array:
		// readers may still hold slices of the old one.
		cut := len(s.data) - b.limit*3/4
		if nl := bytes.IndexByte(s.data[cut:], '\n'); nl >= 0 && nl < b.limit/4 {
			cut += nl + 1
		}
		s.data = append([]byte(nil), s.data[cut:]...)
		s.base += int64(cut)
	}
	b.notifyLocked()
}

func (b *Buffer) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Close marks the end of output: followers return once they have written
// everything. Writes after Close are dropped.
func (b *Buffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.notifyLocked()
	}
}

// Closed reports whether Close was called.
func (b *Buffer) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Copy writes the streams to stdout and stderr. With tail > 0 it starts at
// the last tail lines of each stream. Without follow it returns after
// writing what is there; with follow it returns nil once the buffer is
// closed and drained, or ctx.Err() when ctx is done first. A nil writer
// discards its stream.
func (b *Buffer) Copy(ctx context.Context, follow bool, tail int, stdout, stderr io.Writer) error {
	outs := [2]io.Writer{stdout, stderr}
	var off [2]int64
	b.mu.Lock()
	for i := range b.streams {
		s := &b.streams[i]
		off[i] = s.base
		if tail > 0 {
			off[i] = s.base + int64(tailStart(s.data, tail))
		}
	}
	b.mu.Unlock()

	for {
		var chunks [2][]byte
		b.mu.Lock()
		for i := range b.streams {
			s := &b.streams[i]
			if off[i] < s.base {
				off[i] = s.base // dropped while we were writing
			}
			chunks[i] = s.data[off[i]-s.base:]
			off[i] += int64(len(chunks[i]))
		}
		closed, changed := b.closed, b.changed
		b.mu.Unlock()

		for i, c := range chunks {
			if len(c) > 0 && outs[i] != nil {
				if _, err := outs[i].Write(c); err != nil {
					return err
				}
			}
		}
		if !follow || closed && len(chunks[0])+len(chunks[1]) == 0 {
			return nil
		}
		if len(chunks[0])+len(chunks[1]) > 0 {
			continue // more may have come while we wrote
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Tail returns the last n lines of a stream (0 for stdout, 1 for stderr).
func (b *Buffer) Tail(i, n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.streams[i].data
	return string(d[tailStart(d, n):])
}

// tailStart returns the index in d where its last n lines start. A final
// line without a newline counts as a line.
func tailStart(d []byte, n int) int {
	end := len(d)
	if end > 0 && d[end-1] == '\n' {
		end--
	}
	for ; n > 0; n-- {
		i := bytes.LastIndexByte(d[:end], '\n')
		if i < 0 {
			return 0
		}
		if n == 1 {
			return i + 1
		}
		end = i
	}
	return len(d)
}
