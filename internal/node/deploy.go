package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/atomicfile"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/store"
)

// Records of the orchestration kept in the store.
var (
	deploymentKind = store.NewKind("deployments", func(d *orchestrator.Deployment) string { return d.ID },
		store.IndexOn("state", func(d *orchestrator.Deployment) string { return string(d.State) }))
	allocationKind = store.NewKind("allocations", func(r allocation.Record) string { return r.ID })
)

// startOrchestration wires the deployment side (orchestrator service), the
// provider side (bids, commits) and the allocations, and resumes what an
// earlier run left. The returned function stops them (workloads of
// executors that outlive the daemon, such as docker, keep running and are
// re-attached at the next start).
func (n *Node) startOrchestration(ctx context.Context) (stop func() error, err error) {
	c := n.cfg.Config
	// The pool of the deployments' subnets, checked against this
	// machine's networks before anything starts (subnetpool.go).
	hostNets, err := hostNetworks()
	if err != nil {
		return nil, err
	}
	pool, err := subnetPool(c.Subnet, hostNets)
	if err != nil {
		return nil, err
	}
	sealer, err := identity.NewSealer(n.cfg.Key, "actor-keys")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(n.cfg.Home, "data")
	stopSubnets := n.startSubnets()
	execs, closeExecs, err := n.executors(data)
	if err != nil {
		stopSubnets()
		return nil, err
	}
	n.offerOnly(execs)
	if n.subnets != nil {
		// The executors' shutdown leaves the containers running: their
		// interfaces close with the data path.
		closeWithout := closeExecs
		closeExecs = func() { closeWithout(); stopSubnets() }
	}
	acfg := allocation.Config{
		System:    n.sys,
		Executors: execs,
		Store:     allocStore{n.db},
		Ledger:    n.resources,
		Wallet:    n.wallet,
		Sealer:    sealer,
		DataDir:   filepath.Join(data, "allocations"),
		Heartbeat: c.Orchestrator.Heartbeat.D(),
		StopAfter: stopAfter(c.Orchestrator),
		Logger:    n.log,
		// Checked at start (moreExecutors) when the vm executor runs.
		DefaultKernel: c.Executor.VM.Kernel,
		ResultsDir:    filepath.Join(data, "results"),
		Tracer:        n.tracer,     // no-op until tracing starts (telemetry)
		ShipLogs:      n.shipLogs(), // logs.go
	}
	if n.metrics != nil {
		acfg.OnStart = n.metrics.ExecutorStart
	}
	if n.subnets != nil {
		acfg.Subnets = n.subnets
	}
	if err := n.storageConfig(c.Storage, &acfg); err != nil {
		closeExecs()
		return nil, err
	}
	n.allocs, err = allocation.New(acfg)
	if err != nil {
		closeExecs()
		return nil, err
	}
	// Contracts (contracts.go): the ledger and the notary on the store.
	if err := n.openContracts(); err != nil {
		closeExecs()
		return nil, err
	}
	provider := allocation.NewProvider(allocation.ProviderConfig{
		Node: n.root, Key: n.cfg.Key, Ledger: n.resources, Allocations: n.allocs,
		Contracts: providerContracts{n.notary}, Wallet: n.wallet,
		ReservationTTL:       c.Orchestrator.ReservationTTL.D(),
		ReservationsPerPeer:  c.Orchestrator.ReservationsPerPeer,
		ReservedSharePerPeer: c.Orchestrator.ReservedSharePerPeer,
		Logger:               n.log,
		Latencies:            n.latencies,
		NoSubnet:             n.noSubnet,
	})
	if err := provider.Register(); err != nil {
		closeExecs()
		return nil, err
	}
	n.provider = provider
	shipped := filepath.Join(data, "shipped")
	if err := os.MkdirAll(shipped, 0o700); err != nil {
		closeExecs()
		return nil, err
	}
	n.deploys, err = orchestrator.NewService(orchestrator.Config{
		System: n.sys, Node: n.root, Key: n.cfg.Key,
		Store:  deployStore{db: n.db, dir: shipped},
		Wallet: n.wallet, Sealer: sealer,
		Peers:        n.connectedPeers,
		BidWindow:    c.Orchestrator.BidWindow.D(),
		QueueTimeout: c.Orchestrator.QueueTimeout.D(),
		LostAfter:    c.Orchestrator.LostAfter.D(),
		StopAfter:    stopAfter(c.Orchestrator),
		Lease:        c.Orchestrator.Lease.D(),
		S3:           s3Results{n.s3},
		Pool:         pool,
		Logger:       n.log,
		// Contracts (contracts.go): one per placed node.
		Contracts:        n.notary,
		ContractInterval: c.Contract.Interval.D(),
		Tracer:           n.tracer,
	})
	if err != nil {
		closeExecs()
		return nil, err
	}
	probeCtx, stopProbe := context.WithCancel(context.Background())
	probed := make(chan struct{})
	go func() { defer close(probed); n.probeLatencies(probeCtx) }()
	n.addSubnetBehavior()
	n.addNoteBehavior()
	n.addSpansBehavior() // trace.go
	if err := n.loadSubnets(); err != nil {
		n.log.Error("restore routing tables", "err", err)
	}
	if err := n.allocs.Resume(ctx); err != nil {
		n.log.Error("resume allocations", "err", err)
	}
	if err := n.deploys.Resume(ctx); err != nil {
		n.log.Error("resume deployments", "err", err)
	}
	stopNotary := n.runNotary()
	return func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopProbe()
		<-probed
		stopNotary()
		err := errors.Join(n.deploys.Close(sctx), n.allocs.Close(sctx))
		closeExecs()
		return err
	}, nil
}

