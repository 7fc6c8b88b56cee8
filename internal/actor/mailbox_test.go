package actor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// The mailbox: a FIFO that grows up to its limit, deliveries held until
// the reader's burst ends, a blocked behavior that never holds up the
// queue, and a stop that answers what was queued.

func TestMailboxOrderAndLimit(t *testing.T) {
	for _, limit := range []int{1, 3, 64, 65, 200} {
		m := newMailbox(limit, 1)
		ds := make([]*delivery, 3*limit)
		for i := range ds {
			ds[i] = &delivery{nonce: uint64(i)}
		}
		next, want := 0, 0
		// Interleave puts and pops so the ring wraps while it grows.
		for want < len(ds) {
			for k := 0; k < 3 && next < len(ds); k++ {
				full, closed := m.put(ds[next], true)
				if closed {
					t.Fatalf("limit %d: closed", limit)
				}
				if full {
					if m.len() != limit {
						t.Fatalf("limit %d: full at %d queued", limit, m.len())
					}
					break
				}
				next++
			}
			m.mu.Lock()
			if m.n > 0 {
				if d := m.pop(); d.nonce != uint64(want) {
					t.Fatalf("limit %d: popped %d, want %d", limit, d.nonce, want)
				}
				want++
			}
			m.mu.Unlock()
		}
		if len(m.ring) > limit {
			t.Fatalf("limit %d: ring grew to %d", limit, len(m.ring))
		}
	}
}

// idleWorkers waits until all of a's workers returned.
func idleWorkers(t *testing.T, a *Actor) {
	t.Helper()
	poll.Eventually(t, 5*time.Second, "workers returned", func() bool {
		a.mbox.mu.Lock()
		defer a.mbox.mu.Unlock()
		return a.mbox.running == 0 && a.mbox.searching == 0
	})
}

type replies struct {
	mu  sync.Mutex
	got []*Reply
}

func (r *replies) reply(x *Reply) {
	r.mu.Lock()
	r.got = append(r.got, x)
	r.mu.Unlock()
}

func (r *replies) codes() []Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Code
	for _, x := range r.got {
		if x.Err != nil {
			out = append(out, x.Err.Code)
		} else {
			out = append(out, "")
		}
	}
	return out
}

