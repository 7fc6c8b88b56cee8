package orchestrator_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/orchestrator"
)

// TestRoundReleasesUnusedBids: after a broadcast bid round, the providers
// whose bids the placement did not use get their reservations back — by
// one broadcast release when they are many (revertUnused), by a revert
// each when few — and the winner's resources come back when the task
// ends. The reservations outlive the test (ttl a minute), so only the
// release or the reverts free them in time.
func TestRoundReleasesUnusedBids(t *testing.T) {
	for _, n := range []int{3, 24} {
		t.Run(fmt.Sprintf("providers=%d", n), func(t *testing.T) {
			w := newWorld(t, n, worldOpts{bid: 2 * time.Second})
			start := w.free()
			d := w.submit(task("0.5", "exit=0"))
			waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
			w.waitFree(start)
		})
	}
}
