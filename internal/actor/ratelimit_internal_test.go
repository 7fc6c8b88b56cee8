package actor

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestLimiterCacheAfterSweep checks that a link's cached buckets are not
// used once the limiter forgot them: the peer has one bucket, whatever
// link it sends on.
func TestLimiterCacheAfterSweep(t *testing.T) {
	l := newPeerLimiter(1, 1)
	t0 := time.Now()
	var cached *peerBuckets
	if !l.allowCached(&cached, "p", t0) {
		t.Fatal("first envelope refused")
	}
	if l.allowCached(&cached, "p", t0) {
		t.Fatal("second envelope at once allowed over a burst of 1")
	}
	later := t0.Add(2 * time.Minute)
	l.sweep(later)
	if l.count() != 0 {
		t.Fatalf("%d peers after the sweep, want 0", l.count())
	}
	if !l.allow("p", later) {
		t.Fatal("the peer's new bucket refused its first envelope")
	}
	if l.allowCached(&cached, "p", later) {
		t.Fatal("allowed over the rate: the link used the bucket the limiter forgot (full again)")
	}
}

// refBucket counts tokens, as rate.Limiter does, in exact integers: a
// token is interval ns of credit, and credit grows with time up to
// burst tokens.
type refBucket struct {
	credit, interval, limit int64
	last                    time.Time
}

func (r *refBucket) allow(now time.Time) bool {
	if now.After(r.last) {
		r.credit = min(r.limit, r.credit+int64(now.Sub(r.last)))
		r.last = now
	}
	if r.credit < r.interval {
		return false
	}
	r.credit -= r.interval
	return true
}

// TestBucketAsTokenBucket checks the lock-free bucket against a token
// bucket over random arrivals (the same answer for each), and against
// rate.Limiter (as many allowed, but for its float rounding at the
// boundaries), for rates and bursts from the tests' to the defaults.
func TestBucketAsTokenBucket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		gap   time.Duration // the most time between arrivals
	}{
		{"one a second", 1, 3, 2 * time.Second},
		{"the tests' 50", 50, 50, 40 * time.Millisecond},
		{"the default", 200_000, 20_000, 10 * time.Microsecond},
		{"a flood", 200_000, 20_000, 2 * time.Microsecond},
		{"the benchmarks'", 1e9, 1 << 20, time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(tc.burst)))
			b := newBucket(rate.Limit(tc.rate), tc.burst)
			if b.slow != nil {
				t.Fatal("the lock-free bucket is not used")
			}
			start := time.Unix(1_700_000_000, 0)
			ref := refBucket{credit: b.limit, interval: b.interval, limit: b.limit, last: start}
			lim := rate.NewLimiter(rate.Limit(tc.rate), tc.burst)
			now := start
			const n = 200_000
			allowed, limAllowed := 0, 0
			for i := range n {
				if rng.IntN(4) > 0 { // bursts: most arrivals at once
					now = now.Add(time.Duration(rng.Int64N(int64(tc.gap) + 1)))
				}
				got, want := b.allow(now), ref.allow(now)
				if got != want {
					t.Fatalf("arrival %d at +%v: allow = %v, the token bucket %v", i, now.Sub(start), got, want)
				}
				if got {
					allowed++
				}
				if lim.AllowN(now, 1) {
					limAllowed++
				}
			}
			if allowed == 0 || allowed == n && tc.rate < 1e9 {
				t.Fatalf("%d of %d allowed: the case tests nothing", allowed, n)
			}
			if d := allowed - limAllowed; d < -n/1000-1 || d > n/1000+1 {
				t.Fatalf("%d allowed, rate.Limiter %d", allowed, limAllowed)
			}
		})
	}
	if b := newBucket(1e-9, 1<<20); b.slow == nil {
		t.Fatal("a rate whose limit overflows does not fall back to rate.Limiter")
	}
}

// TestBucketConcurrent checks that goroutines taking tokens at once take
// exactly the burst, no more.
func TestBucketConcurrent(t *testing.T) {
	const burst, goroutines, each = 1000, 8, 500
	b := newBucket(1, burst)
	now := time.Unix(1_700_000_000, 0)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if b.allow(now) {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != burst {
		t.Fatalf("%d allowed at one instant, want the burst %d", n, burst)
	}
}
