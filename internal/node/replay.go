package node

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// usedNonce is a one-shot invocation this node accepted, kept in the store
// until it expires so that a restart does not accept it again.
type usedNonce struct {
	Key    string       `json:"key"` // hex SHA-256 of issuer, 0, nonce
	Issuer identity.DID `json:"issuer"`
	Nonce  []byte       `json:"nonce"`
	Expiry time.Time    `json:"expiry"`
}

var usedNonceKind = store.NewKind("invocation-nonces", func(u usedNonce) string { return u.Key })

// replayCache accepts each one-shot invocation — (issuer, nonce) — once
// until it expires, across restarts. The check is in memory (a
// cap.NonceCache, loaded from the store at start); what it accepts is
// written to the store by one goroutine, in batches: every write
// transaction (one fsync) takes all the nonces accepted while the previous
// one ran, so the per-envelope cost is an append under a lock. A clean stop
// flushes the rest; a crash loses at most the nonces accepted during the
// last write (a few milliseconds), which could then be replayed until they
// expire.
type replayCache struct {
	mem    *cap.NonceCache
	db     *store.DB // nil: memory only (in-process tests)
	log    *slog.Logger
	window time.Duration

	mu      sync.Mutex
	pending []usedNonce // accepted, not yet written; guarded by mu
	closed  bool        // guarded by mu
	kick    chan struct{}
	done    chan struct{}
}

// replayEntries bounds the nonces remembered: beyond it (after sweeping the
// expired ones) one-shot invocations are refused until some expire.
const replayEntries = 1 << 18

// newReplayCache opens the replay cache on db (nil: memory only), loading
// the unexpired nonces of earlier runs and deleting the expired ones.
// window is the furthest ahead an accepted invocation may expire; skew is
// the verifier's clock-skew allowance (0: the default).
func newReplayCache(db *store.DB, window, skew time.Duration, log *slog.Logger, now time.Time) (*replayCache, error) {
	c := &replayCache{
		mem:    cap.NewNonceCache(cap.NonceConfig{MaxEntries: replayEntries, MaxWindow: window, ClockSkew: skew}),
		db:     db,
		log:    log,
		window: window,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if db == nil {
		close(c.done)
		return c, nil
	}
	loaded := 0
	err := db.Update(func(tx *store.Tx) error {
		all, err := usedNonceKind.List(tx, "")
		if err != nil {
			return err
		}
		for _, u := range all {
			if c.mem.Check(now, u.Issuer, u.Nonce, u.Expiry) != nil {
				// Expired (or unreadable): nothing left to refuse.
				if err := usedNonceKind.Delete(tx, u.Key); err != nil {
					return err
				}
				continue
			}
			loaded++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	log.Debug("replay cache loaded", "nonces", loaded)
	go c.write()
	return c, nil
}

// use accepts inv once: a second use before its expiry, one with no expiry
// or one expiring beyond the window is refused with the runtime's replay
// code.
func (c *replayCache) use(now time.Time, inv *cap.Invocation) error {
	if err := replayCode(inv, c.mem.Check(now, inv.Issuer(), inv.Nonce(), inv.Expiry())); err != nil {
		return err
	}
	if c.db == nil {
		return nil
	}
	u := usedNonce{Key: nonceKey(inv.Issuer(), inv.Nonce()), Issuer: inv.Issuer(), Nonce: inv.Nonce(), Expiry: inv.Expiry()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.pending = append(c.pending, u)
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func nonceKey(issuer identity.DID, nonce []byte) string {
	h := sha256.New()
	h.Write([]byte(issuer))
	h.Write([]byte{0})
	h.Write(nonce)
	return hex.EncodeToString(h.Sum(nil))
}

// write stores pending nonces until close, and prunes expired ones every
// quarter window.
func (c *replayCache) write() {
	defer close(c.done)
	nextPrune := time.Now().Add(c.window / 4)
	for {
		_, open := <-c.kick
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		now := time.Now()
		prune := !now.Before(nextPrune)
		if len(batch) > 0 || prune {
			err := c.db.Update(func(tx *store.Tx) error {
				for _, u := range batch {
					if err := usedNonceKind.Put(tx, u); err != nil {
						return err
					}
				}
				if prune {
					return pruneNonces(tx, now)
				}
				return nil
			})
			if err != nil {
				c.log.Error("replay cache not written: nonces accepted since could be replayed after a restart", "nonces", len(batch), "err", err)
			}
			if prune {
				nextPrune = now.Add(c.window / 4)
			}
		}
		if !open {
			return
		}
	}
}

func pruneNonces(tx *store.Tx, now time.Time) error {
	all, err := usedNonceKind.List(tx, "")
	if err != nil {
		return err
	}
	for _, u := range all {
		if now.After(u.Expiry.Add(cap.DefaultClockSkew)) {
			if err := usedNonceKind.Delete(tx, u.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// close writes what is pending and stops the writer.
func (c *replayCache) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.db != nil {
		close(c.kick)
	}
	c.mu.Unlock()
	<-c.done
}