// executors builds the executors enabled in the configuration and usable
// here.
func (n *Node) executors(data string) (map[ensemble.Executor]executor.Executor, func(), error) {
	if n.testExecs != nil {
		return n.testExecs, func() {}, nil
	}
	c := n.cfg.Config.Executor
	execs := map[ensemble.Executor]executor.Executor{}
	var closers []func()
	if c.WASM.Enabled {
		w, err := wasm.New(wasm.Config{
			CacheDir:        filepath.Join(data, "wasm-cache"),
			MaxMemoryPages:  uint32(c.WASM.MaxMemory / (64 << 10)),
			CPUCgroup:       c.WASM.CPUCgroup,
			RequireCPULimit: c.WASM.RequireCPULimit,
			Logger:          n.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("wasm executor: %w", err)
		}
		execs[ensemble.Wasm] = w
		closers = append(closers, func() { w.Close() })
	}
	if err := n.moreExecutors(data, execs, &closers); err != nil {
		for _, cl := range closers {
			cl()
		}
		return nil, nil, err
	}
	return execs, func() {
		for _, cl := range closers {
			cl()
		}
	}, nil
}

// allocStore keeps allocation records in the store.
type allocStore struct{ db *store.DB }

func (s allocStore) Put(r allocation.Record) error {
	return s.db.Update(func(tx *store.Tx) error { return allocationKind.Put(tx, r) })
}

func (s allocStore) Delete(id string) error {
	err := s.db.Update(func(tx *store.Tx) error { return allocationKind.Delete(tx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s allocStore) List() (out []allocation.Record, err error) {
	return out, s.db.View(func(tx *store.Tx) error {
		out, err = allocationKind.List(tx, "")
		return err
	})
}

// deployStore keeps deployments in the store and shipped artifacts as
// files named by digest.
type deployStore struct {
	db  *store.DB
	dir string
}

func (s deployStore) PutDeployment(d *orchestrator.Deployment) error {
	return s.db.Update(func(tx *store.Tx) error { return deploymentKind.Put(tx, d) })
}

func (s deployStore) Deployments() (out []*orchestrator.Deployment, err error) {
	return out, s.db.View(func(tx *store.Tx) error {
		out, err = deploymentKind.List(tx, "")
		return err
	})
}

func (s deployStore) path(digest string) (string, error) {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is not a sha256 digest", digest)
	}
	return filepath.Join(s.dir, hexPart), nil
}

func (s deployStore) PutArtifact(digest string, data []byte) error {
	p, err := s.path(digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

func (s deployStore) Artifact(digest string, offset int64, max int) ([]byte, int64, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact %s: %w", digest, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if offset < 0 || offset > st.Size() {
		return nil, 0, fmt.Errorf("artifact %s: offset %d beyond its %d bytes", digest, offset, st.Size())
	}
	buf := make([]byte, min(int64(max), st.Size()-offset))
	if _, err := f.ReadAt(buf, offset); err != nil && err != io.EOF {
		return nil, 0, err
	}
	return buf, st.Size(), nil
}

// parseSubmission reads what dms deploy and dms plan send: the ensemble and
// the user's delegations to this node, well formed and linked (their trust
// is checked by the caller). Its errors are bad requests; command names the
// CLI command that signs the delegation.
func parseSubmission(ens string, texts []string, command string) (*ensemble.Spec, []cap.Chain, error) {
	bad := func(err error) error { return &apiserver.BadRequest{Err: err} }
	spec, err := ensemble.Parse([]byte(ens))
	if err != nil {
		return nil, nil, bad(err)
	}
	var chains []cap.Chain
	for i, text := range texts {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			return nil, nil, bad(fmt.Errorf("chain %d: %w", i, err))
		}
		if err := c.CheckLinks(); err != nil {
			return nil, nil, bad(fmt.Errorf("chain %d: %w", i, err))
		}
		chains = append(chains, c)
	}
	if len(chains) == 0 {
		return nil, nil, bad(fmt.Errorf("no delegation to this node: dms %s signs one with the user key", command))
	}
	return spec, chains, nil
}

// deploymentService implements apiserver.DeploymentService.
type deploymentService struct{ n *Node }

func (s deploymentService) Submit(ctx context.Context, req api.DeployRequest) (*api.Deployment, error) {
	spec, chains, err := parseSubmission(req.Ensemble, req.Chains, "deploy")
	if err != nil {
		return nil, err
	}
	owner := chains[0].Root()
	// The owner must be trusted here for deployments: the same check a
	// remote /dms/node/deployment/new would pass.
	if err := s.n.verify.VerifyChain(time.Now(), chains[0], deployproto.CmdDeployment, nil); err != nil {
		return nil, err
	}
	d, err := s.n.deploys.Submit(ctx, orchestrator.Submission{Spec: spec, Owner: owner, Chains: chains, Artifacts: req.Artifacts, Secrets: req.Secrets})
	if err != nil {
		return nil, &apiserver.BadRequest{Err: err}
	}
	return apiDeployment(d, false), nil
}

func (s deploymentService) List(context.Context) []api.Deployment {
	var out []api.Deployment
	for _, d := range s.n.deploys.List() {
		out = append(out, *apiDeployment(d, false))
	}
	return out
}

func (s deploymentService) Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	var d *orchestrator.Deployment
	var err error
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		d, err = s.n.deploys.Wait(wctx, id, after)
	} else {
		d, err = s.n.deploys.Get(id)
	}
	if errors.Is(err, orchestrator.ErrNotFound) {
		return nil, &apiserver.NotFound{Err: err}
	}
	if err != nil {
		return nil, err
	}
	return apiDeployment(d, true), nil
}

func (s deploymentService) Shutdown(ctx context.Context, id string) (*api.Deployment, error) {
	d, err := s.n.deploys.Shutdown(ctx, id)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return nil, &apiserver.NotFound{Err: err}
	}
	if err != nil {
		return nil, err
	}
	return apiDeployment(d, false), nil
}

