package orchestrator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
)

// task returns a one-allocation ensemble running the fake workload's
// steps (print=, sleep=, exit=).
func task(cpu string, steps ...string) string {
	return `version: v1
allocations:
  job:
    executor: docker
    resources: {cpu: ` + cpu + `, ram: 64MiB}
    execution:
      image: workload
      cmd: [workload, ` + strings.Join(steps, ", ") + `]
`
}

func TestTaskRunsToCompletion(t *testing.T) {
	w := newWorld(t, 3, worldOpts{})
	start := w.free()
	d := w.submit(task("0.5", "print=hello", "exit=3"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Failed, orchestrator.Completed)
	if d.State != orchestrator.Failed || d.ExitCode == nil || *d.ExitCode != 3 {
		t.Fatalf("deployment = %s exit %v (%s), want failed with exit 3", d.State, d.ExitCode, d.Message)
	}
	var logs strings.Builder
	err := w.nodes[0].svc.Logs(context.Background(), d.ID, "", false, deployproto.LogFilter{}, func(a string, e deployproto.LogEntry) { logs.Write(e.Data) })
	if err != nil || !strings.Contains(logs.String(), "hello") {
		t.Fatalf("logs = %q, %v", logs.String(), err)
	}
	w.waitFree(start)

	d = w.submit(task("0.5", "print=ok"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if *d.ExitCode != 0 {
		t.Fatalf("exit = %d", *d.ExitCode)
	}
	w.waitFree(start)
}

// TestSelfHosted: a node that is its own only provider runs its user's
// job. Its bid travels to itself; an empty latency map (a node with no
// peers) once made the signature check fail on the orchestrator's side.
func TestSelfHosted(t *testing.T) {
	w := newWorld(t, 1, worldOpts{latencies: func() map[string]time.Duration { return map[string]time.Duration{} }})
	d := w.submit(task("0.5", "print=home"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed, orchestrator.Failed)
	if d.State != orchestrator.Completed {
		t.Fatalf("deployment = %s (%s), candidates %v", d.State, d.Message, d.Candidates)
	}
}

func TestDependsOnOrder(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	d := w.submit(`version: v1
allocations:
  first:
    executor: docker
    resources: {cpu: 0.1, ram: 16MiB}
    execution: {image: workload, cmd: [workload, print=first, sleep=200ms]}
  second:
    executor: docker
    resources: {cpu: 0.1, ram: 16MiB}
    execution: {image: workload, cmd: [workload, print=second]}
    depends_on: [first]
nodes:
  main: {allocations: [first, second]}
`)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	first, second := d.Allocations["first"].Result, d.Allocations["second"].Result
	if first == nil || second == nil || second.StartedAt.Before(first.FinishedAt) {
		t.Fatalf("second started %v, before first finished %v", second, first)
	}
}

// TestRejectASubdivision: a job that rejects California runs in another
// US state, on real providers that state their subdivisions; the provider
// in California says why it does not bid (it used to be that every US
// provider was rejected).
func TestRejectASubdivision(t *testing.T) {
	w := newWorld(t, 0, worldOpts{})
	at := func(sub string) worldOpts {
		o := w.opts
		o.location = match.Location{Continent: "NA", Country: "US", Subdivision: sub}
		return o
	}
	sf, ny := w.addNode(at("US-CA")), w.addNode(at("US-NY"))
	w.nodes = append(w.nodes, sf, ny)
	d := w.submitFrom(sf, `version: v1
allocations:
  job: {executor: docker, resources: {cpu: 0.5, ram: 16MiB}, execution: {image: workload, cmd: [workload, print=hi]}}
nodes:
  job: {allocations: [job], location: {reject: [US-CA]}}
`)
	d = waitState(t, sf.svc, d.ID, orchestrator.Completed)
	if got := d.Placement["job"].Provider.Host; got != ny.host.Self() {
		t.Fatalf("placed on %s, want the provider in US-NY", got)
	}
	found := false
	for _, c := range d.Candidates {
		found = found || c.Peer == sf.host.Self() && c.Kind == "location"
	}
	if !found {
		t.Fatalf("candidates %v: want a location reason from the provider in US-CA", d.Candidates)
	}
}

func TestGangLandsOnDistinctProvidersOrNotAtAll(t *testing.T) {
	gang := `version: v1
allocations:
  a: {executor: docker, resources: {cpu: 0.5, ram: 16MiB}, execution: {image: workload, cmd: [workload, sleep=50ms]}}
  b: {executor: docker, resources: {cpu: 0.5, ram: 16MiB}, execution: {image: workload, cmd: [workload, sleep=50ms]}}
nodes:
  n1: {allocations: [a]}
  n2: {allocations: [b]}
`
	// One provider: the gang waits in the queue, with reasons.
	w := newWorld(t, 1, worldOpts{})
	start := w.free()
	d := w.submit(gang)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Queued)
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Queued && len(d.Candidates) > 0 })
	if !strings.Contains(d.Message, "no placement") {
		t.Fatalf("queued message = %q", d.Message)
	}
	w.waitFree(start)
	// A second provider joins: the gang lands on both.
	w.nodes = append(w.nodes, w.addNode(w.opts))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if d.Placement["n1"].Provider.Host == d.Placement["n2"].Provider.Host {
		t.Fatalf("gang placed twice on %s", d.Placement["n1"].Provider.Host)
	}
}

func TestQueuedUntilAProviderOnboards(t *testing.T) {
	w := newWorld(t, 2, worldOpts{cpu: 500})
	d := w.submit(task("1.5", "print=big"))
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		return d.State == orchestrator.Queued && len(d.Candidates) >= 2
	})
	for _, c := range d.Candidates {
		if c.Kind != "resource" || !strings.Contains(strings.Join(c.Reasons, " "), "cpu") {
			t.Fatalf("candidate %v: want a resource (cpu) reason", c)
		}
	}
	w.nodes[1].onboard(t, 2000, 2<<30)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if d.Placement["job"].Provider.Host != w.nodes[1].host.Self() {
		t.Fatalf("placed on %s, want the node that onboarded", d.Placement["job"].Provider.Host)
	}
}

