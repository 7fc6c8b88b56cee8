package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/identity"
)

// BenchmarkDeployDockerVsRun compares, in one run on a 3-node network of
// real processes, the time from submitting a one-allocation docker
// deployment (REST) until its orchestrator knows the container runs, with
// a bare `docker run -d` of the same image and command (which returns once
// the container started). docs/PERFORMANCE.md records the result.
//
//	go test -run '^$' -bench DeployDockerVsRun -benchtime 10x ./e2e
func BenchmarkDeployDockerVsRun(b *testing.B) {
	deployVsRun(b, func(image string) string {
		return fmt.Sprintf("version: v1\nallocations:\n  svc:\n    type: service\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: %s, cmd: [sleep=30s]}\n", image)
	})
}

// BenchmarkDeployDockerWaveVsRun is BenchmarkDeployDockerVsRun with what
// the second wave added to a start (issue 20, part 4): the deployment's
// subnet (the routing table signed and sent before the start, the
// container's interface and DNS), a size-bounded local volume (an ext4
// image on a loop device, mounted) and its contract, which every placement
// has.
//
//	go test -run '^$' -bench 'DeployDocker(Wave)?VsRun' -benchtime 10x ./e2e
func BenchmarkDeployDockerWaveVsRun(b *testing.B) {
	deployVsRun(b, func(image string) string {
		return fmt.Sprintf("version: v1\nnetwork: {subnet: true}\nallocations:\n  svc:\n    type: service\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: %s, cmd: [sleep=30s]}\n    volumes:\n      scratch: {path: /scratch, size: 64MiB}\n", image)
	})
}

// deployVsRun times, alternately, `docker run -d` and a deployment of
// spec(image) from submit to running, b.N times each.
func deployVsRun(b *testing.B, spec func(image string) string) {
	image := e2etest.DockerImage(b, e2etest.Workload)
	c := newCluster(b, "", "1", "1")
	client, user, nodeDID := c.client(b, 0)
	var deploy, run []time.Duration
	ctx := context.Background()
	warm := warmSandboxes{seen: map[string]bool{}}
	for i := range b.N {
		warm.wait(b)
		// docker run -d, the anchor.
		name := fmt.Sprintf("dms-bench-%d-%d", os.Getpid(), i)
		t0 := time.Now()
		if out, err := exec.Command("docker", "run", "-d", "--name", name, "--cpus", "0.5", "--memory", "64m", image, "sleep=30s").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v\n%s", err, out)
		}
		run = append(run, time.Since(t0))
		exec.Command("docker", "rm", "-f", name).Run()

		// dms: submit → running.
		req := api.DeployRequest{Ensemble: spec(image), Chains: grants(b, user, nodeDID)}
		t0 = time.Now()
		d, err := client.Deploy(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for !(len(d.Allocations) == 1 && d.Allocations[0].State == "running") {
			if d.Terminal() {
				b.Fatalf("deployment %s: %s (%s)", d.ID, d.State, d.Message)
			}
			if d, err = client.Deployment(ctx, d.ID, d.Version, 30*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		deploy = append(deploy, time.Since(t0))
		warm.hosted(d.Allocations[0].Provider)
		if _, err := client.ShutdownDeployment(ctx, d.ID); err != nil {
			b.Fatal(err)
		}
		for !d.Terminal() {
			if d, err = client.Deployment(ctx, d.ID, d.Version, 30*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		if os.Getenv("DMS_BENCH_TRACE") != "" {
			logTimeline(b, client, d.ID, t0, deploy[len(deploy)-1])
		}
	}
	b.StopTimer()
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	b.ReportMetric(float64(med(deploy).Milliseconds()), "deploy-ms")
	b.ReportMetric(float64(med(run).Milliseconds()), "docker-run-ms")
	b.ReportMetric(float64(med(deploy))/float64(med(run)), "ratio")
}

// warmSandboxes keeps the anchor fair: after a docker start the provider
// starts its next network sandbox in the background
// (internal/executor/docker/sandbox.go), and a `docker run -d` timed
// meanwhile would share the daemon with it. Before each anchor, wait
// (bounded) until every provider that hosted a deployment and has been
// seen with a sandbox has one running again. A dms without sandboxes is
// never waited for.
type warmSandboxes struct {
	providers []string
	seen      map[string]bool
}

func (w *warmSandboxes) hosted(provider string) {
	if !slices.Contains(w.providers, provider) {
		w.providers = append(w.providers, provider)
	}
}

func (w *warmSandboxes) wait(b *testing.B) {
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range w.providers {
		for {
			out, err := exec.Command("docker", "ps", "-q", "--filter", "label=dms.sandbox=true", "--filter", "label=dms.node="+p, "--filter", "status=running").Output()
			running := err == nil && len(strings.TrimSpace(string(out))) > 0
			if running {
				w.seen[p] = true
			}
			if running || !w.seen[p] || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the daemon, bounded by deadline
		}
	}
}

// logTimeline logs a deployment's spans (DMS_BENCH_TRACE=1) as offsets
// from its submit at t0, oldest first, to see where submit → running
// (took) went.
func logTimeline(b *testing.B, client *api.Client, id string, t0 time.Time, took time.Duration) {
	t, err := client.DeploymentTrace(context.Background(), id)
	if err != nil {
		b.Logf("trace of %s: %v", id, err)
		return
	}
	spans := append([]api.Span(nil), t.Spans...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "deployment %s: running after %d ms\n", id, took.Milliseconds())
	for _, s := range spans {
		node := s.Node
		if len(node) > 6 {
			node = node[len(node)-6:]
		}
		fmt.Fprintf(&sb, "  +%4d ms %5d ms  %-18s %s\n", s.Start.Sub(t0).Milliseconds(), s.End.Sub(s.Start).Milliseconds(), s.Name, node)
	}
	fmt.Fprint(os.Stderr, sb.String())
}

// grants returns the user's delegations of /dms/deployment and
// /dms/allocation to the node, as dms deploy makes them.
func grants(t testing.TB, user *identity.Key, node identity.DID) []string {
	var out []string
	for _, cmd := range deployCmds {
		d, err := cap.Delegate(user, cap.DelegationParams{Audience: node, Command: cmd, Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		text, err := cap.Chain{d}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, text)
	}
	return out
}

var deployCmds = []string{"/dms/deployment", "/dms/allocation"}

// client returns an API client for node i, its home's user key and the
// node's DID.
func (c *cluster) client(t testing.TB, i int) (*api.Client, *identity.Key, identity.DID) {
	h := c.homes[i]
	addr, err := os.ReadFile(filepath.Join(h.Dir, "api.addr"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(h.Dir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := api.NewClient(api.ClientConfig{Addr: strings.TrimSpace(string(addr)), Token: string(token)})
	if err != nil {
		t.Fatal(err)
	}
	ks := identity.OpenKeystore(filepath.Join(h.Dir, "keys"), identity.DefaultKDF)
	user, err := ks.Load("user", []byte(e2etest.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	did, err := ks.DID("node")
	if err != nil {
		t.Fatal(err)
	}
	return cl, user, did
}
