package actor

import (
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// replayGuard refuses envelopes whose nonce a sender already used. Senders
// number envelopes from a counter seeded with the clock, so nonces grow; the
// guard keeps, per sender (DID and host), the highest nonce seen and a bitmap of the
// window below it (the anti-replay window of IPsec, RFC 4303 §3.4.3). A nonce
// below the window is refused as too old. Memory is bounded per sender, and a
// sender idle for longer than the maximum envelope expiry is forgotten: every
// envelope it could replay has expired by then.
type replayGuard struct {
	mu      sync.Mutex
	senders map[replayKey]*replayWindow // guarded by mu
	idle    time.Duration
}

const replayWindowBits = 1 << 14

// replayKey names a nonce sequence: a sender DID on one host. Each host's
// runtime numbers its envelopes from its own counter, so a user whose
// commands are relayed by two nodes has two sequences.
type replayKey struct {
	did  identity.DID
	host string
}

type replayWindow struct {
	top  uint64 // highest nonce seen
	bits [replayWindowBits / 64]uint64
	last time.Time
}

func newReplayGuard(idle time.Duration) *replayGuard {
	return &replayGuard{senders: map[replayKey]*replayWindow{}, idle: idle}
}

// check records nonce for sender and reports whether it is new.
func (g *replayGuard) check(sender Handle, nonce uint64, now time.Time) bool {
	key := replayKey{did: sender.DID, host: sender.Host}
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.senders[key]
	if w == nil {
		w = &replayWindow{top: nonce}
		w.set(nonce)
		w.last = now
		g.senders[key] = w
		return true
	}
	w.last = now
	switch {
	case nonce > w.top:
		shift := nonce - w.top
		if shift >= replayWindowBits {
			w.bits = [replayWindowBits / 64]uint64{}
		} else {
			for i := w.top + 1; i <= nonce; i++ {
				w.clear(i)
			}
		}
		w.top = nonce
		w.set(nonce)
		return true
	case w.top-nonce >= replayWindowBits:
		return false // too old to tell: refuse
	case w.isSet(nonce):
		return false
	default:
		w.set(nonce)
		return true
	}
}

func (w *replayWindow) set(n uint64)   { w.bits[(n/64)%uint64(len(w.bits))] |= 1 << (n % 64) }
func (w *replayWindow) clear(n uint64) { w.bits[(n/64)%uint64(len(w.bits))] &^= 1 << (n % 64) }
func (w *replayWindow) isSet(n uint64) bool {
	return w.bits[(n/64)%uint64(len(w.bits))]&(1<<(n%64)) != 0
}

// sweep forgets senders idle for longer than the maximum expiry.
func (g *replayGuard) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for d, w := range g.senders {
		if now.Sub(w.last) > g.idle {
			delete(g.senders, d)
		}
	}
}