// TestVMJobWithoutKernel: a vm job that brings no kernel goes to a provider
// with a default kernel; one without says why it does not bid (before, it
// bid and refused the commit).
func TestVMJobWithoutKernel(t *testing.T) {
	w := newWorld(t, 1, worldOpts{executors: []string{"wasm"}})
	bare := w.addNode(worldOpts{cpu: 2000, ram: 2 << 30, executors: []string{"vm", "wasm"}})
	w.nodes = append(w.nodes, bare)
	initrd := []byte("an initramfs")
	sum := sha256.Sum256(initrd)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if err := w.nodes[0].store.PutArtifact(digest, initrd); err != nil {
		t.Fatal(err)
	}
	d := w.submit(`version: v1
allocations:
  job:
    executor: vm
    resources: {cpu: 0.5, ram: 64MiB}
    execution:
      initrd: ` + digest + `
      cmd: [workload, print=vm]
`)
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		return d.State == orchestrator.Queued && len(d.Candidates) >= 2
	})
	for _, c := range d.Candidates {
		if c.Kind != "executor" || !strings.Contains(strings.Join(c.Reasons, " "), "vm/kernel") {
			t.Fatalf("candidate %v: want an executor (vm/kernel) reason", c)
		}
	}
	kernel := w.addNode(worldOpts{cpu: 2000, ram: 2 << 30, executors: []string{"vm", "vm/kernel", "wasm"}, kernel: "/boot/vmlinuz"})
	w.nodes = append(w.nodes, kernel)
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool { return d.Placement["job"].Provider.Host != "" })
	if got := d.Placement["job"].Provider.Host; got != kernel.host.Self() {
		t.Fatalf("placed on %s, want the provider with a default kernel", got)
	}
}

