package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	image := e2etest.DockerImage(b, e2etest.Workload)
	c := newCluster(b, "", "1", "1")
	client, user, nodeDID := c.client(b, 0)
	var deploy, run []time.Duration
	ctx := context.Background()
	for i := range b.N {
		// docker run -d, the anchor.
		name := fmt.Sprintf("dms-bench-%d-%d", os.Getpid(), i)
		t0 := time.Now()
		if out, err := exec.Command("docker", "run", "-d", "--name", name, "--cpus", "0.5", "--memory", "64m", image, "sleep=30s").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v\n%s", err, out)
		}
		run = append(run, time.Since(t0))
		exec.Command("docker", "rm", "-f", name).Run()

		// dms: submit → running.
		spec := fmt.Sprintf("version: v1\nallocations:\n  svc:\n    type: service\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: %s, cmd: [sleep=30s]}\n", image)
		req := api.DeployRequest{Ensemble: spec, Chains: grants(b, user, nodeDID)}
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
		if _, err := client.ShutdownDeployment(ctx, d.ID); err != nil {
			b.Fatal(err)
		}
		for !d.Terminal() {
			if d, err = client.Deployment(ctx, d.ID, d.Version, 30*time.Second); err != nil {
				b.Fatal(err)
			}
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
