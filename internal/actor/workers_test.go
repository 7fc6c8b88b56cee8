package actor

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/poll"
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

// TestWorkerPool checks that the goroutines of returned workers wait in
// the runtime's pool, at most maxIdleWorkers of them, run the next worker
// of any actor, and end when the runtime closes.
func TestWorkerPool(t *testing.T) {
	net := NewMemNetwork()
	n := newNode(t, net, &testAuth{}, nil)
	pool := &n.sys.pool
	idle := func() int {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		return len(pool.idle)
	}
	const workers = 4 * maxIdleWorkers
	a, err := n.sys.Spawn(mustKey(t), "many", SpawnOptions{Workers: workers, Mailbox: 256})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.sys.Spawn(mustKey(t), "other", SpawnOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var arrived, done sync.WaitGroup
	arrived.Add(workers)
	done.Add(workers)
	var hold heldWakes
	for i := range uint64(workers) {
		putFunc(t, a, i, &hold, func() { arrived.Done(); arrived.Wait(); done.Done() })
	}
	hold.flush()
	waitGroup(t, &done, "behaviors that wait for all the workers")
	idleWorkers(t, a)
	poll.Eventually(t, 5*time.Second, "the pool full", func() bool { return idle() == maxIdleWorkers })

	// Another actor's worker takes a waiting goroutine, which waits again
	// once it returned.
	var inBehavior atomic.Int32
	done.Add(1)
	putFunc(t, b, 1, nil, func() { inBehavior.Store(int32(idle())); done.Done() })
	waitGroup(t, &done, "a delivery to the other actor")
	idleWorkers(t, b)
	if got := inBehavior.Load(); got != maxIdleWorkers-1 {
		t.Errorf("%d goroutines waited in the pool while a behavior ran, want %d", got, maxIdleWorkers-1)
	}
	poll.Eventually(t, 5*time.Second, "the pool full again", func() bool { return idle() == maxIdleWorkers })

	g := runtime.NumGoroutine()
	if err := n.sys.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if idle() != 0 {
		t.Errorf("%d goroutines wait in a closed runtime's pool", idle())
	}
	poll.Eventually(t, 5*time.Second, "the pool's goroutines ended", func() bool { return runtime.NumGoroutine() <= g-maxIdleWorkers })
}

// TestWorkerPoolIdleEnds checks, in a testing/synctest bubble (as
// internal/allocation runs its actors), that a goroutine left in the pool
// ends after idleWorkerWait without a worker, so an idle runtime holds no
// goroutine for long, and that a worker that comes before then reuses it.
func TestWorkerPoolIdleEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork()
		host := net.Host("idle-pool")
		sys, err := NewSystem(Config{Transport: host, Auth: &testAuth{}, Issuer: AllowAll{}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := sys.Spawn(mustKey(t), "a", SpawnOptions{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		pool := &sys.pool
		idle := func() int {
			pool.mu.Lock()
			defer pool.mu.Unlock()
			return len(pool.idle)
		}
		ran := 0
		for round, wait := range []time.Duration{idleWorkerWait / 2, idleWorkerWait + time.Second} {
			putFunc(t, a, uint64(round), nil, func() { ran++ })
			synctest.Wait()
			if idle() != 1 {
				t.Fatalf("round %d: %d goroutines in the pool after a worker returned, want 1", round, idle())
			}
			time.Sleep(wait) // the bubble's clock
			synctest.Wait()
		}
		if ran != 2 {
			t.Fatalf("ran %d behaviors, want 2", ran)
		}
		if idle() != 0 {
			t.Fatalf("%d goroutines in the pool %v after the last worker, want none", idle(), idleWorkerWait+time.Second)
		}
		a.Stop()
		if err := sys.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
