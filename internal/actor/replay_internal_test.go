package actor

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// refWindow is the replay window cleared a bit at a time, as it was before
// clearRange: what the window must still answer.
type refWindow struct {
	top  uint64
	seen bool
	bits [replayWindowBits]bool
}

func (w *refWindow) check(nonce uint64) bool {
	switch {
	case !w.seen:
		w.seen, w.top = true, nonce
	case nonce > w.top:
		if nonce-w.top >= replayWindowBits {
			w.bits = [replayWindowBits]bool{}
		} else {
			for n := nonce - w.top; n > 0; n-- {
				w.bits[(nonce-n+1)%replayWindowBits] = false
			}
		}
		w.top = nonce
	case w.top-nonce >= replayWindowBits:
		return false
	case w.bits[nonce%replayWindowBits]:
		return false
	}
	w.bits[nonce%replayWindowBits] = true
	return true
}

// TestReplayWindowJumps checks the guard against the bit-at-a-time window
// over sequences with the jumps a shared host counter makes: small steps,
// jumps of thousands, some older nonces, some repeats.
func TestReplayWindowJumps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint64
		jump  uint64
	}{
		{"small steps", 1, 3},
		{"a shared counter", 1, 3000},
		{"near the window", 1, replayWindowBits - 1},
		{"over the window", 1, 2 * replayWindowBits},
		{"near the top of uint64", math.MaxUint64 - 20_000_000, 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, tc.jump))
			g := newReplayGuard(time.Minute)
			d := Handle{DID: "did:key:zX", Host: "h"}
			var ref refWindow
			now := time.Now()
			n := tc.start
			var sent []uint64
			for i := range 3000 {
				var nonce uint64
				switch r := rng.IntN(10); {
				case r < 6 || len(sent) == 0:
					step := 1 + rng.Uint64N(tc.jump)
					if n > math.MaxUint64-step {
						step = math.MaxUint64 - n
					}
					n += step
					nonce = n
				case r < 8:
					nonce = sent[rng.IntN(len(sent))] // a repeat
				default:
					nonce = n - min(n, rng.Uint64N(2*replayWindowBits)) // older, maybe never seen
				}
				sent = append(sent, nonce)
				if got, want := g.check(d, nonce, now), ref.check(nonce); got != want {
					t.Fatalf("step %d: check(%d) = %v, the bit-at-a-time window says %v", i, nonce, got, want)
				}
			}
		})
	}
}

// TestReplayWindowFew checks the guard against the bit-at-a-time window
// over short sequences, where it keeps the nonces in a list and then
// changes to the bitmap: one sender each, a few nonces with repeats, old
// ones and jumps past the window.
func TestReplayWindowFew(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	steps := []uint64{0, 1, 2, 3, 5, 100, replayWindowBits - 1, replayWindowBits, replayWindowBits + 1, 3 * replayWindowBits}
	for seq := range 20_000 {
		g := newReplayGuard(time.Minute)
		d := Handle{DID: "did:key:zX", Host: "h"}
		var ref refWindow
		base := uint64(1 << 40)
		var trace []uint64
		for i := range 1 + rng.IntN(9) {
			nonce := base
			if rng.IntN(2) == 0 {
				nonce = base + steps[rng.IntN(len(steps))]
			} else {
				nonce = base - min(base, steps[rng.IntN(len(steps))])
			}
			if nonce > base {
				base = nonce
			}
			trace = append(trace, nonce)
			if got, want := g.check(d, nonce, time.Now()), ref.check(nonce); got != want {
				t.Fatalf("sequence %d, step %d (%v): check(%d) = %v, the bit-at-a-time window says %v", seq, i, trace, nonce, got, want)
			}
		}
	}
}

// TestReplayWindowTopNonce checks that a nonce of the largest uint64 ends:
// clearing a bit at a time up to it wrapped around and never returned,
// holding the guard's lock.
func TestReplayWindowTopNonce(t *testing.T) {
	g := newReplayGuard(time.Minute)
	d := Handle{DID: "did:key:zX", Host: "h"}
	done := make(chan bool, 1)
	go func() {
		ok := g.check(d, math.MaxUint64-10, time.Now()) && g.check(d, math.MaxUint64, time.Now()) && !g.check(d, math.MaxUint64, time.Now())
		done <- ok
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the top nonce was refused the first time or accepted twice")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("check of the largest nonce did not return (the window's clearing wrapped around)")
	}
}

// TestReplayCacheAfterSweep checks that a link's cached window is not used
// once the guard forgot it: a nonce recorded in the sender's new window
// (through another link) is refused through the link that cached the old
// one.
func TestReplayCacheAfterSweep(t *testing.T) {
	g := newReplayGuard(time.Minute)
	d := Handle{DID: "did:key:zX", Host: "h"}
	t0 := time.Now()
	var c1, c2 replayCache
	if !g.checkCached(&c1, d, 10, t0) {
		t.Fatal("first nonce refused")
	}
	later := t0.Add(2 * time.Minute)
	g.sweep(later)
	if !g.checkCached(&c2, d, 20, later) {
		t.Fatal("nonce 20 refused in the new window")
	}
	if g.checkCached(&c1, d, 20, later) {
		t.Fatal("nonce 20 accepted twice: the link used the window the guard forgot")
	}
	if !g.checkCached(&c1, d, 21, later) || g.checkCached(&c2, d, 21, later) {
		t.Fatal("nonce 21: the two links do not share the sender's window")
	}
}
