//go:build integration

package e2e

import (
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest"
)

// TestMetricsPrometheus: a real Prometheus (Debian's package, a server of
// the test's own) scrapes the /metrics of two real dms nodes with their
// API tokens; after a deployment placed by node 0 on node 1, its HTTP API
// answers the placements counter of the orchestrating node, the bids won
// and commits handled on the provider, and the process metrics.
func TestMetricsPrometheus(t *testing.T) {
	if !e2etest.PrometheusAvailable() {
		t.Skip("prometheus is not installed (.ci/run installs it)")
	}
	c := newCluster(t, "", "1")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("job", "0.5", "print=metered"))
	if r := c.homes[0].Run(t, "deploy", "-f", f); r.Code != 0 {
		t.Fatalf("dms deploy: %s", r)
	}
	p := e2etest.StartPrometheus(t,
		e2etest.HomeTarget(t, c.homes[0], "node0"),
		e2etest.HomeTarget(t, c.homes[1], "node1"),
	)
	atLeast := func(v float64) func([]e2etest.Sample) bool {
		return func(s []e2etest.Sample) bool { return len(s) == 1 && s[0].Value >= v }
	}
	for _, q := range []struct {
		query string
		min   float64
	}{
		{`up{job="node0"}`, 1},
		{`up{job="node1"}`, 1},
		{`dms_placements_total{job="node0"}`, 1},
		{`dms_bid_rounds_total{job="node0"}`, 1},
		{`dms_bids_won_total{job="node1"}`, 1},
		{`dms_bids_total{job="node1"}`, 1},
		{`dms_messages_total{job="node1",behavior="/dms/deployment/commit",code="ok"}`, 1},
		{`dms_executor_start_seconds_count{job="node1",executor="wasm"}`, 1},
		{`dms_deployments{job="node0",state="completed"}`, 1},
		{`dms_p2p_peers{job="node0"}`, 1},
		{`dms_p2p_sent_bytes_total{job="node1"}`, 1},
		{`dms_store_commit_seconds_count{job="node0"}`, 1},
		{`process_resident_memory_bytes{job="node1"}`, 1 << 20},
	} {
		s := p.Await(t, q.query, 60*time.Second, atLeast(q.min))
		t.Logf("%s = %v", q.query, s[0].Value)
	}
}
