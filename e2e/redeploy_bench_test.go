package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/e2etest"
)

// BenchmarkRedeploy measures self-healing on a network of real processes:
// one orchestrator (no resources onboarded) and three providers, with
// orchestrator.heartbeat 1s and orchestrator.lost_after 3s. A docker
// service (examples/web, answering an HTTP health check every 500ms) runs
// on one provider; each trial kills that provider's dms with SIGKILL and
// polls the orchestrator's API every 50ms for
//
//   - kill → lost: the allocation marked lost (its state, or a "lost" event);
//   - kill → healthy: the allocation healthy on another provider.
//
// Then the killed node starts again on the same home and the trial waits
// until its stale copy (its container of the deployment, found with docker
// ps by the labels dms.node and dms.deployment) is gone, checks that the
// replacement was not disturbed and shuts the deployment down. Each trial
// deploys anew (on whichever provider the placement picks).
//
// Overlap: two copies running and acknowledged at once. The container of a
// killed dms process keeps running (nothing obeys it: its dms is dead, and
// the orchestrator acknowledges only the replacement's reports); the
// window that counts is from the moment the restarted node answers its API
// until its stale container has stopped, while the replacement runs. A
// trial whose window is longer than one heartbeat counts as an overlap;
// the metric overlap-trials must be 0. stale-stop-p95-ms is that window.
//
// The trials are DMS_REDEPLOY_TRIALS (default 20), whatever b.N is: run it
// with -benchtime 1x (bench/run-redeploy.sh does). docs/PERFORMANCE.md
// records the results beside Nomad's and Kubernetes' published figures,
// which the benchmark prints.
//
//	go test -run '^$' -bench Redeploy -benchtime 1x -timeout 30m ./e2e
func BenchmarkRedeploy(b *testing.B) {
	const heartbeat, lostAfter = time.Second, 3 * time.Second
	image := e2etest.DockerImage(b, "./examples/web")
	trials := 20
	if s := os.Getenv("DMS_REDEPLOY_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("DMS_REDEPLOY_TRIALS=%q: want a positive number", s)
		}
		trials = n
	}
	env := append(slices.Clone(clusterEnv),
		"DMS_ORCHESTRATOR_HEARTBEAT="+heartbeat.String(),
		"DMS_ORCHESTRATOR_LOST_AFTER="+lostAfter.String())
	c := newClusterEnv(b, env, "", "1", "1", "1")
	client, user, nodeDID := c.client(b, 0)
	ctx := context.Background()

	// A fresh deployment per trial: a redeploy excludes the providers that
	// failed the node for reschedule.interval, so one deployment killed
	// again and again would run out of providers.
	spec := fmt.Sprintf(`version: v1
allocations:
  web:
    type: service
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution:
      image: %s
      cmd: [serve, ":8080", "redeploy bench"]
    ports: [{port: 8080}]
    healthcheck:
      http: {port: 8080, path: /}
      interval: 500ms
      timeout: 400ms
      retries: 2
`, image)
	deploy := func(trial int) (string, api.DeploymentAlloc) {
		d, err := client.Deploy(ctx, api.DeployRequest{Ensemble: spec, Chains: grants(b, user, nodeDID)})
		if err != nil {
			b.Fatalf("trial %d: %v", trial, err)
		}
		id := d.ID
		b.Cleanup(func() { removeContainers(id) })
		web, err := waitAlloc(ctx, client, id, time.Minute, func(a api.DeploymentAlloc) bool { return a.State == "healthy" })
		if err != nil {
			b.Fatalf("trial %d: %v", trial, err)
		}
		return id, web
	}
	shutdown := func(trial int, id string) {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := client.ShutdownDeployment(cctx, id); err != nil {
			b.Fatalf("trial %d: shutdown: %v", trial, err)
		}
		if _, err := untilGone("", id, time.Now(), time.Minute); err != nil {
			b.Fatalf("trial %d: %v", trial, err)
		}
	}

	var lost, healthy, stale []time.Duration
	overlaps := 0
	b.ResetTimer()
	for trial := range trials {
		b.StopTimer()
		id, web := deploy(trial)
		b.StartTimer()
		p := slices.Index(c.ids, web.Provider)
		if p < 1 {
			b.Fatalf("trial %d: web runs on %q, not on a provider of the cluster", trial, web.Provider)
		}
		t0 := time.Now()
		c.nodes[p].Kill()
		var lostAt time.Time
		web, err := waitAlloc(ctx, client, id, time.Minute, func(a api.DeploymentAlloc) bool {
			if lostAt.IsZero() && (a.State == "lost" || a.Provider != c.ids[p]) {
				lostAt = time.Now()
			}
			return a.Provider != c.ids[p] && a.State == "healthy"
		})
		if err != nil {
			b.Fatalf("trial %d: %v", trial, err)
		}
		healthy = append(healthy, time.Since(t0))
		if d, err := client.Deployment(ctx, id, 0, 0); err == nil {
			if e := firstEvent(d, "lost", t0); !e.IsZero() && (lostAt.IsZero() || e.Before(lostAt)) {
				lostAt = e // the orchestrator's own time of the event, when earlier than seen
			}
		}
		lost = append(lost, lostAt.Sub(t0))

		// The killed node starts again: its stale copy must go, the
		// replacement must not be disturbed.
		c.nodes[p] = c.homes[p].Start(b, "--bootstrap", c.nodes[0].Addr(b))
		ready := time.Now()
		peers := make([]devnet.Peer, len(c.nodes))
		for i, n := range c.nodes {
			peers[i] = n.Peer(b, fmt.Sprintf("node %d", i))
		}
		if err := devnet.Mesh(ctx, peers, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		window, err := untilGone(c.ids[p], id, ready, time.Minute)
		if err != nil {
			b.Fatalf("trial %d: %v", trial, err)
		}
		stale = append(stale, window)
		if window > heartbeat {
			overlaps++
		}
		now, err := waitAlloc(ctx, client, id, 10*time.Second, func(a api.DeploymentAlloc) bool { return a.State == "healthy" })
		if err != nil || now.Provider != web.Provider {
			b.Fatalf("trial %d: the replacement on %s was disturbed when the old provider came back: %+v %v", trial, web.Provider, now, err)
		}
		if n := runningCopies(id); n != 1 {
			b.Fatalf("trial %d: %d containers of the deployment run, want 1", trial, n)
		}
		shutdown(trial, id)
		b.Logf("trial %2d: kill→lost %v, kill→healthy %v, stale copy gone %v after the restart", trial+1, lost[trial].Round(time.Millisecond), healthy[trial].Round(time.Millisecond), window.Round(time.Millisecond))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) }
	b.ReportMetric(ms(percentile(lost, 50)), "lost-p50-ms")
	b.ReportMetric(ms(percentile(lost, 95)), "lost-p95-ms")
	b.ReportMetric(ms(percentile(healthy, 50)), "healthy-p50-ms")
	b.ReportMetric(ms(percentile(healthy, 95)), "healthy-p95-ms")
	b.ReportMetric(ms(percentile(stale, 95)), "stale-stop-p95-ms")
	b.ReportMetric(float64(overlaps), "overlap-trials")
	b.ReportMetric(float64(trials), "trials")
	b.ReportMetric(0, "ns/op")
	b.Logf("anchors (published defaults): Nomad marks a dead client down after ~20s (10s heartbeat TTL + 10s heartbeat_grace), then replaces its allocations; Kubernetes evicts a dead node's pods after ~5m40s (node-monitor-grace-period 40s + 300s not-ready toleration)")
	b.Logf("target: kill→healthy p95 <= lost_after + 5s = %v; overlap trials 0", lostAfter+5*time.Second)
	if overlaps > 0 {
		b.Errorf("%d of %d trials had two copies running and acknowledged for longer than a heartbeat (%v)", overlaps, trials, heartbeat)
	}
}

