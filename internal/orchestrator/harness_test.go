package orchestrator_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/storage/transfer"
	"github.com/dmsnet/dms/internal/subnet"
)

// world is an in-process network of nodes, each a provider with the fake
// executor, any of which can orchestrate. Messages travel on an in-memory
// transport; authorization is the test aid actor.AllowAll (the e2e tests
// run the same protocol over libp2p with UCAN).
type world struct {
	t     testing.TB
	net   *actor.MemNetwork
	nodes []*tnode
	user  *identity.Key
	opts  worldOpts
}

type tnode struct {
	key      *identity.Key
	host     *actor.MemHost
	sys      *actor.System
	root     *actor.Actor
	ledger   *resource.Ledger
	allocs   *allocation.Manager
	provider *allocation.Provider
	svc      *orchestrator.Service
	store    *memStore
	exec     *executortest.Executor
	wallet   *memWallet
	sealer   *identity.Sealer
	astore   *allocation.MemStore
	dir      string      // data directory
	opts     worldOpts   // what it was made with
	refuse   bool        // refuse commits (a misbehaving provider)
	notary   *fakeNotary // both sides of contracts, with worldOpts.contracts (contracts_test.go)
	mu       sync.Mutex
}

type worldOpts struct {
	cpu     match.MilliCPU
	ram     match.Bytes
	execCfg executortest.Config
	bid     time.Duration
	lost    time.Duration
	// stopAfter is how long providers run on without a word from the
	// orchestrator (default a minute, so that a provider taken down
	// and back keeps its copy unless a test wants it fenced).
	stopAfter time.Duration
	// ttl is how long providers hold reservations (default a minute, past
	// the tests' deadlines, so that only reverts free them in time).
	ttl time.Duration
	// skipOnboard leaves the nodes without onboarded resources.
	skipOnboard bool
	// latencies is what providers report as their measured round trips.
	latencies func() map[string]time.Duration
	// executors is what the node offers (default wasm and docker); the
	// fake executor runs all of them.
	executors []string
	// subnets is the allocations' side of the subnets (nil: the node
	// runs none).
	subnets allocation.Subnets
	// kernel is the node's default vm kernel.
	kernel string
	// location is where the node says it is.
	location match.Location
	// lease is the orchestrators' lease (standby_test.go); default 1s.
	lease time.Duration
	// pool is the orchestrators' subnet pool (subnet_test.go).
	pool *subnet.Pool
	// contracts gives every node a fakeNotary: orchestrators propose
	// contracts, providers sign them (contracts_test.go).
	contracts bool
	// onRuntime is called with every runtime started (a node's root
	// actor is new at each restart).
	onRuntime func(tn *tnode)
	// workers is how many goroutines run each node's root actor (default
	// 64); the 10,000-provider benchmarks use fewer to bound memory.
	workers int
	// spans, when set, records the spans of every node (trace_test.go):
	// each runtime gets a tracer provider of its own that samples all,
	// with its peer ID as service.instance.id.
	spans sdktrace.SpanProcessor
}

func newWorld(t testing.TB, n int, o worldOpts) *world {
	t.Helper()
	if o.cpu == 0 {
		o.cpu = 2000
	}
	if o.stopAfter == 0 {
		o.stopAfter = time.Minute
	}
	if o.ram == 0 {
		o.ram = 2 << 30
	}
	if o.bid == 0 {
		o.bid = 300 * time.Millisecond
	}
	if o.lost == 0 {
		o.lost = 2 * time.Second
	}
	if o.ttl == 0 {
		o.ttl = time.Minute
	}
	if o.lease == 0 {
		o.lease = time.Second
	}
	if o.workers == 0 {
		o.workers = 64
	}
	w := &world{t: t, net: actor.NewMemNetwork(), user: mustKey(t), opts: o}
	for i := range n {
		oi := o
		if i == 0 {
			oi.workers = 64 // the orchestrator's node keeps its full width
		}
		w.nodes = append(w.nodes, w.addNode(oi))
	}
	return w
}

