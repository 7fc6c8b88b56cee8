package cap

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// NonceConfig configures a NonceCache.
type NonceConfig struct {
	// MaxEntries bounds memory; when full (after sweeping expired entries)
	// new nonces are refused. 0 means 1<<20.
	MaxEntries int
	// MaxWindow is the furthest in the future an accepted expiry may lie;
	// it bounds how long an entry is kept. 0 means 10 minutes.
	MaxWindow time.Duration
	// ClockSkew extends how long an entry is kept past its expiry, matching
	// the Verifier's allowance. 0 means DefaultClockSkew, negative none.
	ClockSkew time.Duration
}

const nonceShards = 16

// NonceCache refuses a second message with the same (issuer, nonce) until
// the first one's expiry has passed: replay protection for the actor
// runtime. It is bounded (entries live at most MaxWindow plus the skew; a
// full cache refuses rather than forgets) and safe for concurrent use.
// Time is passed in.
type NonceCache struct {
	max    int // per shard
	window time.Duration
	skew   time.Duration
	seed   maphash.Seed
	shards [nonceShards]nonceShard
}

type nonceShard struct {
	mu        sync.Mutex
	seen      map[string]time.Time // key → forget after; guarded by mu
	nextSweep time.Time            // guarded by mu
	lastSweep time.Time            // guarded by mu
}

// NewNonceCache returns an empty cache.
func NewNonceCache(cfg NonceConfig) *NonceCache {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 1 << 20
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = 10 * time.Minute
	}
	switch {
	case cfg.ClockSkew == 0:
		cfg.ClockSkew = DefaultClockSkew
	case cfg.ClockSkew < 0:
		cfg.ClockSkew = 0
	}
	c := &NonceCache{max: max(1, cfg.MaxEntries/nonceShards), window: cfg.MaxWindow, skew: cfg.ClockSkew, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].seen = map[string]time.Time{}
	}
	return c
}

// Check records (issuer, nonce) of a message that expires at expiry, or
// refuses it with a *DeniedError: RuleReplay when the pair was seen and has
// not expired, when expiry is zero or beyond now + MaxWindow, when the
// nonce is empty, or when the cache is full; RuleExpired when expiry is
// already past.
func (c *NonceCache) Check(now time.Time, issuer identity.DID, nonce []byte, expiry time.Time) error {
	switch {
	case len(nonce) == 0:
		return deny(RuleReplay, TokenInvocation, "no nonce: the message could be replayed")
	case expiry.IsZero():
		return deny(RuleReplay, TokenInvocation, "no expiry: the message could be replayed forever")
	case now.After(expiry.Add(c.skew)):
		return deny(RuleExpired, TokenInvocation, "expired at %s", expiry.UTC().Format(time.RFC3339))
	case expiry.After(now.Add(c.window + c.skew)):
		return deny(RuleReplay, TokenInvocation, "expiry %s is beyond the replay window of %s", expiry.UTC().Format(time.RFC3339), c.window)
	}
	key := string(issuer) + "\x00" + string(nonce)
	s := &c.shards[maphash.String(c.seed, key)%nonceShards]
	forget := expiry.Add(c.skew)
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.seen[key]; ok && !now.After(until) {
		return deny(RuleReplay, TokenInvocation, "nonce already used by %s", issuer.Short())
	}
	// Sweep every quarter window, and when full (at most once a second,
	// so that a full cache costs no O(n) work per message).
	if !now.Before(s.nextSweep) || len(s.seen) >= c.max && now.Sub(s.lastSweep) >= time.Second {
		s.sweepLocked(now)
		s.lastSweep, s.nextSweep = now, now.Add(c.window/4)
	}
	if len(s.seen) >= c.max {
		return deny(RuleReplay, TokenInvocation, "replay cache full (%d entries): try again later", c.max*nonceShards)
	}
	s.seen[key] = forget
	return nil
}

func (s *nonceShard) sweepLocked(now time.Time) {
	for k, until := range s.seen {
		if now.After(until) {
			delete(s.seen, k)
		}
	}
}

// Len returns the number of remembered nonces (expired ones not yet swept
// included).
func (c *NonceCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.seen)
		s.mu.Unlock()
	}
	return n
}
