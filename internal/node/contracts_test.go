package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/notary"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/store"
)

// newOrchNode starts a node's store, capabilities, resources, network
// and orchestration (the executors replaced by the fake one, which runs
// docker specs) in the test process, trusting user for /dms as a home
// made by dms init does. price, when set, is what it asks as a provider;
// a node given no resources (cpu 0) does not bid.
func newOrchNode(t *testing.T, user *identity.Key, cpu match.MilliCPU, price match.Price) *Node {
	t.Helper()
	return newOrchNodeWith(t, user, cpu, price, nil)
}

// newOrchNodeWith is newOrchNode with before called on the node before its
// network starts (trace_test.go gives it a tracer).
func newOrchNodeWith(t *testing.T, user *identity.Key, cpu match.MilliCPU, price match.Price, before func(n *Node)) *Node {
	t.Helper()
	home := t.TempDir()
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	cfg.Executor.Docker.Enabled, cfg.Executor.VM.Enabled, cfg.Executor.WASM.Enabled = false, false, false
	cfg.Resources.BenchmarkBudget = config.Duration(400 * time.Millisecond)
	cfg.Resources.ReserveCPU, cfg.Resources.ReserveRAM, cfg.Resources.ReserveDisk = 0, 64<<20, 64<<20
	cfg.Orchestrator.BidWindow = config.Duration(300 * time.Millisecond)
	cfg.Orchestrator.Heartbeat = config.Duration(200 * time.Millisecond)
	cfg.Orchestrator.LostAfter = config.Duration(5 * time.Second)
	cfg.Contract.Interval = config.Duration(time.Second)
	n := &Node{
		cfg:       Config{Home: home, Config: cfg, Key: mustKey(t), UserDID: user.DID(), Version: "test", Logger: slog.New(slog.DiscardHandler)},
		log:       slog.New(slog.DiscardHandler),
		started:   time.Now(),
		wallet:    newWallet(),
		testExecs: map[ensemble.Executor]executor.Executor{},
	}
	fake := executortest.New(executortest.Config{})
	n.testExecs[ensemble.Docker] = fake
	if err := os.MkdirAll(filepath.Join(home, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if n.db, err = store.Open(filepath.Join(home, StoreFile), store.Options{Timeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.db.Close() })
	if err := n.startCaps(); err != nil {
		t.Fatal(err)
	}
	if err := n.startResources(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := n.resources.Machine()
	m.Executors = []string{"docker"}
	n.resources.SetMachine(m)
	if cpu > 0 {
		ram, disk := match.Bytes(1<<30), match.Bytes(2<<30)
		if _, err := n.resources.Onboard(resource.OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk, Price: &price}); err != nil {
			t.Fatal(err)
		}
	}
	if before != nil {
		before(n)
	}
	stopNet, err := n.startNetwork(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNet() })
	n.addResourceBehaviors()
	stopOrch, err := n.startOrchestration(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrch() })
	return n
}

