package notary

import (
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/store"
)

// batcher commits the writes of concurrent callers together: the first
// caller commits its write and those that queued meanwhile in one store
// transaction (one fsync), the others wait for it. A store commit costs
// far more CPU than a note's signatures, so the requester's notes share
// them.
type batcher struct {
	db *store.DB

	mu     sync.Mutex
	queue  []*write // guarded by mu
	leader bool     // guarded by mu: a caller is committing
	stats  *Notary  // counts commits and writes, when set
}

// gatherWindow is how long a leader waits for more writes before it
// commits: one commit (its fsync) costs more CPU than the checks of
// several notes, and notes come in bursts (a provider's tick). It is
// short because the caller holds one of the node's root actor workers
// meanwhile.
const gatherWindow = 10 * time.Millisecond

// write is one caller's part of a batch.
type write struct {
	fn   func(tx *store.Tx) error
	done chan struct{} // closed once committed or failed
	err  error         // set before done is closed
}

func newWrite(fn func(tx *store.Tx) error) *write {
	return &write{fn: fn, done: make(chan struct{})}
}

// wait waits for w and returns its error.
func (w *write) wait() error {
	<-w.done
	return w.err
}

// do commits w, with whatever other writes are queued, and returns its
// error; when gather, a caller that commits first waits gatherWindow for
// more writes. A failing write fails its whole batch. Callers must not
// hold locks that a write's fn takes.
func (b *batcher) do(w *write, gather bool) error {
	b.mu.Lock()
	b.queue = append(b.queue, w)
	if b.leader {
		b.mu.Unlock()
		return w.wait()
	}
	b.leader = true
	if gather {
		b.mu.Unlock()
		time.Sleep(gatherWindow)
		b.mu.Lock()
	}
	for len(b.queue) > 0 {
		batch := b.queue
		b.queue = nil
		if b.stats != nil {
			b.stats.commits.Add(1)
			b.stats.writes.Add(int64(len(batch)))
		}
		b.mu.Unlock()
		err := b.db.Update(func(tx *store.Tx) error {
			for _, x := range batch {
				if err := x.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		for _, x := range batch {
			x.err = err
			close(x.done)
		}
		b.mu.Lock()
	}
	b.leader = false
	b.mu.Unlock()
	return w.wait()
}
