package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/store"
)

// The resource accounting lives in the store as one record of the kind
// "resources": the Ledger's JSON document, rewritten by every change in
// one bbolt transaction, so a change the Ledger reported survives kill -9.
type resourceDoc struct {
	Key string          `json:"key"`
	Doc json.RawMessage `json:"doc"`
}

var resourceDocs = store.NewKind("resources", func(d resourceDoc) string { return d.Key })

const resourceDocKey = "accounting"

// storePersister is the resource.Persister of the node: one record in the
// store.
type storePersister struct{ db *store.DB }

var _ resource.Persister = storePersister{}

func (p storePersister) Load() ([]byte, error) {
	var out []byte
	err := p.db.View(func(tx *store.Tx) error {
		d, err := resourceDocs.Get(tx, resourceDocKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = d.Doc
		return nil
	})
	return out, err
}

func (p storePersister) Save(data []byte) error {
	return p.db.Update(func(tx *store.Tx) error {
		return resourceDocs.Put(tx, resourceDoc{Key: resourceDocKey, Doc: data})
	})
}

// resourceRuntime is what the resource part of the node keeps besides the
// Ledger.
type resourceRuntime struct {
	log     *slog.Logger
	dataDir string
	detect  resource.DetectConfig
	budget  time.Duration // of a benchmark run
	// gate lets one benchmark run at a time (they would measure each
	// other); a full channel is a run in progress.
	gate chan struct{}
}

// startResources detects the machine and restores the resource accounting
// from the store. The benchmark is not run here: onboarding runs it when no
// scores of the current benchmark version exist, and `dms benchmark` on
// demand.
func (n *Node) startResources(ctx context.Context) error {
	c := n.cfg.Config
	log := n.log.With("component", "resource")
	dataDir := filepath.Join(n.cfg.Home, "data")
	n.res = resourceRuntime{
		log:     log,
		dataDir: dataDir,
		budget:  c.Resources.BenchmarkBudget.D(),
		gate:    make(chan struct{}, 1),
		detect: resource.DetectConfig{
			DataDir:      dataDir,
			Location:     match.Location{Continent: c.Location.Continent, Country: c.Location.Country, Subdivision: c.Location.Subdivision, City: c.Location.City},
			DockerSocket: dockerSocket(c.Executor.Docker.Enabled, c.Executor.Docker.Host),
			LookPath:     qemuLookPath(c.Executor.VM.QEMU),
			Logger:       log,
		},
	}
	if n.res.budget <= 0 {
		n.res.budget = resource.DefaultBudget
	}
	mach, err := n.detectMachine(ctx)
	if err != nil {
		return fmt.Errorf("start resources: %w", err)
	}
	n.resources, err = resource.NewLedger(resource.LedgerConfig{
		Machine:   mach,
		Reserve:   match.Resources{CPU: c.Resources.ReserveCPU, RAM: c.Resources.ReserveRAM, Disk: c.Resources.ReserveDisk},
		Persister: storePersister{n.db},
		Logger:    log,
	})
	if err != nil {
		return fmt.Errorf("start resources: %w", err)
	}
	if _, ok := n.resources.Onboarded(); ok && n.benchmarkDue() {
		log.Warn("no benchmark scores of this version: the next `dms onboard` or `dms benchmark` measures the machine", "benchmark_version", resource.BenchmarkVersion)
	}
	log.Info("machine detected", "cpu", mach.CPU.Model, "threads", mach.CPU.Threads, "ram", mach.RAM.Total.String(),
		"disk_free", mach.Disk.Free.String(), "gpus", len(mach.GPUs), "executors", strings.Join(mach.Executors, ","))
	return nil
}

// detectMachine runs Detect and keeps only the executors the config
// enables and, once the orchestration started, those the node runs.
func (n *Node) detectMachine(ctx context.Context) (resource.Machine, error) {
	mach, err := resource.Detect(ctx, n.res.detect)
	if err != nil {
		return resource.Machine{}, err
	}
	ex := n.cfg.Config.Executor
	enabled := map[string]bool{resource.ExecutorDocker: ex.Docker.Enabled, resource.ExecutorVM: ex.VM.Enabled, resource.ExecutorWasm: ex.WASM.Enabled}
	var keep []string
	for _, e := range mach.Executors {
		if on, known := enabled[e]; (on || !known) && (n.runnable == nil || n.runnable[e]) {
			keep = append(keep, e)
		}
	}
	mach.Executors = n.withFeatures(keep)
	if n.res.detect.DockerSocket == "-" && ex.Docker.Enabled {
		mach.Warnings = append(mach.Warnings, fmt.Sprintf("docker host %s is not a unix socket: not probed", ex.Docker.Host))
	}
	return mach, nil
}

// dockerSocket is the socket Detect pings: "-" (skip) when the executor is
// off or the host is not a unix socket; "" (the default socket) when no host
// is configured.
func dockerSocket(enabled bool, host string) string {
	switch {
	case !enabled:
		return "-"
	case host == "":
		return ""
	case strings.HasPrefix(host, "unix://"):
		return strings.TrimPrefix(host, "unix://")
	case strings.HasPrefix(host, "/"):
		return host
	}
	return "-"
}

// qemuLookPath finds the configured QEMU binary when Detect looks for
// qemu-system-<arch>.
func qemuLookPath(qemu string) func(string) (string, error) {
	return func(file string) (string, error) {
		if qemu != "" && strings.HasPrefix(file, "qemu-system-") {
			return exec.LookPath(qemu)
		}
		return exec.LookPath(file)
	}
}

// benchmarkDue reports whether there are no scores of the current
// benchmark version.
func (n *Node) benchmarkDue() bool {
	s, ok := n.resources.Scores()
	return !ok || s.Version != resource.BenchmarkVersion
}

// benchmark runs the machine benchmark (budget 0: the configured one) and
// stores its scores. With onlyIfDue it does nothing, and returns ran false,
// when scores of the current version exist once its turn comes. Runs are
// serialized.
func (n *Node) benchmark(ctx context.Context, budget time.Duration, onlyIfDue bool) (s resource.Scores, ran bool, err error) {
	select {
	case n.res.gate <- struct{}{}:
	case <-ctx.Done():
		return resource.Scores{}, false, fmt.Errorf("benchmark: waiting for the run in progress: %w", ctx.Err())
	}
	defer func() { <-n.res.gate }()
	if onlyIfDue && !n.benchmarkDue() {
		s, _ := n.resources.Scores()
		return s, false, nil
	}
	if budget <= 0 {
		budget = n.res.budget
	}
	n.res.log.Info("benchmark started", "budget", budget.String())
	s, err = resource.Run(ctx, resource.BenchConfig{DataDir: n.res.dataDir, Budget: budget, GPUs: n.resources.Machine().GPUs, Logger: n.res.log})
	if err != nil {
		return resource.Scores{}, false, err
	}
	if err := n.resources.SetScores(s); err != nil {
		return resource.Scores{}, false, err
	}
	return s, true, nil
}

// resourceService implements apiserver.ResourceService; the behaviors use
// it too. Errors are classified for the API: *apiserver.BadRequest for a
// malformed request, *apiserver.Refused for what the accounting refuses.
type resourceService struct{ n *Node }

var _ apiserver.ResourceService = resourceService{}

func (s resourceService) Snapshot(context.Context) (api.ResourceSnapshot, error) {
	snap, err := wire[api.ResourceSnapshot](s.n.resources.Snapshot())
	if err != nil {
		return api.ResourceSnapshot{}, err
	}
	snap.BenchmarkDue = s.n.benchmarkDue()
	snap.BenchmarkBudgetMS = s.n.res.budget.Milliseconds()
	return snap, nil
}

// Onboard dedicates resources, re-detecting the machine first (its free
// disk changes), and runs the benchmark when no scores of this version
// exist. A failed benchmark does not undo the onboarding: it is reported in
// Warning.
func (s resourceService) Onboard(ctx context.Context, req api.OnboardRequest) (api.OnboardResult, error) {
	n := s.n
	r, err := parseOnboard(req)
	if err != nil {
		return api.OnboardResult{}, &apiserver.BadRequest{Err: err}
	}
	if _, ok := n.resources.Onboarded(); !ok && r.Price == nil {
		if p := n.cfg.Config.Orchestrator.Price; p > 0 {
			m, err := match.ParseMoney(strconv.FormatFloat(p, 'f', -1, 64))
			if err != nil {
				return api.OnboardResult{}, fmt.Errorf("orchestrator.price %g: %w", p, err)
			}
			r.Price = &match.Price{CPU: m}
		}
	}
	if mach, err := n.detectMachine(ctx); err != nil {
		n.res.log.Warn("re-detecting the machine failed; checking against the last detection", "err", err)
	} else {
		n.resources.SetMachine(mach)
	}
	on, err := n.resources.Onboard(r)
	if err != nil {
		return api.OnboardResult{}, classifyResourceErr(err)
	}
	var res api.OnboardResult
	if res.Onboarded, err = wire[api.Onboarding](on); err != nil {
		return api.OnboardResult{}, err
	}
	if !req.NoBenchmark {
		_, ran, err := n.benchmark(ctx, 0, true)
		if err != nil {
			n.res.log.Warn("benchmark at onboarding failed", "err", err)
			res.Warning = "onboarded, but the benchmark failed (run `dms benchmark`): " + err.Error()
		}
		res.Benchmarked = ran
	}
	res.BenchmarkDue = n.benchmarkDue()
	if sc, ok := n.resources.Scores(); ok {
		w, err := wire[api.Scores](sc)
		if err != nil {
			return api.OnboardResult{}, err
		}
		res.Benchmark = &w
	}
	return res, nil
}

func (s resourceService) Offboard(context.Context) (api.OffboardResult, error) {
	prev, _ := s.n.resources.Onboarded()
	if err := s.n.resources.Offboard(); err != nil {
		return api.OffboardResult{}, classifyResourceErr(err)
	}
	w, err := wire[api.Onboarding](prev)
	return api.OffboardResult{Offboarded: w}, err
}

func (s resourceService) Benchmark(ctx context.Context, req api.BenchmarkRequest) (api.BenchmarkResult, error) {
	sc, _, err := s.n.benchmark(ctx, time.Duration(req.BudgetMS)*time.Millisecond, false)
	if err != nil {
		return api.BenchmarkResult{}, err
	}
	w, err := wire[api.Scores](sc)
	return api.BenchmarkResult{Scores: w, DataDir: s.n.res.dataDir}, err
}

// parseOnboard turns the wire request (human amounts) into the Ledger's.
// Every malformed field is reported, joined.
func parseOnboard(req api.OnboardRequest) (resource.OnboardRequest, error) {
	var r resource.OnboardRequest
	var errs []error
	if req.CPU != nil {
		v, err := match.ParseCPU(string(*req.CPU))
		if err != nil {
			errs = append(errs, fmt.Errorf("cpu: %w", err))
		}
		r.CPU = &v
	}
	if req.RAM != nil {
		v, err := match.ParseBytes(string(*req.RAM))
		if err != nil {
			errs = append(errs, fmt.Errorf("ram: %w", err))
		}
		r.RAM = &v
	}
	if req.Disk != nil {
		v, err := match.ParseBytes(string(*req.Disk))
		if err != nil {
			errs = append(errs, fmt.Errorf("disk: %w", err))
		}
		r.Disk = &v
	}
	if req.GPUs != nil {
		if len(*req.GPUs) > match.MaxGPUs {
			errs = append(errs, fmt.Errorf("gpus: %d listed, at most %d", len(*req.GPUs), match.MaxGPUs))
		} else {
			gpus := []match.GPU{}
			for _, g := range *req.GPUs {
				v, err := match.ParseGPUFlag(g)
				if err != nil {
					errs = append(errs, fmt.Errorf("gpu: %w", err))
				}
				gpus = append(gpus, v)
			}
			r.GPUs = &gpus
		}
	}
	if req.Price != nil {
		v, err := match.ParsePrice(string(*req.Price))
		if err != nil {
			errs = append(errs, err)
		} else if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
		r.Price = &v
	}
	if err := errors.Join(errs...); err != nil {
		return resource.OnboardRequest{}, err
	}
	return r, nil
}

// classifyResourceErr marks the Ledger's refusals for the API.
func classifyResourceErr(err error) error {
	var oe *resource.OnboardError
	switch {
	case errors.As(err, &oe), errors.Is(err, resource.ErrBusy), errors.Is(err, resource.ErrNotOnboarded), errors.Is(err, resource.ErrExists):
		return &apiserver.Refused{Err: err}
	case errors.Is(err, resource.ErrInvalid), errors.Is(err, match.ErrMoney):
		return &apiserver.BadRequest{Err: err}
	}
	return err
}

// wire converts an internal value to its api mirror through JSON: the api
// types are declared with the same JSON shape (a test checks every field),
// so that package api imports nothing internal.
func wire[T any](v any) (T, error) {
	var out T
	data, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("encode %T: %w", v, err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("decode %T as %T: %w", v, out, err)
	}
	return out, nil
}

// addResourceBehaviors registers /dms/node/onboarding/* and
// /dms/node/resources/* on the root actor: the same operations as the REST
// API, for an owner (or whom the owner delegated to) on another machine.
func (n *Node) addResourceBehaviors() {
	svc := resourceService{n}
	n.root.AddBehavior(api.BehaviorOnboard, func(ctx context.Context, m *actor.Message) (any, error) {
		var req api.OnboardRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		return svc.Onboard(ctx, req)
	})
	n.root.AddBehavior(api.BehaviorOffboard, func(ctx context.Context, m *actor.Message) (any, error) {
		return svc.Offboard(ctx)
	})
	n.root.AddBehavior(api.BehaviorOnboardStatus, func(ctx context.Context, m *actor.Message) (any, error) {
		return svc.Snapshot(ctx)
	})
	amounts := func(pick func(resource.Snapshot) match.Resources) actor.Behavior {
		return func(ctx context.Context, m *actor.Message) (any, error) {
			return wire[api.Resources](pick(n.resources.Snapshot()))
		}
	}
	n.root.AddBehavior(api.BehaviorResourcesOnboarded, amounts(func(s resource.Snapshot) match.Resources {
		if s.Onboarded == nil {
			return match.Resources{}
		}
		return s.Onboarded.Resources
	}))
	n.root.AddBehavior(api.BehaviorResourcesAllocated, amounts(func(s resource.Snapshot) match.Resources { return s.Allocated }))
	n.root.AddBehavior(api.BehaviorResourcesFree, amounts(func(s resource.Snapshot) match.Resources { return s.Free }))
}

// withFeatures adds to a list of executors the features the configuration
// gives them (deployproto.FeatureVMKernel) and the subnets, when they run
// (deployproto.FeatureSubnet), sorted.
func (n *Node) withFeatures(execs []string) []string {
	if slices.Contains(execs, resource.ExecutorVM) && n.cfg.Config.Executor.VM.Kernel != "" &&
		!slices.Contains(execs, deployproto.FeatureVMKernel) {
		execs = append(execs, deployproto.FeatureVMKernel)
	}
	// A subnet puts docker containers on it (vm guests: planned).
	if n.subnetsRunning() != nil && slices.Contains(execs, resource.ExecutorDocker) &&
		!slices.Contains(execs, deployproto.FeatureSubnet) {
		execs = append(execs, deployproto.FeatureSubnet)
	}
	sort.Strings(execs)
	return execs
}