// deployFrom submits yaml to n as user, with user's delegations to n.
func deployFrom(t *testing.T, n *Node, user *identity.Key, yaml string) *orchestrator.Deployment {
	t.Helper()
	spec, err := ensemble.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var chains []cap.Chain
	for _, cmd := range []string{deployproto.CmdDeployment, deployproto.CmdAllocation} {
		d, err := cap.Delegate(user, cap.DelegationParams{Audience: n.cfg.Key.DID(), Command: cmd, Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		chains = append(chains, cap.Chain{d})
	}
	d, err := n.deploys.Submit(context.Background(), orchestrator.Submission{Spec: spec, Owner: user.DID(), Chains: chains})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDeployment polls until cond holds of deployment id on n.
func waitDeployment(t *testing.T, n *Node, id string, what string, cond func(d *orchestrator.Deployment) bool) *orchestrator.Deployment {
	t.Helper()
	var d *orchestrator.Deployment
	err := poll.Until(context.Background(), 40*time.Second, what, func(context.Context) (bool, error) {
		var err error
		d, err = n.deploys.Get(id)
		return err == nil && cond(d), err
	})
	if err != nil {
		t.Fatalf("%v: deployment %s (%s), candidates %v", err, d.State, d.Message, d.Candidates)
	}
	return d
}

// contractsOf returns n's records of a deployment's contracts.
func contractsOf(t *testing.T, n *Node, deployment string) []notary.Record {
	t.Helper()
	rs, err := n.notary.List(deployment)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// pair is a requester node (no resources of its own) and a provider
// node, connected, trusting the same user.
func pair(t *testing.T, price match.Price) (user *identity.Key, req, prov *Node) {
	user = mustKey(t)
	req = newOrchNode(t, user, 0, match.Price{})
	prov = newOrchNode(t, user, 2000, price)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := req.host.Connect(ctx, prov.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	return user, req, prov
}

// A deployment runs under a contract with 1 s notes: the notes are
// countersigned as they come, the deployment's shutdown ends the
// contract with a final note, and both nodes' ledgers agree with it.
func TestContractNotesAndLedgers(t *testing.T) {
	// Disk: 3600 per GiB-hour, 1 GiB reserved: 0.001 per ms of run
	// time, whatever the CPU does.
	user, req, prov := pair(t, match.Price{CPU: 1_000_000, Disk: 3_600_000_000})
	d := deployFrom(t, req, user, `version: v1
contract: {interval: 1s, budget: 1000}
allocations:
  svc:
    type: service
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB, disk: 1GiB}
    execution: {image: workload, cmd: [workload, sleep=1h]}
`)
	d = waitDeployment(t, req, d.ID, "running", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Running })
	id := d.Allocations["svc"].Contract
	if id == "" {
		t.Fatal("the allocation has no contract")
	}
	// Notes flow and are countersigned.
	poll.Eventually(t, 20*time.Second, "three countersigned notes", func() bool {
		rs := contractsOf(t, req, d.ID)
		return len(rs) == 1 && rs[0].Accepted != nil && rs[0].Accepted.Note() != nil && rs[0].Accepted.Note().Seq >= 3
	})
	rs := contractsOf(t, req, d.ID)
	if r := rs[0]; r.Contract.ID != id || r.Role != notary.RoleRequester || r.State != notary.StateActive || !r.Contract.Signed() {
		t.Fatalf("requester's record: id %s role %s state %s signed %v", r.Contract.ID, r.Role, r.State, r.Contract.Signed())
	}
	if amt := rs[0].Accepted.Note().Amount; amt <= 0 {
		t.Fatalf("countersigned amount %s, want more than 0 after seconds of run time", amt)
	}
	// Shut down: the final note is the invoice, countersigned.
	if _, err := req.deploys.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, req, d.ID, "stopped", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Stopped })
	var final *contract.Note
	poll.Eventually(t, 20*time.Second, "the final note countersigned on both sides", func() bool {
		r, err := req.notary.Get(id)
		p, perr := prov.notary.Get(id)
		if err != nil || perr != nil || r.Accepted == nil || p.Accepted == nil {
			return false
		}
		if !r.Accepted.Note().Final || p.Accepted.Hash != r.Accepted.Hash {
			return false
		}
		final = r.Accepted.Note()
		return true
	})
	// Both ledgers settled the invoice: what the requester paid is what
	// the provider received.
	ctx := context.Background()
	poll.Eventually(t, 10*time.Second, "the ledgers settled the invoice", func() bool {
		paid, err := req.ledger.Balance(ctx, req.cfg.Key.DID())
		got, gerr := prov.ledger.Balance(ctx, prov.cfg.Key.DID())
		return err == nil && gerr == nil && paid.Paid == final.Amount && got.Received == final.Amount
	})
	if final.Amount <= 0 {
		t.Fatalf("invoice of %s", final.Amount)
	}
	t.Logf("invoice: note %d, run time %d ms, cpu %d µs, amount %s", final.Seq, final.Usage.WallMillis, final.Usage.CPUMicros, final.Amount)
	// The provider's ledger and the requester's agree on the requester's
	// side too.
	a, _ := req.ledger.Balance(ctx, req.cfg.Key.DID())
	b, _ := prov.ledger.Balance(ctx, req.cfg.Key.DID())
	if a.Paid != b.Paid {
		t.Fatalf("requester paid %s by its ledger, %s by the provider's", a.Paid, b.Paid)
	}
}

// A budget of 2.5 s of run time stops the deployment with "budget
// exhausted", on both sides, after the notes within it were
// countersigned.
func TestContractBudgetExhausted(t *testing.T) {
	user, req, prov := pair(t, match.Price{Disk: 3_600_000}) // 1 GiB reserved: 1 micro-unit per ms
	d := deployFrom(t, req, user, `version: v1
contract: {interval: 1s, budget: 0.0025}
allocations:
  svc:
    type: service
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB, disk: 1GiB}
    execution: {image: workload, cmd: [workload, sleep=1h]}
`)
	d = waitDeployment(t, req, d.ID, "failed", func(d *orchestrator.Deployment) bool { return d.State.Terminal() })
	if d.State != orchestrator.Failed || d.Reason != orchestrator.ReasonBudgetExhausted || d.Message != "budget exhausted" {
		t.Fatalf("deployment %s reason %q message %q, want failed, budget exhausted", d.State, d.Reason, d.Message)
	}
	id := d.Allocations["svc"].Contract
	// The provider stops the allocations too, and what the requester owes
	// stays within the budget.
	poll.Eventually(t, 20*time.Second, "the provider's contract stopped or closed", func() bool {
		p, err := prov.notary.Get(id)
		return err == nil && (p.State == notary.StateStopped || p.State == notary.StateClosed)
	})
	r, err := req.notary.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accepted == nil || r.Accepted.Note().Amount > 2500 || r.Accepted.Note().Amount <= 0 {
		t.Fatalf("countersigned %+v, want a note within the budget 0.0025", r.Accepted)
	}
	t.Logf("stopped after note %d: %s countersigned of the budget 0.0025", r.Accepted.Note().Seq, r.Accepted.Note().Amount)
	for _, rec := range prov.allocs.List() {
		if rec.Deployment == d.ID && !rec.State.Terminal() {
			t.Fatalf("allocation %s still %s on the provider", rec.Allocation, rec.State)
		}
	}
}

// A node that places a deployment on itself is both parties of the
// contract: its notes go to its own root actor and are countersigned.
func TestContractSelfHosted(t *testing.T) {
	user := mustKey(t)
	n := newOrchNode(t, user, 2000, match.Price{Disk: 3_600_000_000})
	d := deployFrom(t, n, user, `version: v1
contract: {interval: 1s}
allocations:
  svc:
    type: service
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB, disk: 1GiB}
    execution: {image: workload, cmd: [workload, sleep=1h]}
`)
	d = waitDeployment(t, n, d.ID, "running", func(d *orchestrator.Deployment) bool { return d.State == orchestrator.Running })
	id := d.Allocations["svc"].Contract
	poll.Eventually(t, 20*time.Second, "two countersigned notes on both sides", func() bool {
		roles := map[notary.Role]uint64{}
		for _, r := range contractsOf(t, n, d.ID) {
			if r.Contract.ID == id && r.Accepted != nil {
				roles[r.Role] = r.Accepted.Note().Seq
			}
		}
		return roles[notary.RoleRequester] >= 2 && roles[notary.RoleProvider] >= 2
	})
}
