package orchestrator_test

import (
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/orchestrator"
)

// TestQueuedMessageSaysHowToGetAnExecutor: a docker job on a network whose
// providers offer wasm only (a devnet started without --executor) waits in
// the queue, and its message says how to get docker there; so does the
// failure at the queue timeout.
func TestQueuedMessageSaysHowToGetAnExecutor(t *testing.T) {
	w := newWorld(t, 2, worldOpts{executors: []string{"wasm"}})
	d := w.submit(task("0.5", "print=hi"))
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		return d.State == orchestrator.Queued && len(d.Candidates) >= 2
	})
	const want = "; no provider offers executor docker (on a devnet: dms devnet up --executor wasm,docker)"
	if !strings.HasSuffix(d.Message, want) {
		t.Errorf("queued message = %q, want it to end with %q", d.Message, want)
	}
	for _, c := range d.Candidates {
		if c.Kind != "executor" {
			t.Errorf("candidate %v: want an executor reason", c)
		}
	}
	// At the queue timeout, the failure says it too.
	d = w.submit(task("0.5", "print=hi") + "timeouts: {queue: 1s}\n")
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Failed)
	if !strings.HasPrefix(d.Message, "no placement before the queue timeout: ") || !strings.HasSuffix(d.Message, want) {
		t.Errorf("failed message = %q, want the queue timeout and %q", d.Message, want)
	}
}
