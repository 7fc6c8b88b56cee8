package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/executor"
)

// Entry is an executor's own instance type: any type that embeds
// *Instance (the method is unexported, so embedding is the only way).
type Entry interface {
	instance() *Instance
}

// Table holds the instances of one executor by ID. The zero value is not
// usable: create it with NewTable.
type Table[T Entry] struct {
	name string // the executor's name: "wasm", "vm", "fake"
	// released is closed when the first Close is done. Not a sync.Once:
	// a later Close waiting on a channel is durably blocked in a
	// testing/synctest bubble, one waiting on a mutex is not.
	released chan struct{}

	mu     sync.Mutex
	byID   map[string]T // guarded by mu
	closed bool         // guarded by mu: Close was called
}

// NewTable returns an empty table for the executor called name, which
// prefixes its instance IDs (name-<16 hex digits>) and its errors
// ("name: ...").
func NewTable[T Entry](name string) *Table[T] {
	return &Table[T]{name: name, byID: map[string]T{}, released: make(chan struct{})}
}

// Err returns nil while the table takes new instances, and after Close the
// ErrUnavailable that Add returns. Start may call it first, to refuse work
// before doing any.
func (t *Table[T]) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errLocked()
}

func (t *Table[T]) errLocked() error {
	if t.closed {
		return fmt.Errorf("%s: executor closed: %w", t.name, executor.ErrUnavailable)
	}
	return nil
}

// Add gives in a new ID and puts it in the table, or returns
// ErrUnavailable when the table is closed. Call it once in can be stopped:
// Close may call its stop function as soon as Add has returned.
func (t *Table[T]) Add(in T) (id string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.errLocked(); err != nil {
		return "", err
	}
	for {
		id = newID(t.name)
		if _, taken := t.byID[id]; !taken {
			break
		}
	}
	in.instance().id = id
	t.byID[id] = in
	return id, nil
}

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Get returns the instance with that ID, or ErrNotFound.
func (t *Table[T]) Get(id string) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in, ok := t.byID[id]
	if !ok {
		var none T
		return none, fmt.Errorf("%s: %s: %w", t.name, id, executor.ErrNotFound)
	}
	return in, nil
}

// All returns every instance in the table, in no particular order.
func (t *Table[T]) All() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]T, 0, len(t.byID))
	for _, in := range t.byID {
		all = append(all, in)
	}
	return all
}

// Wait implements executor.Executor's Wait. An instance that has ended
// returns its Result even when ctx is done.
func (t *Table[T]) Wait(ctx context.Context, id string) (executor.Result, error) {
	in, err := t.Get(id)
	if err != nil {
		return executor.Result{}, err
	}
	if err := ended(ctx, in.instance()); err != nil {
		return executor.Result{}, err
	}
	return in.instance().result, nil
}

// Stop implements executor.Executor's Stop: it calls the instance's stop
// function with grace, unless the instance has ended, and waits until it
// has.
func (t *Table[T]) Stop(ctx context.Context, id string, grace time.Duration) error {
	in, err := t.Get(id)
	if err != nil {
		return err
	}
	return stop(ctx, in.instance(), grace)
}

// stop ends in (grace as in Stop) and waits until it has ended or ctx is
// done.
func stop(ctx context.Context, in *Instance, grace time.Duration) error {
	if in.Ended() {
		return nil
	}
	in.stop(grace)
	return ended(ctx, in)
}

// ended waits until in has ended (nil) or ctx is done (ctx.Err()); an
// ended instance wins over a done ctx.
func ended(ctx context.Context, in *Instance) error {
	select {
	case <-in.done:
		return nil
	default:
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Logs implements executor.Executor's Logs.
func (t *Table[T]) Logs(ctx context.Context, id string, opts executor.LogOptions, stdout, stderr io.Writer) error {
	in, err := t.Get(id)
	if err != nil {
		return err
	}
	return in.instance().logs.Copy(ctx, opts.Follow, opts.Tail, stdout, stderr)
}

// Remove implements executor.Executor's Remove: it stops the instance
// with no grace, waits until it has ended, and drops it and its logs.
//
// It is all or nothing for the table: when ctx is done before Remove
// begins, it returns ctx.Err() and changes nothing; when ctx ends while the
// instance is still ending, it returns ctx.Err() and the instance, told to
// stop, stays in the table (Wait and Logs still answer; Remove may be
// called again).
func (t *Table[T]) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := t.Get(id)
	if err != nil {
		return err
	}
	if err := stop(ctx, in.instance(), 0); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.byID[id]; ok && cur.instance() == in.instance() {
		delete(t.byID, id)
	}
	return nil
}

// Close refuses new instances (Add and Err return ErrUnavailable from now
// on), stops every instance with no grace, waits until all have ended,
// then calls release when it is not nil and returns its error. The ended
// instances stay in the table: Wait, Logs and Remove still answer.
//
// Only the first call does this; later calls, also concurrent ones, wait
// until it is done and return nil.
func (t *Table[T]) Close(release func() error) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.released
		return nil
	}
	t.closed = true
	all := make([]*Instance, 0, len(t.byID))
	for _, in := range t.byID {
		all = append(all, in.instance())
	}
	t.mu.Unlock()
	defer close(t.released)

	for _, in := range all {
		if !in.Ended() {
			in.stop(0)
		}
	}
	for _, in := range all {
		<-in.done
	}
	if release != nil {
		return release()
	}
	return nil
}
