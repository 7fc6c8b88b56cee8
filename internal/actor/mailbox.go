package actor

import (
	"sync"
	"time"
)

// mailbox is an actor's bounded queue of deliveries, drained by its
// workers. Unlike a channel, putting a delivery need not start a worker at
// once: the reader of a link holds the envelopes of one read burst and
// queues them, starting the workers of the actors it filled once, when
// the burst ends (heldWakes), and a worker that is running and looking
// for work takes what is queued without being started. Workers start on
// demand, up to the actor's limit, and return when they find the mailbox
// empty, so an idle actor holds no goroutine: thousands of idle actors in
// one process (simulated providers) would otherwise keep parked
// goroutines whose stacks the collector scans and shrinks, to grow again
// on their next message. At most one worker is started while another one
// is already looking (searching), as the Go scheduler does with its
// spinning threads: a worker that takes a delivery and leaves more
// queued, with nobody else looking, starts one more, so a behavior that
// blocks never holds up the queue.
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
// work; with hold the caller starts them later.
func (m *mailbox) put(d *delivery, hold bool) (full, closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, true
	}
	if m.n == m.limit {
		return true, false
	}
	m.push(d)
	if !hold {
		m.signal()
	}
	return false, false
}

// putBatch queues ds in order, under one lock, as many as fit, and starts
// a worker if none is looking; it returns how many it queued (none when the
// mailbox is closed).
func (m *mailbox) putBatch(ds []*delivery) (queued int, closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, true
	}
	for _, d := range ds {
		if m.n == m.limit {
			break
		}
		m.push(d)
		queued++
	}
	m.signal()
	return queued, false
}

// push queues d, growing the ring if it is full; m.mu is held and
// m.n < m.limit.
func (m *mailbox) push(d *delivery) {
	if m.n == len(m.ring) {
		ring := make([]*delivery, min(2*len(m.ring), m.limit))
		k := copy(ring, m.ring[m.head:])
		copy(ring[k:], m.ring[:m.head])
		m.ring, m.head = ring, 0
	}
	m.ring[(m.head+m.n)%len(m.ring)] = d
	m.n++
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

// heldWakes holds the deliveries a link's reader dispatched in its current
// read burst, by actor, and queues them when the burst ends: each actor's
// under one lock of its mailbox, waking its workers once (mailbox.putBatch),
// when the link has no complete frame left to read, or after maxHeld
// deliveries. A delivery its mailbox has no room for (or that finds the
// actor stopped) is refused then, as mailbox-full (no-such-actor), and the
// others are counted dispatched.
//
// It also keeps the burst's clock reading (now): the checks of the
// envelopes of one burst share one reading, taken again after every flush
// (the reader flushes before anything that may wait: Recv with no whole
// frame buffered, a refusal's answer, a session's verification) and after
// maxHeld readings, so a reading is never older than a burst of at most
// maxHeld envelopes that nothing made wait.
type heldWakes struct {
	held     []heldFor // by actor, in the order first held; entries past len keep their slices for reuse
	n        int       // deliveries held
	now      time.Time
	uses     int           // checks that used now; 0: read the clock again
	flushing bool          // flush is answering refusals (which flush too)
	refused  []heldRefusal // deliveries that did not fit, answered by flush
}

// heldRefusal is a held delivery a's mailbox did not take: it was full,
// or closed (the actor stopped).
type heldRefusal struct {
	a      *Actor
	d      *delivery
	closed bool
}

// heldFor is what a burst holds for one actor.
type heldFor struct {
	a  *Actor
	ds []*delivery
}

// maxHeld bounds how many deliveries wait for a wake.
const maxHeld = 64

// add holds d for a until the burst ends.
func (h *heldWakes) add(a *Actor, d *delivery) {
	h.n++
	found := false
	for i := range h.held {
		if h.held[i].a == a {
			h.held[i].ds = append(h.held[i].ds, d)
			found = true
			break
		}
	}
	if !found {
		if len(h.held) < cap(h.held) {
			h.held = h.held[:len(h.held)+1]
			f := &h.held[len(h.held)-1]
			f.a, f.ds = a, append(f.ds[:0], d)
		} else {
			h.held = append(h.held, heldFor{a: a, ds: []*delivery{d}})
		}
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

// flush queues the held deliveries and wakes their actors' workers, then
// answers those that did not fit; it ends the burst's clock reading.
func (h *heldWakes) flush() {
	h.uses = 0
	if h.flushing || h.n == 0 {
		return
	}
	h.flushing = true
	for i := range h.held {
		f := &h.held[i]
		k, closed := f.a.mbox.putBatch(f.ds)
		f.a.sys.stats.dispatched.Add(uint64(k))
		for _, d := range f.ds[k:] {
			h.refused = append(h.refused, heldRefusal{a: f.a, d: d, closed: closed})
		}
		clear(f.ds)
		f.a, f.ds = nil, f.ds[:0]
	}
	h.held, h.n = h.held[:0], 0
	for i, r := range h.refused {
		r.a.refuseHeld(r.d, r.closed)
		h.refused[i] = heldRefusal{}
	}
	h.refused = h.refused[:0]
	h.flushing = false
}

// mailboxRefusal is the answer to a delivery a's mailbox did not take.
func (a *Actor) mailboxRefusal(closed bool) *Error {
	if closed {
		return &Error{Code: CodeNoSuchActor, Msg: "actor " + a.handle.Inbox + " stopped"}
	}
	return errorf(CodeMailboxFull, "mailbox of %s holds %d messages", a.handle.Inbox, a.mbox.limit)
}

// refuseHeld answers a held delivery a's mailbox did not take, as dispatch
// answers one it could not queue, and recycles it.
func (a *Actor) refuseHeld(d *delivery, closed bool) {
	env := Envelope{Nonce: d.nonce, From: d.msg.From, To: d.msg.To, Behavior: d.msg.Behavior, Topic: d.msg.Topic}
	answer := d.answer
	d.finish()
	a.sys.refuse(&env, answer, a.mailboxRefusal(closed), env.From.Host)
}