func TestMailboxWakes(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	a, err := n.sys.Spawn(mustKey(t), "box", SpawnOptions{Workers: 2, Mailbox: 4})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	ran := make(chan uint64, 8)
	b := func(ctx context.Context, m *Message) (any, error) {
		if string(m.Payload) == "block" {
			<-release
		}
		return nil, nil
	}
	put := func(nonce uint64, payload string, hold *heldWakes) *Error {
		d := newDelivery()
		d.msg = Message{Payload: []byte(payload), Expiry: time.Now().Add(time.Minute)}
		d.nonce, d.answer = nonce, &replies{}
		d.behavior = func(ctx context.Context, m *Message) (any, error) {
			r, err := b(ctx, m)
			ran <- nonce
			return r, err
		}
		return a.enqueue(d, hold)
	}
	idleWorkers(t, a)

	// Held: not queued, no worker started, until the hold is flushed.
	var hold heldWakes
	if err := put(1, "x", &hold); err != nil {
		t.Fatal(err)
	}
	if q := a.mbox.len(); q != 0 || len(hold.held) != 1 || hold.n != 1 {
		t.Fatalf("after a held put: queued %d, held %d/%d", q, len(hold.held), hold.n)
	}
	a.mbox.mu.Lock()
	running := a.mbox.running
	a.mbox.mu.Unlock()
	if running != 0 {
		t.Fatalf("a held put started a worker: %d running", running)
	}
	hold.flush()
	if got := <-ran; got != 1 {
		t.Fatalf("ran %d", got)
	}
	idleWorkers(t, a)

	// One start for two held deliveries: the worker that takes the first
	// (which blocks) starts the other for the second.
	if err := put(2, "block", &hold); err != nil {
		t.Fatal(err)
	}
	if err := put(3, "x", &hold); err != nil {
		t.Fatal(err)
	}
	hold.flush()
	select {
	case got := <-ran:
		if got != 3 {
			t.Fatalf("ran %d first, want 3 (2 blocks)", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second delivery waited for the blocked behavior")
	}

	// Full: 4 queued while the other worker blocks too.
	if err := put(4, "block", nil); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "both workers busy", func() bool { return a.mbox.len() == 0 && len(ran) == 0 })
	for i := range uint64(4) {
		if err := put(10+i, "x", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(20, "x", nil); err == nil || err.Code != CodeMailboxFull {
		t.Fatalf("put into a full mailbox = %v", err)
	}

	// Stop answers the queued ones shutting-down and refuses new ones.
	queued := make([]*replies, 0, 4)
	a.mbox.mu.Lock()
	for i := range a.mbox.n {
		queued = append(queued, a.mbox.ring[(a.mbox.head+i)%len(a.mbox.ring)].answer.(*replies))
	}
	a.mbox.mu.Unlock()
	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	poll.Eventually(t, 5*time.Second, "mailbox closed", func() bool {
		a.mbox.mu.Lock()
		defer a.mbox.mu.Unlock()
		return a.mbox.closed
	})
	for i, r := range queued {
		if c := r.codes(); len(c) != 1 || c[0] != CodeShuttingDown {
			t.Fatalf("queued delivery %d answered %v", i, c)
		}
	}
	if err := put(30, "x", nil); err == nil || err.Code != CodeNoSuchActor {
		t.Fatalf("put after Stop = %v", err)
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return once the behaviors did")
	}
}

// TestHeldRefusals: deliveries held for a burst are queued when it is
// flushed, as many as the mailbox has room for; the others are answered
// mailbox-full then, and after the actor stopped, no-such-actor. Only the
// queued ones count as dispatched.
func TestHeldRefusals(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	a, err := n.sys.Spawn(mustKey(t), "box", SpawnOptions{Workers: 1, Mailbox: 2})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	put := func(payload string, hold *heldWakes) *replies {
		r := &replies{}
		d := newDelivery()
		d.msg = Message{Payload: []byte(payload), Expiry: time.Now().Add(time.Minute)}
		d.answer = r
		d.behavior = func(ctx context.Context, m *Message) (any, error) {
			if string(m.Payload) == "block" {
				<-release
			}
			return nil, nil
		}
		if err := a.enqueue(d, hold); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		return r
	}
	idleWorkers(t, a)
	put("block", nil)
	poll.Eventually(t, 5*time.Second, "the worker blocked", func() bool { return a.mbox.len() == 0 })

	before := n.sys.Stats()["dispatched"]
	var hold heldWakes
	rs := []*replies{put("x", &hold), put("x", &hold), put("x", &hold)}
	if q := a.mbox.len(); q != 0 {
		t.Fatalf("%d queued before the flush", q)
	}
	hold.flush()
	if q := a.mbox.len(); q != 2 {
		t.Fatalf("%d queued after the flush, want 2", q)
	}
	if c := rs[2].codes(); len(c) != 1 || c[0] != CodeMailboxFull {
		t.Fatalf("the third held delivery answered %v, want mailbox-full", c)
	}
	if c := rs[0].codes(); len(c) != 0 {
		t.Fatalf("a queued delivery answered %v", c)
	}
	if got := n.sys.Stats()["dispatched"] - before; got != 2 {
		t.Fatalf("dispatched %d, want 2", got)
	}

	late := put("x", &hold)
	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	poll.Eventually(t, 5*time.Second, "mailbox closed", func() bool {
		a.mbox.mu.Lock()
		defer a.mbox.mu.Unlock()
		return a.mbox.closed
	})
	hold.flush()
	if c := late.codes(); len(c) != 1 || c[0] != CodeNoSuchActor {
		t.Fatalf("a delivery held past Stop answered %v, want no-such-actor", c)
	}
	close(release)
	<-stopped
}