// pollEvery is the period of the benchmark's measurements.
const pollEvery = 50 * time.Millisecond

// waitAlloc polls the deployment every 50ms until its only allocation
// satisfies cond, and returns it.
func waitAlloc(ctx context.Context, client *api.Client, id string, timeout time.Duration, cond func(api.DeploymentAlloc) bool) (api.DeploymentAlloc, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last api.Deployment
	for ; time.Now().Before(deadline); <-tick.C {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		d, err := client.Deployment(cctx, id, 0, 0)
		cancel()
		if err == nil {
			last = *d
			if d.Terminal() {
				return api.DeploymentAlloc{}, fmt.Errorf("deployment %s ended: %s (%s %s)", id, d.State, d.Reason, d.Message)
			}
			if len(d.Allocations) == 1 && cond(d.Allocations[0]) {
				return d.Allocations[0], nil
			}
		}
	}
	return api.DeploymentAlloc{}, fmt.Errorf("deployment %s: not as awaited within %s: %s (%s), allocations %+v", id, timeout, last.State, last.Message, last.Allocations)
}

// firstEvent returns the time of the first event of kind at or after
// since, or the zero time.
func firstEvent(d *api.Deployment, kind string, since time.Time) time.Time {
	for _, e := range d.Events {
		if e.Kind == kind && !e.Time.Before(since) {
			return e.Time
		}
	}
	return time.Time{}
}

// untilGone polls docker every 50ms until no running container of the
// deployment carries the node's label (any node's when peer is ""), and
// returns how long after from that was.
func untilGone(peer, deployment string, from time.Time, timeout time.Duration) (time.Duration, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for ; time.Since(from) < timeout; <-tick.C {
		filters := []string{"label=dms.deployment=" + deployment}
		if peer != "" {
			filters = append(filters, "label=dms.node="+peer)
		}
		ids, err := containers(filters...)
		if err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return time.Since(from), nil
		}
	}
	return 0, fmt.Errorf("the stale copy of %s on %s still runs %s after its node restarted", deployment, peer, timeout)
}

// runningCopies counts the running containers of the deployment, on every
// node.
func runningCopies(deployment string) int {
	ids, _ := containers("label=dms.deployment=" + deployment)
	return len(ids)
}

// containers lists the IDs of running dms containers matching filters.
func containers(filters ...string) ([]string, error) {
	args := []string{"ps", "-q", "--filter", "label=dms.managed=true"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// removeContainers removes what the deployment left on the engine (the
// containers of killed nodes that never came back).
func removeContainers(deployment string) {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=dms.deployment="+deployment).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}
