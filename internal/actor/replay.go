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
	top uint64 // highest nonce seen
	// few holds the first nonces seen (n of them); bits replaces it at
	// the first nonce past len(few). Most senders (an orchestrator's or
	// an allocation's actor, seen by a provider) send a few envelopes
	// each, and a bitmap is 2 KiB.
	few  [4]uint64
	n    int
	bits *[replayWindowBits / 64]uint64
	last time.Time
	// swept is set (under replayGuard.mu) once sweep forgot the window:
	// a cache that holds it (replayCache) looks its sender up again, so
	// it never records nonces in a window the guard no longer holds.
	swept bool
}

// replayCache is the window of the last sender a link's reader checked
// (replayGuard.checkCached): consecutive envelopes from one sender skip
// the map lookup (the hash of its DID and host). Only the reader touches
// it; the window itself is read and written under replayGuard.mu.
type replayCache struct {
	key replayKey
	w   *replayWindow
}

func newReplayGuard(idle time.Duration) *replayGuard {
	return &replayGuard{senders: map[replayKey]*replayWindow{}, idle: idle}
}

// check records nonce for sender and reports whether it is new.
func (g *replayGuard) check(sender Handle, nonce uint64, now time.Time) bool {
	return g.checkCached(nil, sender, nonce, now)
}

// checkCached is check with the window of the last sender kept in c (nil:
// none), when c holds sender's: the same window the guard holds for it.
func (g *replayGuard) checkCached(c *replayCache, sender Handle, nonce uint64, now time.Time) bool {
	key := replayKey{did: sender.DID, host: sender.Host}
	g.mu.Lock()
	defer g.mu.Unlock()
	var w *replayWindow
	if c != nil && c.w != nil && !c.w.swept && c.key == key {
		w = c.w
	} else {
		w = g.senders[key]
		if c != nil {
			c.key, c.w = key, w
		}
	}
	if w == nil {
		w = &replayWindow{top: nonce}
		w.few[0], w.n = nonce, 1
		w.last = now
		g.senders[key] = w
		if c != nil {
			c.w = w
		}
		return true
	}
	w.last = now
	if w.bits == nil {
		return w.checkFew(nonce)
	}
	switch {
	case nonce > w.top:
		shift := nonce - w.top
		if shift >= replayWindowBits {
			*w.bits = [replayWindowBits / 64]uint64{}
		} else {
			w.clearRange(w.top+1, nonce)
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

// checkFew is check while the window holds its nonces in few: the same
// answers as the bitmap's.
func (w *replayWindow) checkFew(nonce uint64) bool {
	switch {
	case nonce > w.top:
		w.top = nonce
	case w.top-nonce >= replayWindowBits:
		return false // too old to tell: refuse
	default:
		for _, seen := range w.few[:w.n] {
			if seen == nonce {
				return false
			}
		}
	}
	if w.n < len(w.few) {
		w.few[w.n] = nonce
		w.n++
		return true
	}
	// The bitmap, with the nonces seen that are still in the window: an
	// older one would mark the bit of a newer nonce.
	w.bits = new([replayWindowBits / 64]uint64)
	for _, seen := range w.few {
		if w.top-seen < replayWindowBits {
			w.set(seen)
		}
	}
	w.set(nonce)
	return true
}

func (w *replayWindow) set(n uint64)   { w.bits[(n/64)%uint64(len(w.bits))] |= 1 << (n % 64) }
func (w *replayWindow) clear(n uint64) { w.bits[(n/64)%uint64(len(w.bits))] &^= 1 << (n % 64) }

// clearRange clears the bits of from through to (to-from <
// replayWindowBits), whole words at a time: a sender's nonces come from
// its host's counter, shared by every actor there, so they jump by
// thousands and a bit at a time cost that many steps per envelope.
func (w *replayWindow) clearRange(from, to uint64) {
	// Counted, not compared with to: to may be the largest uint64.
	for n := to - from + 1; n > 0; {
		if from%64 == 0 && n >= 64 {
			w.bits[(from/64)%uint64(len(w.bits))] = 0
			from, n = from+64, n-64
			continue
		}
		w.clear(from)
		from, n = from+1, n-1
	}
}

func (w *replayWindow) isSet(n uint64) bool {
	return w.bits[(n/64)%uint64(len(w.bits))]&(1<<(n%64)) != 0
}

// sweep forgets senders idle for longer than the maximum expiry.
func (g *replayGuard) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for d, w := range g.senders {
		if now.Sub(w.last) > g.idle {
			w.swept = true
			delete(g.senders, d)
		}
	}
}