func (w *world) addNode(o worldOpts) *tnode {
	t := w.t
	key := mustKey(t)
	id, _ := key.DID().PeerID()
	tn := &tnode{key: key, host: w.net.Host(id), store: newMemStore(), wallet: &memWallet{}, astore: allocation.NewMemStore(), dir: t.TempDir()}
	mach := resource.Machine{Executors: []string{"wasm", "docker"}}
	if o.executors != nil {
		mach.Executors = o.executors
	}
	mach.Location = o.location
	mach.CPU.Threads = 64
	mach.RAM.Total = 64 << 30
	mach.Disk.Free = 64 << 30
	var err error
	tn.ledger, err = resource.NewLedger(resource.LedgerConfig{Machine: mach})
	if err != nil {
		t.Fatal(err)
	}
	if !o.skipOnboard {
		tn.onboard(t, o.cpu, o.ram)
	}
	tn.sealer, _ = identity.NewSealer(key, "actor-keys")
	tn.exec = executortest.New(o.execCfg)
	tn.opts = o
	w.startRuntime(tn)
	return tn
}

// startRuntime starts tn's actor system, allocation manager, provider and
// orchestrator service over its host, key and stores, and resumes what
// the stores hold (nothing for a new node).
func (w *world) startRuntime(tn *tnode) {
	t, o := w.t, tn.opts
	var err error
	tn.sys, err = actor.NewSystem(actor.Config{Transport: tn.host, Auth: actor.AllowAll{}, Issuer: actor.AllowAll{}, PeerRate: 1e9, PeerBurst: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tn.root, err = tn.sys.Spawn(tn.key, actor.RootInbox, actor.SpawnOptions{Workers: o.workers})
	if err != nil {
		t.Fatal(err)
	}
	var tracer trace.Tracer
	if o.spans != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans),
			sdktrace.WithResource(sdkresource.NewSchemaless(attribute.String("service.instance.id", tn.host.Self()))))
		tracer = tp.Tracer("dms")
	}
	tn.allocs, err = allocation.New(allocation.Config{
		System: tn.sys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Wasm: tn.exec, ensemble.Docker: tn.exec, ensemble.VM: tn.exec},
		Store: tn.astore, Ledger: tn.ledger, Wallet: tn.wallet, Sealer: tn.sealer,
		DataDir: tn.dir + "/allocations", Heartbeat: 200 * time.Millisecond, DefaultKernel: o.kernel, Subnets: o.subnets,
		Results: dirResults{}, Tracer: tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := allocation.ProviderConfig{
		Node: tn.root, Key: tn.key, Ledger: refusingLedger{tn.ledger, tn}, Allocations: tn.allocs, ReservationTTL: o.ttl,
		Latencies: o.latencies,
	}
	var contracts orchestrator.Contracts
	if o.contracts {
		if tn.notary == nil {
			tn.notary = newFakeNotary(tn.key)
		}
		pcfg.Contracts, pcfg.Wallet, contracts = tn.notary, tn.wallet, tn.notary
	}
	tn.provider = allocation.NewProvider(pcfg)
	if err := tn.provider.Register(); err != nil {
		t.Fatal(err)
	}
	tn.svc, err = orchestrator.NewService(orchestrator.Config{
		System: tn.sys, Node: tn.root, Key: tn.key, Store: tn.store, Wallet: tn.wallet, Sealer: tn.sealer,
		Peers:     func() []string { return w.peersOf(tn) },
		BidWindow: o.bid, QueueTimeout: time.Minute, RetryMax: 500 * time.Millisecond, LostAfter: o.lost, StopAfter: o.stopAfter,
		Lease: o.lease, Pool: o.pool, Contracts: contracts, Tracer: tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.onRuntime != nil {
		o.onRuntime(tn)
	}
	ctx := context.Background()
	if err := tn.allocs.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tn.svc.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	sys, allocs, svc := tn.sys, tn.allocs, tn.svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Close(ctx)
		allocs.Close(ctx)
		sys.Close(ctx)
	})
}

