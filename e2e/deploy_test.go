package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// cluster is a network of real dms processes: node 0 is the operator's
// (its user key is trusted by every node for /dms) and orchestrates.
type cluster struct {
	homes []*e2etest.Home
	nodes []*e2etest.Node
	ids   []string
}

// newCluster starts n nodes, connects them, makes node 0's user the
// operator, and onboards the given CPU on each (empty: none).
// clusterEnv configures every node of a test cluster: a quick benchmark,
// quick loss detection and short bid rounds.
var clusterEnv = []string{"DMS_RESOURCES_BENCHMARK_BUDGET=1s", "DMS_ORCHESTRATOR_LOST_AFTER=4s", "DMS_ORCHESTRATOR_BID_WINDOW=500ms"}

func newCluster(t testing.TB, cpus ...string) *cluster {
	t.Helper()
	return newClusterEnv(t, clusterEnv, cpus...)
}

var (
	wasmOnce sync.Once
	wasmDir  string
	wasmErr  error
)

// workloadModule builds the test workload (print=, sleep=, exit=) as a
// wasip1 module, once per test process.
func workloadModule(t *testing.T) string {
	t.Helper()
	wasmOnce.Do(func() {
		wasmDir, wasmErr = os.MkdirTemp("", "dms-e2e-wasm")
		if wasmErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..")
		cmd := exec.Command("go", "build", "-o", filepath.Join(wasmDir, "workload.wasm"), "./internal/executor/internal/workload")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			wasmErr = fmt.Errorf("build workload: %v\n%s", err, out)
		}
	})
	if wasmErr != nil {
		t.Fatal(wasmErr)
	}
	return filepath.Join(wasmDir, "workload.wasm")
}

// ensembleFile writes an ensemble next to a copy of the workload module.
func ensembleFile(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(workloadModule(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "workload.wasm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func wasmTask(name, cpu string, args ...string) string {
	return fmt.Sprintf(`  %s:
    executor: wasm
    resources: {cpu: %s, ram: 64MiB}
    execution:
      module: workload.wasm
      args: [%s]
`, name, cpu, strings.Join(args, ", "))
}

type deployment struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Message     string `json:"message"`
	ExitCode    *int   `json:"exit_code"`
	Placement   []struct{ Node, Provider string }
	Allocations []struct {
		Name, State, Provider string
		Started, Finished     time.Time
	}
	Candidates []struct {
		Peer, Node, Kind string
		Reasons          []string
	}
}

func (c *cluster) status(t *testing.T, id string) deployment {
	var d deployment
	c.homes[0].JSON(t, &d, "deployment", "status", id)
	return d
}

// A task runs to completion; its logs come back and its exit code is dms
// deploy's.
func TestDeployTaskExitCodeAndLogs(t *testing.T) {
	c := newCluster(t, "", "1", "1")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("job", "0.5", "print=hello-from-the-job", "exit=3"))
	r := c.homes[0].Run(t, "deploy", "-f", f, "--follow")
	if r.Code != 3 || !strings.Contains(r.Stdout, "hello-from-the-job") {
		t.Fatalf("dms deploy: %s; want exit 3 and the job's output", r)
	}
	for _, phase := range []string{"bidding", "committing", "provisioning", "running", "failed"} {
		if !strings.Contains(r.Stderr, phase) {
			t.Errorf("no progress line for %s:\n%s", phase, r.Stderr)
		}
	}
	f = ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("job", "0.5", "print=fine"))
	if r := c.homes[0].Run(t, "deploy", "-f", f); r.Code != 0 {
		t.Fatalf("a task exiting 0: %s", r)
	}
	var list []deployment
	c.homes[0].JSON(t, &list, "deployments")
	if len(list) != 2 {
		t.Fatalf("deployments list: %d, want 2", len(list))
	}
	out := c.homes[0].MustRun(t, "deployment", "logs", list[1].ID)
	if !strings.Contains(out, "hello-from-the-job") {
		t.Fatalf("deployment logs = %q", out)
	}
	c.assertNothingHeld(t)
}