func (s deploymentService) Logs(ctx context.Context, id, alloc string, follow bool, f api.LogFilter, emit func(api.LogLine)) error {
	filter := deployproto.LogFilter{Tail: f.Tail, Since: f.Since, Stream: f.Stream, HealthChecks: f.HealthChecks}
	err := s.n.deploys.Logs(ctx, id, alloc, follow, filter, func(name string, e deployproto.LogEntry) {
		emit(api.LogLine{Allocation: name, Stream: e.Stream, Data: string(e.Data), Time: e.Time})
	})
	if errors.Is(err, orchestrator.ErrNotFound) {
		return &apiserver.NotFound{Err: err}
	}
	return err
}

// apiDeployment converts a deployment for the API. detail adds the
// ensemble and the timeline, which the view of one deployment shows and
// lists leave out.
func apiDeployment(d *orchestrator.Deployment, detail bool) *api.Deployment {
	out := &api.Deployment{
		ID: d.ID, State: string(d.State), Message: d.Message, Version: d.Version, Owner: string(d.Owner),
		Created: d.Created, Updated: d.Updated, ExitCode: d.ExitCode, Round: d.Round,
		Reason: d.Reason, Epoch: d.Epoch, Orchestrator: d.Orchestrator.Host,
		Standbys: slices.Clone(d.Standbys),
	}
	if d.Subnet.IsValid() {
		out.Subnet = d.Subnet.String()
	}
	if detail {
		out.Ensemble = string(d.Spec)
		for _, e := range d.Events {
			out.Events = append(out.Events, api.DeploymentEvent{
				Seq: e.Seq, Time: e.Time, Kind: string(e.Kind), Allocation: e.Allocation, Node: e.Node,
				From: e.From, To: e.To, Epoch: e.Epoch, Message: e.Message,
			})
		}
	}
	for node, p := range d.Placement {
		out.Placement = append(out.Placement, api.DeploymentNode{Node: node, Provider: p.Provider.Host, Reservation: p.Reservation, Score: p.Score, Cost: p.Cost})
	}
	sort.Slice(out.Placement, func(i, j int) bool { return out.Placement[i].Node < out.Placement[j].Node })
	for _, a := range d.Allocations {
		al := api.DeploymentAlloc{Name: a.Name, Node: a.Node, Provider: a.Handle.Host, State: string(a.State), Restarts: a.Restarts, Attempt: a.Attempt, Epoch: a.Epoch, Message: a.Message, LastSeen: a.LastSeen}
		if a.Result != nil {
			code := a.Result.ExitCode
			al.ExitCode = &code
			al.Reason = string(a.Result.Reason)
			al.Started, al.Finished = a.Result.StartedAt, a.Result.FinishedAt
		}
		for _, p := range a.Ports {
			al.Ports = append(al.Ports, fmt.Sprintf("%d:%d/%s", p.Host, p.Guest, p.Protocol))
		}
		if addr, ok := d.Addresses[a.Name]; ok {
			al.Address = addr.String()
		}
		out.Allocations = append(out.Allocations, al)
	}
	sort.Slice(out.Allocations, func(i, j int) bool { return out.Allocations[i].Name < out.Allocations[j].Name })
	for _, c := range d.Candidates {
		out.Candidates = append(out.Candidates, api.DeploymentCandidate{Peer: c.Peer, Node: c.Node, Kind: c.Kind, Reasons: c.Reasons})
	}
	return out
}

