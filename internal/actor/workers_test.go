package actor

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Workers start on demand: an idle actor holds no goroutine (10,000
// simulated providers kept 40,000 parked workers, whose stacks the
// collector scanned and shrank, to grow again at the next message), up
// to SpawnOptions.Workers run at once, and one worker keeps the order.

// putFunc queues a delivery for a that runs b, held (started at flush)
// when hold is not nil.
func putFunc(t *testing.T, a *Actor, nonce uint64, hold *heldWakes, b func()) {
	t.Helper()
	d := newDelivery()
	d.msg = Message{Expiry: time.Now().Add(time.Minute)}
	d.nonce, d.answer = nonce, &replies{}
	d.behavior = func(ctx context.Context, m *Message) (any, error) { b(); return nil, nil }
	if err := a.enqueue(d, hold); err != nil {
		t.Fatal(err)
	}
}

func TestWorkersOnDemand(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	const workers = 64
	g0 := runtime.NumGoroutine()
	a, err := n.sys.Spawn(mustKey(t), "idle", SpawnOptions{Workers: workers, Mailbox: 256})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing queued, nothing started (other goroutines of the test's
	// runtime may come and go: a margin well below the workers).
	if g := runtime.NumGoroutine() - g0; g >= workers/2 {
		t.Fatalf("a new actor holds %d goroutines, want none", g)
	}
	idleWorkers(t, a)

	// All the workers run at once when the behaviors wait for each other.
	var arrived sync.WaitGroup
	arrived.Add(workers)
	var done sync.WaitGroup
	done.Add(workers)
	var hold heldWakes
	for i := range uint64(workers) {
		putFunc(t, a, i, &hold, func() { arrived.Done(); arrived.Wait(); done.Done() })
	}
	hold.flush()
	waitGroup(t, &done, "behaviors that wait for all the workers")
	idleWorkers(t, a)

	// The workers return when the mailbox is empty, and start again.
	var ran atomic.Int32
	done.Add(1)
	putFunc(t, a, 100, nil, func() { ran.Add(1); done.Done() })
	waitGroup(t, &done, "a delivery after the workers returned")
	idleWorkers(t, a)
	if ran.Load() != 1 {
		t.Fatalf("ran %d", ran.Load())
	}
	a.Stop()
}

func TestWorkersOneKeepsOrder(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	a, err := n.sys.Spawn(mustKey(t), "ordered", SpawnOptions{Workers: 1, Mailbox: 1024})
	if err != nil {
		t.Fatal(err)
	}
	const total = 1000
	var (
		mu      sync.Mutex
		got     []uint64
		running atomic.Int32
		most    atomic.Int32
		done    sync.WaitGroup
	)
	done.Add(total)
	var hold heldWakes
	for i := range uint64(total) {
		var h *heldWakes // the first half queued at once, the second held for a burst's end
		if i >= total/2 {
			h = &hold
		}
		putFunc(t, a, i, h, func() {
			if r := running.Add(1); r > most.Load() {
				most.Store(r)
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			running.Add(-1)
			done.Done()
		})
		if i%7 == 0 {
			runtime.Gosched() // let the worker drain and return now and then
		}
	}
	hold.flush()
	waitGroup(t, &done, "the ordered deliveries")
	idleWorkers(t, a)
	if most.Load() != 1 {
		t.Fatalf("%d behaviors ran at once with one worker", most.Load())
	}
	for i, x := range got {
		if x != uint64(i) {
			t.Fatalf("delivery %d ran at %d", x, i)
		}
	}
	a.Stop()
}

// waitGroup waits for wg, failing the test after 10 s.
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not finish", what)
	}
}
