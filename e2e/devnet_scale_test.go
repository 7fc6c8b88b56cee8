//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/devnet/scalebench"
	"github.com/dmsnet/dms/internal/e2etest"
)

// The CI version of bench/run-devnet-scale.sh (docs/PERFORMANCE.md, "Scale:
// a hundred real nodes"): a devnet of 20 nodes, with the settings of a big
// one (devnet.LeanSettings), in which every figure of the benchmark can be
// measured and is sane. No figure is compared with a bound: this machine
// is shared.
func TestDevnetScale(t *testing.T) {
	const n = 20
	bin := e2etest.Binary(t)
	cli := &e2etest.Home{Dir: t.TempDir(), Bin: bin}
	dir := filepath.Join(t.TempDir(), "net")
	t.Cleanup(func() {
		st, err := devnet.Load(dir)
		if err != nil {
			return
		}
		var procs []devnet.Proc
		for _, nd := range st.Nodes {
			procs = append(procs, devnet.Proc{PID: nd.PID, Home: nd.Home})
		}
		if _, err := devnet.Stop(context.Background(), procs, 10*time.Second); err != nil {
			t.Errorf("stop the devnet: %v", err)
		}
		if t.Failed() {
			for _, nd := range st.Nodes {
				log, _ := os.ReadFile(nd.Log)
				lines := strings.Split(strings.TrimSpace(string(log)), "\n")
				t.Logf("last lines of the log of %s:\n%s", nd.Name, strings.Join(lines[max(len(lines)-5, 0):], "\n"))
			}
		}
	})

	r := cli.Run(t, "devnet", "up", "--nodes", "20", "--dir", dir, "--cpu", "1", "--ram", "512MiB", "--disk", "1GiB")
	if r.Code != 0 {
		t.Fatalf("devnet up --nodes %d: %s", n, r)
	}
	if !strings.Contains(r.Stderr, "starting node20... ok (peer 12D3KooW") {
		t.Errorf("devnet up progress lacks node20's start:\n%s", r.Stderr)
	}
	st, err := devnet.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != n || st.Mesh == nil || st.Mesh.TookMS <= 0 || st.Times.StartMS <= 0 || st.Times.HomesMS <= 0 {
		t.Fatalf("devnet.json: %d nodes, mesh %+v, times %+v; want %d nodes and the steps' times", len(st.Nodes), st.Mesh, st.Times, n)
	}
	if !st.Mesh.Discovered && st.Mesh.Dialed == 0 {
		t.Errorf("mesh %+v: neither discovered nor dialed", st.Mesh)
	}

	// The job: examples/hello.yaml beside its module.
	jobDir := t.TempDir()
	e2etest.CopyFile(t, e2etest.WasmModule(t, "./examples/hello"), filepath.Join(jobDir, "hello.wasm"))
	e2etest.CopyFile(t, filepath.Join(e2etest.ModuleRoot(), "examples", "hello.yaml"), filepath.Join(jobDir, "hello.yaml"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := scalebench.Measure(ctx, scalebench.Config{Bin: bin, State: st, Job: filepath.Join(jobDir, "hello.yaml"),
		Samples: 3, Idle: 3 * time.Second, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes: up in %d ms (mesh %+v); peers %d–%d; gossip %+v (reached %d); bid %+v (%d of %d); idle %+v; deploy → running %.0f ms (%s); load %.1f",
		n, st.Times.StartMS, *st.Mesh, rep.PeersMin, rep.PeersMax, rep.Gossip, rep.Reached, rep.Bid, rep.Answered, rep.Asked,
		rep.Idle, rep.Deploy, rep.DeployState, rep.Load[0])

	checks := []struct {
		what string
		ok   bool
	}{
		{"every node connected to the 19 others", rep.PeersMin == n-1 && rep.PeersMax == n-1},
		{"every broadcast reached the 19 other nodes", rep.Reached == n-1 && rep.Gossip.N == 3 && rep.Gossip.P50 > 0 && rep.Gossip.P99 >= rep.Gossip.P50},
		{"every bid round asked and heard all 20 providers", rep.Asked == n && rep.Answered == n && rep.Bid.N == 3 && rep.Bid.P50 > 0},
		{"the idle nodes' memory and CPU were read", rep.Idle.RSSPerNodeMB > 1 && rep.Idle.RSSMaxMB >= rep.Idle.RSSPerNodeMB && rep.Idle.CPUPercent > 0},
		{"the job ran", rep.DeployState == "completed" && rep.Deploy > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("not so: %s", c.what)
		}
	}

	r = cli.Run(t, "devnet", "down", "--dir", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "stopped 20 node(s)") {
		t.Fatalf("devnet down: %s", r)
	}
}
