package actor

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// peerLimiter holds a token bucket per peer for all its traffic, and a
// smaller one for the refusals we answer it, so a flood costs us bounded
// work.
type peerLimiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	peers map[string]*peerBuckets // guarded by mu
}

type peerBuckets struct {
	in, answers *rate.Limiter
	last        time.Time
}

// answersPerSecond bounds the refusals answered to one peer.
const answersPerSecond = 100

func newPeerLimiter(r float64, burst int) *peerLimiter {
	return &peerLimiter{rate: rate.Limit(r), burst: burst, peers: map[string]*peerBuckets{}}
}

func (l *peerLimiter) get(peer string, now time.Time) *peerBuckets {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.peers[peer]
	if b == nil {
		b = &peerBuckets{in: rate.NewLimiter(l.rate, l.burst), answers: rate.NewLimiter(answersPerSecond, answersPerSecond)}
		l.peers[peer] = b
	}
	b.last = now
	return b
}

func (l *peerLimiter) allow(peer string, now time.Time) bool {
	return l.get(peer, now).in.AllowN(now, 1)
}

func (l *peerLimiter) allowAnswer(peer string, now time.Time) bool {
	return l.get(peer, now).answers.AllowN(now, 1)
}

// sweep forgets peers idle for a minute (their buckets are full again).
func (l *peerLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, b := range l.peers {
		if now.Sub(b.last) > time.Minute {
			delete(l.peers, p)
		}
	}
}
