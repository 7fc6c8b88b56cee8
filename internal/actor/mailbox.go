package actor

import (
	"sync"
	"time"
)

// mailbox is an actor's bounded queue of deliveries, drained by its
// workers. Unlike a channel, putting a delivery need not wake a worker at
// once: the reader of a link puts the envelopes of one read burst and
// wakes the actors it filled once, when the burst ends (heldWakes), and a
// worker that is awake and looking for work takes what is queued without
// being woken. At most one worker is woken while another one is already
// looking (searching), as the Go scheduler does with its spinning threads:
// a worker that takes a delivery and leaves more queued, with nobody else
// looking, wakes one more, so a behavior that blocks never holds up the
// queue while other workers sleep.
type mailbox struct {
	mu        sync.Mutex
	ring      []*delivery // queued deliveries from head, n of them; grows up to limit
	head, n   int
	limit     int
	closed    bool          // the actor stopped: nothing is put or taken any more
	parked    int           // workers waiting for a wake token
	searching int           // workers awake and not in a behavior, wakes in flight included
	wake      chan struct{} // wake tokens, one per woken worker; capacity: the workers
}

func newMailbox(limit, workers int) *mailbox {
	return &mailbox{
		ring:  make([]*delivery, min(limit, 64)),
		limit: limit,
		wake:  make(chan struct{}, workers),
	}
}

// put queues d. Unless hold, it wakes a worker if none is looking for
// work; with hold the caller wakes them later (kick).
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

// kick wakes a worker for deliveries put with hold, if none is looking.
func (m *mailbox) kick() {
	m.mu.Lock()
	m.signal()
	m.mu.Unlock()
}

// signal wakes one parked worker when deliveries are queued and no worker
// is looking for them. m.mu is held.
func (m *mailbox) signal() {
	if m.n > 0 && m.searching == 0 && m.parked > 0 {
		m.parked--
		m.searching++
		m.wake <- struct{}{} // never blocks: at most one token per parked worker
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
// caller to answer; workers return once they see it (done is closed after).
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