// Two allocations with depends_on start in order; a 2-node gang lands on
// two different providers.
func TestDeployOrderAndGang(t *testing.T) {
	c := newCluster(t, "", "1", "1")
	f := ensembleFile(t, "version: v1\nallocations:\n"+
		wasmTask("first", "0.2", "print=one", "sleep=300ms")+
		wasmTask("second", "0.2", "print=two")+
		"    depends_on: [first]\nnodes:\n  main: {allocations: [first, second]}\n")
	id := strings.TrimSpace(c.homes[0].MustRun(t, "deploy", "-f", f, "--detach"))
	poll.Eventually(t, 30*time.Second, "completed", func() bool { return c.status(t, id).State == "completed" })
	d := c.status(t, id)
	times := map[string][2]time.Time{}
	for _, a := range d.Allocations {
		times[a.Name] = [2]time.Time{a.Started, a.Finished}
	}
	if times["second"][0].Before(times["first"][1]) {
		t.Fatalf("second started at %v, before first finished at %v", times["second"][0], times["first"][1])
	}

	gang := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("a", "0.5", "sleep=100ms")+wasmTask("b", "0.5", "sleep=100ms")+
		"nodes:\n  n1: {allocations: [a]}\n  n2: {allocations: [b]}\n")
	if r := c.homes[0].Run(t, "deploy", "-f", gang); r.Code != 0 {
		t.Fatalf("gang: %s", r)
	}
	var list []deployment
	c.homes[0].JSON(t, &list, "deployments")
	g := c.status(t, list[0].ID)
	if len(g.Placement) != 2 || g.Placement[0].Provider == g.Placement[1].Provider {
		t.Fatalf("gang placement %+v: want two different providers", g.Placement)
	}
	c.assertNothingHeld(t)
}

// Nothing fits: the deployment waits in the queue and says why, per
// candidate; when a provider onboards enough, it proceeds.
func TestDeployQueuedThenProceeds(t *testing.T) {
	c := newCluster(t, "", "0.5", "0.5")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("big", "1.2", "print=finally"))
	id := strings.TrimSpace(c.homes[0].MustRun(t, "deploy", "-f", f, "--detach"))
	var d deployment
	poll.Eventually(t, 20*time.Second, "queued with reasons from both providers", func() bool {
		d = c.status(t, id)
		kinds := map[string]string{}
		for _, cnd := range d.Candidates {
			kinds[cnd.Peer] = cnd.Kind
		}
		return d.State == "queued" && kinds[c.ids[1]] == "resource" && kinds[c.ids[2]] == "resource" && kinds[c.ids[0]] == "onboarding"
	})
	out := c.homes[0].MustRun(t, "deployment", "status", id)
	if !strings.Contains(out, "WHY NOT") || !strings.Contains(out, "cpu") {
		t.Fatalf("status does not say why:\n%s", out)
	}
	c.homes[2].MustRun(t, "onboard", "--cpu", "1.5")
	poll.Eventually(t, 40*time.Second, "completed after onboarding", func() bool { return c.status(t, id).State == "completed" })
	if d = c.status(t, id); d.Placement[0].Provider != c.ids[2] {
		t.Fatalf("placed on %s, want the node that onboarded", d.Placement[0].Provider)
	}
	c.assertNothingHeld(t)
}

// A provider killed mid-run: its allocation is marked lost by the
// orchestrator, which, with no other provider to redeploy it on, waits for
// one while the deployment runs on; a provider that onboards then gets it.
func TestDeployLostProvider(t *testing.T) {
	c := newCluster(t, "", "1", "")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("long", "0.5", "print=started", "sleep=5m")+"reschedule: {delay: 100ms}\n")
	id := strings.TrimSpace(c.homes[0].MustRun(t, "deploy", "-f", f, "--detach"))
	poll.Eventually(t, 30*time.Second, "running", func() bool { return c.status(t, id).State == "running" })
	c.nodes[1].Kill()
	poll.Eventually(t, 30*time.Second, "lost", func() bool {
		d := c.status(t, id)
		return d.State == "running" && len(d.Allocations) == 1 && d.Allocations[0].State == "lost"
	})
	c.homes[2].MustRun(t, "onboard", "--cpu", "1", "--ram", "1GiB", "--disk", "1GiB")
	poll.Eventually(t, 60*time.Second, "redeployed", func() bool {
		d := c.status(t, id)
		return d.State == "running" && len(d.Allocations) == 1 && d.Allocations[0].State == "running" && d.Allocations[0].Provider == c.ids[2]
	})
	c.homes[0].MustRun(t, "deployment", "shutdown", id)
}

// The orchestrator's node restarts: its deployment resumes (the service
// keeps running on its provider) and can be shut down.
func TestDeployResumesAfterRestart(t *testing.T) {
	c := newCluster(t, "", "1")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("svc", "0.5", "print=serving", "sleep=10m")+"    type: service\n")
	id := strings.TrimSpace(c.homes[0].MustRun(t, "deploy", "-f", f, "--detach"))
	poll.Eventually(t, 30*time.Second, "running", func() bool { return c.status(t, id).State == "running" })
	c.nodes[0].Stop(t)
	c.nodes[0] = c.homes[0].Start(t)
	c.homes[0].MustRun(t, "peers", "connect", c.nodes[1].Addr(t))
	if d := c.status(t, id); d.State != "running" {
		t.Fatalf("after restart: %s (%s)", d.State, d.Message)
	}
	// The allocation runs (a fetch cut by the restart is retried), and
	// heartbeats keep arriving: it stays running through the lost window.
	poll.Eventually(t, 30*time.Second, "allocation running", func() bool { return c.status(t, id).Allocations[0].State == "running" })
	for until := time.Now().Add(5 * time.Second); time.Now().Before(until); {
		if d := c.status(t, id); d.State != "running" || d.Allocations[0].State != "running" {
			t.Fatalf("within the lost window: %s, allocation %s (%s)", d.State, d.Allocations[0].State, d.Message)
		}
	}
	out := c.homes[0].MustRun(t, "deployment", "shutdown", id)
	if !strings.Contains(out, "stopped") {
		t.Fatalf("shutdown: %s", out)
	}
	c.assertNothingHeld(t)
}

