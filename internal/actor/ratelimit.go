package actor

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// peerLimiter holds a token bucket per peer for all its traffic, and a
// smaller one for the refusals we answer it, so a flood costs us bounded
// work. Looking a peer up takes no lock (every envelope does it): peers
// is a sync.Map, and a bucket's last use an atomic.
type peerLimiter struct {
	rate  rate.Limit
	burst int

	peers sync.Map // peer ID → *peerBuckets
}

type peerBuckets struct {
	in      bucket
	answers *rate.Limiter
	last    atomic.Int64 // Unix nanoseconds of the last use
	// swept is set once sweep forgot the buckets: a link that cached
	// them (link.bucket) looks its peer up again.
	swept atomic.Bool
}

// answersPerSecond bounds the refusals answered to one peer.
const answersPerSecond = 100

func newPeerLimiter(r float64, burst int) *peerLimiter {
	return &peerLimiter{rate: rate.Limit(r), burst: burst}
}

func (l *peerLimiter) get(peer string, now time.Time) *peerBuckets {
	v, ok := l.peers.Load(peer)
	if !ok {
		v, _ = l.peers.LoadOrStore(peer, &peerBuckets{in: newBucket(l.rate, l.burst), answers: rate.NewLimiter(answersPerSecond, answersPerSecond)})
	}
	b := v.(*peerBuckets)
	b.touch(now)
	return b
}

// touch records a use of b at now, for sweep.
func (b *peerBuckets) touch(now time.Time) {
	if t := now.UnixNano(); b.last.Load() < t {
		b.last.Store(t)
	}
}

// allowCached is allow for a link's reader, which caches its peer's
// buckets in *cached: the lookup by peer ID (a sync.Map load and the
// hash of a 52-byte ID per envelope) happens once per link, and again
// only after sweep forgot the buckets. A reader that raced with sweep
// uses the forgotten buckets for that one envelope, as allow does.
func (l *peerLimiter) allowCached(cached **peerBuckets, peer string, now time.Time) bool {
	b := *cached
	if b == nil || b.swept.Load() {
		b = l.get(peer, now)
		*cached = b
	} else {
		b.touch(now)
	}
	return b.in.allow(now)
}

func (l *peerLimiter) allow(peer string, now time.Time) bool {
	return l.get(peer, now).in.allow(now)
}

func (l *peerLimiter) allowAnswer(peer string, now time.Time) bool {
	return l.get(peer, now).answers.AllowN(now, 1)
}

// sweep forgets peers idle for a minute (their buckets are full again). A
// peer seen while it is swept may go on with the bucket just forgotten
// for that envelope; its next one starts a full bucket, as it would have
// a moment later anyway.
func (l *peerLimiter) sweep(now time.Time) {
	idle := now.Add(-time.Minute).UnixNano()
	l.peers.Range(func(p, v any) bool {
		if b := v.(*peerBuckets); b.last.Load() < idle && l.peers.CompareAndDelete(p, v) {
			b.swept.Store(true)
		}
		return true
	})
}

// count reports how many peers have buckets.
func (l *peerLimiter) count() int {
	n := 0
	l.peers.Range(func(any, any) bool { n++; return true })
	return n
}

// bucket is a token bucket of rate tokens a second holding at most burst,
// as rate.Limiter's Allow, without a lock: the generic cell rate algorithm
// (GCRA, ITU-T I.371), one compare-and-swap of the time the bucket is
// full again (tat) per envelope. A token takes interval ns to come back;
// an envelope is allowed while the bucket would be full again within
// limit = burst×interval of now. Rates so low that limit overflows use a
// rate.Limiter.
type bucket struct {
	tat      atomic.Int64 // Unix ns when all tokens are back (≤ now: full)
	interval int64        // ns per token (0: over 1e9 a second, no limit)
	limit    int64        // burst × interval
	slow     *rate.Limiter
}

func newBucket(r rate.Limit, burst int) bucket {
	iv := math.Round(1e9 / float64(r))
	if r <= 0 || iv*float64(burst) > 1<<62 {
		return bucket{slow: rate.NewLimiter(r, burst)}
	}
	return bucket{interval: int64(iv), limit: int64(iv) * int64(burst)}
}

// allow takes a token at now if there is one.
func (b *bucket) allow(now time.Time) bool {
	if b.slow != nil {
		return b.slow.AllowN(now, 1)
	}
	t := now.UnixNano()
	for {
		tat := b.tat.Load()
		next := max(tat, t) + b.interval
		if next-t > b.limit {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}