func (tn *tnode) onboard(t testing.TB, cpu match.MilliCPU, ram match.Bytes) {
	t.Helper()
	disk := match.Bytes(10 << 30)
	if _, err := tn.ledger.Onboard(resource.OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) peersOf(self *tnode) []string {
	var out []string
	for _, n := range w.nodes {
		if n != self {
			out = append(out, n.host.Self())
		}
	}
	return out
}

// refusingLedger is the node's ledger, which refuses to commit
// reservations when the node is set to refuse commits.
type refusingLedger struct {
	*resource.Ledger
	tn *tnode
}

func (l refusingLedger) CommitPart(id string, want match.Resources) (resource.Allocation, error) {
	l.tn.mu.Lock()
	refuse := l.tn.refuse
	l.tn.mu.Unlock()
	if refuse {
		return resource.Allocation{}, fmt.Errorf("this provider refuses commits")
	}
	return l.Ledger.CommitPart(id, want)
}

// submit deploys an ensemble from node 0.
func (w *world) submit(yaml string) *orchestrator.Deployment {
	w.t.Helper()
	return w.submitFrom(w.nodes[0], yaml)
}

func (w *world) submitFrom(tn *tnode, yaml string) *orchestrator.Deployment {
	w.t.Helper()
	d, err := tn.svc.Submit(context.Background(), w.submission(tn, yaml))
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// submission is what `dms deploy` sends to node tn: the parsed ensemble and
// the user's delegations to the node (signed on the user's side).
func (w *world) submission(tn *tnode, yaml string) orchestrator.Submission {
	w.t.Helper()
	spec, err := ensemble.Parse([]byte(yaml))
	if err != nil {
		w.t.Fatal(err)
	}
	var chains []cap.Chain
	for _, cmd := range []string{deployproto.CmdDeployment, deployproto.CmdAllocation} {
		d, err := cap.Delegate(w.user, cap.DelegationParams{Audience: tn.key.DID(), Command: cmd, Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			w.t.Fatal(err)
		}
		chains = append(chains, cap.Chain{d})
	}
	return orchestrator.Submission{Spec: spec, Owner: w.user.DID(), Chains: chains}
}

// waitState waits for the deployment to reach a state.
func waitState(t testing.TB, svc *orchestrator.Service, id string, want ...orchestrator.State) *orchestrator.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d *orchestrator.Deployment
	var err error
	var after uint64
	for {
		d, err = svc.Wait(ctx, id, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range want {
			if d.State == s {
				return d
			}
		}
		if ctx.Err() != nil || d.State.Terminal() {
			t.Fatalf("deployment %s: state %s (%s), want %v", id, d.State, d.Message, want)
		}
		after = d.Version
	}
}

// freeOf returns every node's free resources.
func (w *world) free() []match.Resources {
	var out []match.Resources
	for _, n := range w.nodes {
		out = append(out, n.ledger.Free())
	}
	return out
}

// waitFree waits until every node's free resources equal start: no
// reservation or allocation leaked.
func (w *world) waitFree(start []match.Resources) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		now := w.free()
		same := len(now) == len(start)
		for i := range now {
			same = same && now[i].Equal(start[i])
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("resources leaked: free now %v, at start %v", now, start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type memWallet struct {
	mu     sync.Mutex
	chains []cap.Chain
}

func (m *memWallet) Add(c cap.Chain) {
	m.mu.Lock()
	m.chains = append(m.chains, c)
	m.mu.Unlock()
}

type memStore struct {
	mu        sync.Mutex
	deps      map[string]*orchestrator.Deployment
	artifacts map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{deps: map[string]*orchestrator.Deployment{}, artifacts: map[string][]byte{}}
}

func (s *memStore) PutDeployment(d *orchestrator.Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deps[d.ID] = d
	return nil
}

func (s *memStore) Deployments() ([]*orchestrator.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*orchestrator.Deployment
	for _, d := range s.deps {
		out = append(out, d)
	}
	return out, nil
}

func (s *memStore) PutArtifact(digest string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.artifacts[digest] = data
	return nil
}

func (s *memStore) Artifact(digest string, offset int64, max int) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.artifacts[digest]
	if !ok {
		return nil, 0, fmt.Errorf("no artifact %s", digest)
	}
	end := min(int64(len(d)), offset+int64(max))
	return d[offset:end], int64(len(d)), nil
}

func mustKey(t testing.TB) *identity.Key {
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dirResults serves local out volumes with storage/transfer, as the node
// does.
type dirResults struct{}

func (dirResults) Manifest(dir string) (deployproto.ResultFiles, error) {
	m, err := transfer.BuildManifest(dir)
	if err != nil {
		return deployproto.ResultFiles{}, err
	}
	out := deployproto.ResultFiles{Bytes: m.Bytes}
	for _, f := range m.Files {
		out.Files = append(out.Files, deployproto.ResultFile(f))
	}
	return out, nil
}

func (dirResults) Chunk(dir, path string, off int64, n int) ([]byte, error) {
	return transfer.ReadChunk(dir, path, off, n)
}
