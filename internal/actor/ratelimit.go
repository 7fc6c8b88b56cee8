package actor

import (
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
	in, answers *rate.Limiter
	last        atomic.Int64 // Unix nanoseconds of the last use
}

// answersPerSecond bounds the refusals answered to one peer.
const answersPerSecond = 100

func newPeerLimiter(r float64, burst int) *peerLimiter {
	return &peerLimiter{rate: rate.Limit(r), burst: burst}
}

func (l *peerLimiter) get(peer string, now time.Time) *peerBuckets {
	v, ok := l.peers.Load(peer)
	if !ok {
		v, _ = l.peers.LoadOrStore(peer, &peerBuckets{in: rate.NewLimiter(l.rate, l.burst), answers: rate.NewLimiter(answersPerSecond, answersPerSecond)})
	}
	b := v.(*peerBuckets)
	if t := now.UnixNano(); b.last.Load() < t {
		b.last.Store(t)
	}
	return b
}

func (l *peerLimiter) allow(peer string, now time.Time) bool {
	return l.get(peer, now).in.AllowN(now, 1)
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
		if v.(*peerBuckets).last.Load() < idle {
			l.peers.CompareAndDelete(p, v)
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
