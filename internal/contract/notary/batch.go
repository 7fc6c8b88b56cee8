package notary

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// leaderQueue runs the items of concurrent callers in batches, the
// hand-off that batcher and sigBatcher share: a caller that finds no
// batch under way leads: it waits a window for more items, then runs its
// item and those that queued meanwhile together; the others wait for it.
// Items that queue during a batch wait for the next one, led by the
// first of them (which waits its window again): a leader never runs for
// longer than its own batch, and batches stay large under a steady flow.
type leaderQueue[T queued] struct {
	mu     sync.Mutex
	queue  []T  // guarded by mu
	leader bool // guarded by mu: a caller leads (waits or runs a batch)
}

// queued is an item of a leaderQueue: it holds a slot.
type queued interface{ qslot() *slot }

// slot is what a leaderQueue needs of an item.
type slot struct {
	done chan struct{} // closed once its batch has run
	lead chan struct{} // signalled when the item is to lead the next batch
}

func newSlot() slot { return slot{done: make(chan struct{}), lead: make(chan struct{}, 1)} }

func (s *slot) qslot() *slot { return s }

// run queues x and returns once x's batch has run. When x's caller
// leads, it waits window, takes up to limit queued items (0: all), x
// first among them, and calls batch with them; batch sets their results
// before it returns.
func (q *leaderQueue[T]) run(x T, window time.Duration, limit int, batch func([]T)) {
	s := x.qslot()
	q.mu.Lock()
	q.queue = append(q.queue, x)
	if q.leader {
		q.mu.Unlock()
		select {
		case <-s.done:
			return
		case <-s.lead: // the next batch is ours to lead
		}
	} else {
		q.leader = true
		q.mu.Unlock()
	}
	if window > 0 {
		time.Sleep(window)
	}
	q.mu.Lock()
	items := q.queue
	if limit > 0 && len(items) > limit {
		items = items[:limit:limit]
		q.queue = q.queue[limit:]
	} else {
		q.queue = nil
	}
	q.mu.Unlock()
	batch(items)
	for _, y := range items {
		close(y.qslot().done)
	}
	q.mu.Lock()
	if len(q.queue) > 0 {
		q.queue[0].qslot().lead <- struct{}{} // buffered: never blocks
	} else {
		q.leader = false
	}
	q.mu.Unlock()
	<-s.done
}

// batcher commits the writes of concurrent callers together, in one
// store transaction (one fsync) a batch (see leaderQueue). A store
// commit costs far more CPU than a note's signatures, so the
// requester's notes share them.
type batcher struct {
	db    *store.DB
	q     leaderQueue[*write]
	stats *Notary // counts commits and writes, when set
}

// gatherWindow is how long a leader waits for more writes before it
// commits: one commit (its fsync) costs more CPU than the checks of
// several notes, and notes come in bursts (a provider's tick). It is
// short because the caller holds one of the node's root actor workers
// meanwhile.
const gatherWindow = 10 * time.Millisecond

// write is one caller's part of a batch.
type write struct {
	slot
	fn  func(tx *store.Tx) error
	err error // set before done is closed
}

func newWrite(fn func(tx *store.Tx) error) *write {
	return &write{slot: newSlot(), fn: fn}
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
	var window time.Duration
	if gather {
		window = gatherWindow
	}
	b.q.run(w, window, 0, b.commit)
	return w.err
}

// commit runs a batch of writes in one transaction.
func (b *batcher) commit(batch []*write) {
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
	}
}

// sigBatcher verifies the providers' signatures of the notes that
// concurrent HandleNote calls received, in batches
// (contract.VerifyProviderSigs, see leaderQueue) of at most maxSigBatch,
// outside the notary's lock. A provider's tick sends a note for each of
// its contracts at once, and a batch of 16 to 32 signatures costs about
// a third of as many single verifications.
type sigBatcher struct {
	q leaderQueue[*sigCheck]
	// batches and sigs count the batches verified and their signatures.
	batches, sigs atomic.Int64
}

// verifyWindow is how long a leader waits for more notes: short, as
// the caller holds one of the node's root actor workers meanwhile (and
// the note then waits for its store commit, gatherWindow).
const verifyWindow = 5 * time.Millisecond

// maxSigBatch bounds a batch.
const maxSigBatch = 256

type sigCheck struct {
	slot
	by   identity.DID
	note *contract.SignedNote
	ok   bool // set before done is closed
}

// verify reports whether n carries by's signature, and remembers it in
// n for contract.CheckNote (see contract.VerifyProviderSigs). n must not
// be used by others meanwhile.
func (b *sigBatcher) verify(by identity.DID, n *contract.SignedNote) bool {
	c := &sigCheck{slot: newSlot(), by: by, note: n}
	b.q.run(c, verifyWindow, maxSigBatch, b.check)
	return c.ok
}

// check verifies a batch of signatures.
func (b *sigBatcher) check(batch []*sigCheck) {
	dids := make([]identity.DID, len(batch))
	notes := make([]*contract.SignedNote, len(batch))
	for i, x := range batch {
		dids[i], notes[i] = x.by, x.note
	}
	oks := contract.VerifyProviderSigs(dids, notes)
	b.batches.Add(1)
	b.sigs.Add(int64(len(batch)))
	for i, x := range batch {
		x.ok = oks[i]
	}
}