// offerOnly restricts the executors the node offers to those it runs: a
// detected Docker engine is no use without the docker executor enabled.
func (n *Node) offerOnly(execs map[ensemble.Executor]executor.Executor) {
	n.runnable = map[string]bool{}
	for e := range execs {
		n.runnable[string(e)] = true
	}
	m := n.resources.Machine()
	var keep []string
	for _, e := range m.Executors {
		if _, ok := execs[ensemble.Executor(e)]; ok {
			keep = append(keep, e)
		}
	}
	m.Executors = n.withFeatures(keep)
	n.resources.SetMachine(m)
}

// Exec implements apiserver.ExecService.
func (s deploymentService) Exec(ctx context.Context, id, alloc string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	var resize chan deployproto.TermSize
	if req.Resize != nil {
		resize = make(chan deployproto.TermSize)
		go func() {
			for {
				select {
				case sz, ok := <-req.Resize:
					if !ok {
						return
					}
					select {
					case resize <- deployproto.TermSize{Rows: sz.Rows, Cols: sz.Cols}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	code, err := s.n.deploys.ExecResizable(ctx, id, alloc, deployproto.ExecRequest{Cmd: req.Cmd, Stdin: req.Stdin, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols}, stdin, stdout, stderr, resize)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return 0, &apiserver.NotFound{Err: err}
	}
	return code, err
}

// stopAfter is the allocations' default StopAfter: orchestrator.stop_after,
// else deployproto.DefaultStopAfterFactor times orchestrator.lost_after.
func stopAfter(o config.Orchestrator) time.Duration {
	if d := o.StopAfter.D(); d > 0 {
		return d
	}
	return deployproto.DefaultStopAfterFactor * o.LostAfter.D()
}
