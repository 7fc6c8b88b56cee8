package actor

import (
	"sync"
	"time"
)

// mailbox is an actor's bounded queue of deliveries, drained by its
// workers. Unlike a channel, putting a delivery need not start a worker at
// once: the reader of a link puts the envelopes of one read burst and
// starts the workers of the actors it filled once, when the burst ends
// (heldWakes), and a worker that is running and looking for work takes
// what is queued without being started. Workers start on demand, up to
// the actor's limit, and return when they find the mailbox empty, so an
// idle actor holds no goroutine: thousands of idle actors in one process
// (simulated providers) would otherwise keep parked goroutines whose
// stacks the collector scans and shrinks, to grow again on their next
// message. At most one worker is started while another one is already
// looking (searching), as the Go scheduler does with its spinning
// threads: a worker that takes a delivery and leaves more queued, with
// nobody else looking, starts one more, so a behavior that blocks never
// holds up the queue.
type mailbox struct {
	mu        sync.Mutex
	ring      []*delivery // queued deliveries from head, n of them; grows up to limit
	head, n   int
	limit     int
	closed    bool   // the actor stopped: nothing is put or taken any more
	running   int    // workers started and not returned
	workers   int    // the most that run at once
	searching int    // workers running and not in a behavior
	start     func() // starts a worker (Actor.work); nil: none (tests)
}

func newMailbox(limit, workers int) *mailbox {
	return &mailbox{
		ring:    make([]*delivery, min(limit, 64)),
		limit:   limit,
		workers: workers,
	}
}

// put queues d. Unless hold, it starts a worker if none is looking for
// work; with hold the caller starts them later (kick).
func (m *mailbox) put(d *delivery, hold bool) (full, closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, true
	}
	if m.n == m.limit {
		return true, false
	}
	if m.n == len(m.ring) {
		ring := make([]*delivery, min(2*len(m.ring), m.limit))
		k := copy(ring, m.ring[m.head:])
		copy(ring[k:], m.ring[:m.head])
		m.ring, m.head = ring, 0
	}
	m.ring[(m.head+m.n)%len(m.ring)] = d
	m.n++
	if !hold {
		m.signal()
	}
	return false, false
}

// kick starts a worker for deliveries put with hold, if none is looking.
func (m *mailbox) kick() {
	m.mu.Lock()
	m.signal()
	m.mu.Unlock()
}

// signal starts a worker when deliveries are queued, no worker is looking
// for them and fewer than the actor's limit run. m.mu is held.
func (m *mailbox) signal() {
	if m.n > 0 && m.searching == 0 && m.running < m.workers && m.start != nil && !m.closed {
		m.running++
		m.searching++
		m.start()
	}
}

// pop takes the oldest delivery; m.mu is held and m.n > 0.
func (m *mailbox) pop() *delivery {
	d := m.ring[m.head]
	m.ring[m.head] = nil
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	return d
}

// close marks the mailbox closed and returns what was queued, for the
// caller to answer; workers return once they see it.
func (m *mailbox) close() []*delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	left := make([]*delivery, 0, m.n)
	for m.n > 0 {
		left = append(left, m.pop())
	}
	return left
}

// len reports how many deliveries are queued.
func (m *mailbox) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// heldWakes collects the actors a link's reader put deliveries for without
// waking their workers (mailbox.put with hold), and wakes them together:
// when the link has no complete frame left to read, or after maxHeld
// deliveries.
//
// It also keeps the burst's clock reading (now): the checks of the
// envelopes of one burst share one reading, taken again after every flush
// (the reader flushes before anything that may wait: Recv with no whole
// frame buffered, a refusal's answer, a session's verification) and after
// maxHeld readings, so a reading is never older than a burst of at most
// maxHeld envelopes that nothing made wait.
type heldWakes struct {
	actors []*Actor
	n      int
	now    time.Time
	uses   int // checks that used now; 0: read the clock again
}

// maxHeld bounds how many deliveries wait for a wake.
const maxHeld = 64

func (h *heldWakes) add(a *Actor) {
	h.n++
	found := false
	for _, x := range h.actors {
		if x == a {
			found = true
			break
		}
	}
	if !found {
		h.actors = append(h.actors, a)
	}
	if h.n >= maxHeld {
		h.flush()
	}
}

// clock returns the burst's clock reading, reading clock when the burst
// has none yet or its reading served maxHeld checks.
func (h *heldWakes) clock(clock func() time.Time) time.Time {
	if h.uses == 0 {
		h.now = clock()
	}
	if h.uses++; h.uses >= maxHeld {
		h.uses = 0
	}
	return h.now
}

// flush wakes the held actors, and ends the burst's clock reading.
func (h *heldWakes) flush() {
	h.uses = 0
	for i, a := range h.actors {
		a.mbox.kick()
		h.actors[i] = nil
	}
	h.actors, h.n = h.actors[:0], 0
}