// assertNothingHeld checks that no provider holds resources any more.
func (c *cluster) assertNothingHeld(t *testing.T) {
	t.Helper()
	for i, h := range c.homes {
		select {
		case <-c.nodes[i].Done():
			continue
		default:
		}
		poll.Eventually(t, 20*time.Second, fmt.Sprintf("node %d holds nothing", i), func() bool {
			var s struct {
				Allocated, Reserved struct {
					CPU float64 `json:"cpu"`
				}
			}
			h.JSON(t, &s, "resources")
			return s.Allocated.CPU == 0 && s.Reserved.CPU == 0
		})
	}
}

// A docker task, from dms deploy to the engine and back: its logs come back
// and its exit code is dms deploy's. (The executor's own tests check the
// container's limits.)
func TestDeployDocker(t *testing.T) {
	image := e2etest.DockerImage(t, e2etest.Workload)
	c := newCluster(t, "", "1")
	dir := t.TempDir()
	f := filepath.Join(dir, "job.yaml")
	os.WriteFile(f, []byte(fmt.Sprintf(`version: v1
allocations:
  job:
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution:
      image: %s
      cmd: [print=hello-from-docker, exit=4]
`, image)), 0o644)
	r := c.homes[0].Run(t, "deploy", "-f", f, "--follow")
	if r.Code != 4 || !strings.Contains(r.Stdout, "hello-from-docker") {
		t.Fatalf("dms deploy (docker): %s; want exit 4 and the job's output", r)
	}
	c.assertNothingHeld(t)
}

// The Docker examples run as their comments say: docker-hello prints its
// greeting; multi starts its task once the web service is healthy.
func TestDeployDockerExamples(t *testing.T) {
	if !e2etest.DockerAvailable() {
		t.Skip("no Docker engine answers: docker tests skipped")
	}
	build := exec.Command("bash", "scripts/example-images.sh")
	build.Dir = e2etest.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/example-images.sh: %v\n%s", err, out)
	}
	c := newCluster(t, "", "1")
	examples := filepath.Join(e2etest.ModuleRoot(), "examples")
	r := c.homes[0].Run(t, "deploy", "-f", filepath.Join(examples, "docker-hello.yaml"), "--follow")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Hello from dms!") || !strings.Contains(r.Stdout, "args: from a container") {
		t.Fatalf("docker-hello: %s", r)
	}
	r = c.homes[0].Run(t, "deploy", "-f", filepath.Join(examples, "multi.yaml"))
	if r.Code != 0 {
		t.Fatalf("multi: %s", r)
	}
	var list []deployment
	c.homes[0].JSON(t, &list, "deployments")
	id := list[0].ID
	poll.Eventually(t, 60*time.Second, "web healthy and report completed", func() bool {
		states := map[string]string{}
		for _, a := range c.status(t, id).Allocations {
			states[a.Name] = a.State
		}
		return states["web"] == "healthy" && states["report"] == "completed"
	})
	logs := c.homes[0].MustRun(t, "deployment", "logs", id)
	if !strings.Contains(logs, "[web] serving on :8080") || !strings.Contains(logs, "[report] Ready from dms!") {
		t.Fatalf("multi logs:\n%s", logs)
	}
	c.homes[0].MustRun(t, "deployment", "shutdown", id)
	c.assertNothingHeld(t)
}

// A docker allocation without cmd runs the image's own entrypoint.
func TestDeployDockerImageDefaults(t *testing.T) {
	image := e2etest.DockerImage(t, "./examples/hello")
	c := newCluster(t, "", "1")
	f := filepath.Join(t.TempDir(), "job.yaml")
	os.WriteFile(f, []byte(fmt.Sprintf("version: v1\nallocations:\n  job:\n    executor: docker\n    resources: {cpu: 0.5, ram: 64MiB}\n    execution: {image: %s}\n", image)), 0o644)
	r := c.homes[0].Run(t, "deploy", "-f", f, "--follow")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Hello from dms!") {
		t.Fatalf("docker without cmd: %s", r)
	}
}
