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
	// The offer cache is empty at the first deployment: its round is a
	// broadcast. The second is asked of the providers it shortlists.
	if got.Broadcasts != got.Rounds {
		t.Errorf("Stats() = %+v, want every round of the first deployment a broadcast", got)
	}
	d = w.submit(task("0.5", "print=counted"))
	waitState(t, svc, d.ID, orchestrator.Completed, orchestrator.Failed)
	if next := svc.Stats(); next.Placements != 2 || next.Rounds != got.Rounds+1 || next.Broadcasts != got.Broadcasts {
		t.Errorf("Stats() after a second deployment = %+v (was %+v), want one more placement in one shortlisted round", next, got)
	}
}
