package actor

import (
	"testing"
	"time"
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