func TestProviderRefusesCommit(t *testing.T) {
	w := newWorld(t, 3, worldOpts{})
	start := w.free()
	// Every provider but node 2 refuses commits: the orchestrator reverts
	// and retries until it lands there.
	w.nodes[0].refuse, w.nodes[1].refuse = true, true
	d := w.submit(task("0.5", "print=hi"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if got := d.Placement["job"].Provider.Host; got != w.nodes[2].host.Self() {
		t.Fatalf("placed on %s, want node 2", got)
	}
	w.waitFree(start)
}

func TestProviderDiesBetweenBidAndCommit(t *testing.T) {
	w := newWorld(t, 3, worldOpts{bid: 500 * time.Millisecond, ttl: 3 * time.Second})
	start := w.free()
	// Node 1 answers bid requests and vanishes before the commit: the
	// first commit to it fails, the deployment lands elsewhere.
	w.nodes[1].root.AddBehavior(deployproto.BehaviorCommit, func(ctx context.Context, m *actor.Message) (any, error) {
		w.nodes[1].host.SetDown(true)
		return nil, context.DeadlineExceeded
	})
	d := w.submit(task("0.5", "print=hi"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if d.Placement["job"].Provider.Host == w.nodes[1].host.Self() {
		t.Fatal("placed on the dead provider")
	}
	w.nodes[1].host.SetDown(false)
	// Node 1's reservation expires (its TTL) or is reverted: nothing leaks.
	w.waitFree(start)
}

func TestLostAllocationComesBack(t *testing.T) {
	w := newWorld(t, 2, worldOpts{lost: time.Second})
	w.nodes[0].ledger.Offboard() // the orchestrator's node hosts nothing
	start := w.free()
	d := w.submit(task("0.5", "print=long", "sleep=60s"))
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	w.nodes[1].host.SetDown(true)
	// No other provider: the node waits to be placed again, the
	// deployment keeps running.
	d = waitFor(t, w.nodes[0].svc, d.ID, "lost and waiting", func(d *orchestrator.Deployment) bool {
		return hasInOrder(kinds(d), []orchestrator.EventKind{orchestrator.EventLost, orchestrator.EventRedeploying, orchestrator.EventWaiting})
	})
	if a := d.Allocations["job"]; a.State != deployproto.AllocLost || d.State != orchestrator.Running {
		t.Fatalf("allocation %s, deployment %s (%s): want lost, running", a.State, d.State, d.Message)
	}
	// The provider comes back before a replacement was found: its copy
	// is taken back.
	w.nodes[1].host.SetDown(false)
	d = waitFor(t, w.nodes[0].svc, d.ID, "back", func(d *orchestrator.Deployment) bool {
		return d.Allocations["job"].State == deployproto.AllocRunning
	})
	if a := d.Allocations["job"]; a.Attempt != 1 || !hasInOrder(kinds(d), []orchestrator.EventKind{orchestrator.EventBack}) {
		t.Fatalf("attempt %d, events %v: want the first copy back", a.Attempt, kinds(d))
	}
	if _, err := w.nodes[0].svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped)
	w.waitFree(start)
}

func TestShutdownService(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	start := w.free()
	d := w.submit(`version: v1
allocations:
  web:
    type: service
    executor: docker
    resources: {cpu: 0.5, ram: 32MiB}
    execution: {image: workload, cmd: [workload, print=serving, sleep=1h]}
`)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	if _, err := w.nodes[0].svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped)
	if d.Allocations["web"].State != deployproto.AllocStopped {
		t.Fatalf("web %s", d.Allocations["web"].State)
	}
	w.waitFree(start)
}

// waitUntil long-polls until cond holds: each check waits for the
// deployment's next change.
func waitUntil(t testing.TB, svc *orchestrator.Service, id string, cond func(*orchestrator.Deployment) bool) *orchestrator.Deployment {
	t.Helper()
	var d *orchestrator.Deployment
	err := poll.Until(context.Background(), 30*time.Second, "deployment "+id+": condition", func(ctx context.Context) (bool, error) {
		var after uint64
		if d != nil {
			after = d.Version
		}
		next, err := svc.Wait(ctx, id, after)
		if err != nil {
			return false, err
		}
		d = next
		return cond(d), nil
	})
	if err != nil {
		if d != nil {
			t.Fatalf("%v; state %s (%s)", err, d.State, d.Message)
		}
		t.Fatal(err)
	}
	return d
}

// TestSubmitRefusesUnsupported: an ensemble asking for what this release
// does not do (standby copies, bandwidth) is refused with the path, not
// deployed without it.
func TestSubmitRefusesUnsupported(t *testing.T) {
	w := newWorld(t, 1, worldOpts{})
	for _, tc := range []struct{ name, yaml, want string }{
		{"redundancy", task("0.5", "print=x") + "nodes:\n  job: {allocations: [job], redundancy: 3}\n", "nodes.job.redundancy: 3 copies"},
		{"bandwidth", task("0.5", "print=x") + "nodes:\n  job: {allocations: [job]}\n  other: {allocations: [two]}\n" +
			"edges:\n  - {between: [job, other], rtt: 10ms, bandwidth: 1Gbps}\n", "edges[0].bandwidth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := tc.yaml
			if tc.name == "bandwidth" {
				yaml = strings.Replace(yaml, "allocations:\n", "allocations:\n  two: {executor: docker, execution: {image: workload}}\n", 1)
			}
			_, err := w.nodes[0].svc.Submit(context.Background(), w.submission(w.nodes[0], yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Submit = %v, want a refusal naming %q", err, tc.want)
			}
			if got := w.nodes[0].svc.List(); len(got) != 0 {
				t.Fatalf("%d deployments after a refusal", len(got))
			}
		})
	}
}

// TestBidInAnotherProvidersName: bids are not signed in the binary form,
// so what stops a provider from bidding in another's name is the link: a
// reply that names another provider than the peer it came from is
// dropped. Node 2 answers every bid request with a bid in node 1's name
// (node 1 has nothing onboarded and bids nothing); the deployment waits
// for providers and node 1 is never asked to commit.
func TestBidInAnotherProvidersName(t *testing.T) {
	w := newWorld(t, 3, worldOpts{bid: 300 * time.Millisecond})
	w.nodes[0].ledger.Offboard()
	w.nodes[1].ledger.Offboard()
	victim := w.nodes[1].root.Handle()
	var mu sync.Mutex
	forged, commits := 0, 0
	w.nodes[2].root.AddBehavior(deployproto.BehaviorRequest, func(ctx context.Context, m *actor.Message) (any, error) {
		req, err := deployproto.UnmarshalBidRequest(m.Payload)
		if err != nil {
			return nil, err
		}
		offer := match.Offer{Free: match.Resources{CPU: 4000, RAM: 8 << 30}, Executors: []string{"wasm", "docker"}}
		bid := &deployproto.Bid{Reservation: deployproto.ReservationID(req.Deployment, req.Round), Expires: time.Now().Add(time.Minute), Offer: offer}
		for _, nr := range req.Nodes {
			bid.Nodes = append(bid.Nodes, nr.Name)
		}
		mu.Lock()
		forged++
		mu.Unlock()
		return deployproto.MarshalBidReply(&deployproto.BidReply{Provider: victim, Offer: &offer, Bid: &deployproto.SignedBid{Body: deployproto.MarshalBid(bid)}}), nil
	})
	w.nodes[1].root.AddBehavior(deployproto.BehaviorCommit, func(ctx context.Context, m *actor.Message) (any, error) {
		mu.Lock()
		commits++
		mu.Unlock()
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: "no reservation"}
	})
	d := w.submit(task("0.5", "print=hi"))
	d = waitFor(t, w.nodes[0].svc, d.ID, "queued after a round with the forged bid", func(d *orchestrator.Deployment) bool {
		mu.Lock()
		defer mu.Unlock()
		return d.State == orchestrator.Queued && forged > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if commits != 0 || len(d.Placement) != 0 {
		t.Fatalf("%d commits to node 1, placement %+v: the bid in node 1's name was taken", commits, d.Placement)
	}
}
