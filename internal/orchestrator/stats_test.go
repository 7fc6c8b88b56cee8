package orchestrator_test

import (
	"testing"

	"github.com/dmsnet/dms/internal/orchestrator"
)

// TestStats: a deployment placed in one round counts one round and one
// placement per node of its ensemble.
func TestStats(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	svc := w.nodes[0].svc
	if got := svc.Stats(); got != (orchestrator.Stats{}) {
		t.Fatalf("Stats() before any deployment = %+v", got)
	}
	d := w.submit(task("0.5", "print=counted"))
	waitState(t, svc, d.ID, orchestrator.Completed, orchestrator.Failed)
	got := svc.Stats()
	if got.Placements != 1 || got.Rounds < 1 {
		t.Fatalf("Stats() = %+v, want 1 placement in at least 1 round", got)
	}
}
