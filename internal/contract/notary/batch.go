package notary

import (
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/store"
)

// batcher commits the writes of concurrent callers together: a caller
// that finds no commit under way leads: it waits gatherWindow for more
// writes (when asked to gather), then commits its write and those that
// queued meanwhile in one store transaction (one fsync); the others wait
// for it. Writes that queue during a commit wait for the next one, led
// by the first of them (which gathers again): a leader never commits
// for longer than its own batch, and batches stay large under a steady
// flow. A store commit costs far more CPU than a note's signatures, so
// the requester's notes share them.
type batcher struct {
	db *store.DB

	mu     sync.Mutex
	queue  []*write // guarded by mu
	leader bool     // guarded by mu: a caller leads (gathers or commits)
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
	fn     func(tx *store.Tx) error
	done   chan struct{} // closed once committed or failed
	lead   chan struct{} // signalled when the write is to lead the next batch
	gather bool          // its caller asked to gather
	err    error         // set before done is closed
}

func newWrite(fn func(tx *store.Tx) error) *write {
	return &write{fn: fn, done: make(chan struct{}), lead: make(chan struct{}, 1)}
}

// wait waits for w and returns its error.
func (w *write) wait() error {
	<-w.done
	return w.err
}

// do commits w, with whatever other writes are queued, and returns its
// error; when gather, a caller that leads waits gatherWindow for more
// writes first. A failing write fails its whole batch. Callers must not
// hold locks that a write's fn takes.
func (b *batcher) do(w *write, gather bool) error {
	w.gather = gather
	b.mu.Lock()
	b.queue = append(b.queue, w)
	if b.leader {
		b.mu.Unlock()
		select {
		case <-w.done:
			return w.err
		case <-w.lead: // the next batch is ours to lead
		}
	} else {
		b.leader = true
		b.mu.Unlock()
	}
	if w.gather {
		time.Sleep(gatherWindow)
	}
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	if b.stats != nil {
		b.stats.commits.Add(1)
		b.stats.writes.Add(int64(len(batch)))
	}
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
	if len(b.queue) > 0 {
		b.queue[0].lead <- struct{}{} // buffered: never blocks
	} else {
		b.leader = false
	}
	b.mu.Unlock()
	return w.wait()
}
