package allocation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/storage"
)

// Config is what a Manager needs. System, Store, Ledger, Wallet, Sealer and
// DataDir are required.
type Config struct {
	System *actor.System
	// Executors are the executors usable on this node.
	Executors map[ensemble.Executor]executor.Executor
	Store     Store
	Ledger    Ledger
	Wallet    Wallet
	Sealer    *identity.Sealer
	// DataDir holds one directory per allocation: its log, its volumes
	// and its upload journals, until the allocation is removed (its
	// local out volumes then move to ResultsDir). The directory is made
	// at the commit for an allocation with volumes, else with the log at
	// its first output (an allocation that writes nothing has none).
	DataDir string
	// ArtifactDir caches fetched artifacts by digest; default
	// <DataDir>/../artifacts.
	ArtifactDir string
	// MaxArtifactSize bounds one artifact; default 16 GiB.
	MaxArtifactSize int64
	// Heartbeat is the interval of heartbeat reports; default 2s.
	Heartbeat time.Duration
	// StopAfter is how long an allocation whose commit gave no StopAfter
	// runs without an acknowledgement from its orchestrator before it
	// stops on its own; default 20s, at least deployproto.MinStopAfter.
	StopAfter time.Duration
	// DefaultKernel is the kernel of vm allocations that give none (a
	// host path; may be empty).
	DefaultKernel string

	// Volumes beyond plain directories (volumes.go); each may be nil, and
	// then the volumes that need it fail with a reason saying so.
	Mounter     Mounter      // size-bounded local volumes
	ObjectStore ObjectStore  // s3 volumes
	Fetcher     Fetcher      // url volumes
	Results     ResultReader // serves local out volumes (BehaviorResults)
	// NodeKey opens the user's secrets sealed to this node.
	NodeKey *identity.Key
	// Credentials are the S3 keys the operator offers, by name.
	Credentials map[string]storage.Credentials
	// ResultsDir keeps local out volumes after their allocation is
	// removed, for ResultsRetention (default 24h); default
	// <DataDir>/../results.
	ResultsDir       string
	ResultsRetention time.Duration

	// Subnets puts allocations with a subnet address on their
	// deployment's subnet (subnet.go); nil: this node runs no subnets,
	// and such allocations are refused.
	Subnets Subnets

	// ShipLogs, when set, gives the writer that ships one output stream
	// ("stdout", "stderr") of an allocation whose spec asks for it
	// (ShipLogs) to the node's log store; it must not block.
	ShipLogs func(deployment, allocationID, name, stream string) io.WriteCloser
	// OnStart, when set, is told how long an executor's Start of an
	// instance took (artifacts and volumes already in place), when it
	// succeeded; it must be quick.
	OnStart func(executor string, d time.Duration)

	Logger *slog.Logger
	Now    func() time.Time
	// Tracer starts the allocations' spans (trace.go); default a no-op
	// tracer.
	Tracer trace.Tracer
}

// CreateRequest describes one allocation of a committed reservation.
type CreateRequest struct {
	ID           string // unique on this node: the actor's inbox is "alloc/<ID>"
	Reservation  string
	Deployment   string
	Orchestrator actor.Handle
	Spec         deployproto.AllocationSpec
	// Epoch is the placement's fencing epoch (0: none given).
	Epoch uint64
	// StopAfter is how long the allocation runs without an
	// acknowledgement from its orchestrator before it stops on its own;
	// 0 means Config.StopAfter. Values below deployproto.MinStopAfter or
	// two heartbeats are raised to the larger of them.
	StopAfter time.Duration
	// Secrets are the commit's secrets, sealed to this node's key.
	Secrets map[string][]byte
	// Contract is the ID of the placement's contract ("": none); a start
	// must name the same.
	Contract string
	// NoteChain is the requester's delegation of deployproto.BehaviorNote
	// to this node (token file text, "": none): kept with the record so a
	// restarted node can still send the contract's notes.
	NoteChain string
}

// defaultStopAfter is Config.StopAfter's default.
const defaultStopAfter = 20 * time.Second

// Inbox returns the inbox of the actor of allocation id.
func Inbox(id string) string { return "alloc/" + id }

// Manager owns this node's allocations: it creates their actors, resumes
// them after a restart, and reverts reservations.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	artifacts *artifactCache
	// progressEvery is how often a transfer's progress is logged (tests
	// lower it).
	progressEvery time.Duration
	sweepOnce     sync.Once // starts the results sweeper

	manMu     sync.Mutex
	manifests map[string]builtManifest // guarded by manMu: manifests being paged, by directory

	// life is cancelled by Close; it is the parent of every background
	// goroutine's context (not a request context).
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// relMu serializes release decisions; it is taken before mu.
	relMu sync.Mutex

	mu     sync.Mutex
	allocs map[string]*alloc // guarded by mu; changed only by putLocked and deleteLocked
	// byRes are the allocations of allocs by reservation, so that a
	// reservation's group is found without a scan of every allocation
	// here (ended ones stay until removed). Guarded by mu.
	byRes    map[string][]*alloc
	creating map[string]string // guarded by mu: IDs being created → reservation
	released map[string]bool   // guarded by mu: reservations released
	closed   bool              // guarded by mu

	// removedUsage is the metered usage of removed allocations, by
	// reservation (metering.go).
	removedUsage map[string]contract.Usage // guarded by mu

	// held is what this node keeps of the deployments whose allocations
	// here were removed: their orchestrators and traces, the oldest first
	// in heldOrder (at most maxHeld; trace.go).
	held      map[string]*Held // guarded by mu
	heldOrder []string         // guarded by mu
}

// New checks cfg and returns a Manager. Call Resume to pick up the
// allocations of an earlier run, and Close at shutdown.
func New(cfg Config) (*Manager, error) {
	var missing []string
	for _, f := range []struct {
		name string
		nil  bool
	}{
		{"System", cfg.System == nil}, {"Store", cfg.Store == nil}, {"Ledger", cfg.Ledger == nil},
		{"Wallet", cfg.Wallet == nil}, {"Sealer", cfg.Sealer == nil}, {"DataDir", cfg.DataDir == ""},
	} {
		if f.nil {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("allocation: config lacks %s", strings.Join(missing, ", "))
	}
	if cfg.Heartbeat < 0 || cfg.MaxArtifactSize < 0 || cfg.StopAfter < 0 {
		return nil, errors.New("allocation: negative Heartbeat, MaxArtifactSize or StopAfter")
	}
	if cfg.StopAfter == 0 {
		cfg.StopAfter = defaultStopAfter
	}
	cfg.StopAfter = max(cfg.StopAfter, deployproto.MinStopAfter)
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.MaxArtifactSize == 0 {
		cfg.MaxArtifactSize = 16 << 30
	}
	if cfg.ResultsRetention < 0 {
		return nil, errors.New("allocation: negative ResultsRetention")
	}
	if cfg.ResultsRetention == 0 {
		cfg.ResultsRetention = defaultResultsRetention
	}
	if cfg.ResultsDir == "" {
		cfg.ResultsDir = filepath.Join(filepath.Dir(filepath.Clean(cfg.DataDir)), "results")
	}
	if cfg.ArtifactDir == "" {
		cfg.ArtifactDir = filepath.Join(filepath.Dir(filepath.Clean(cfg.DataDir)), "artifacts")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	for k, ex := range cfg.Executors {
		if ex == nil {
			return nil, fmt.Errorf("allocation: executor %q is nil", k)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("allocation: data dir: %w", err)
	}
	life, stop := context.WithCancel(context.Background())
	return &Manager{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "allocation"),
		artifacts:     &artifactCache{dir: cfg.ArtifactDir, max: cfg.MaxArtifactSize, inflight: map[string]*fetch{}},
		progressEvery: defaultProgressEvery,
		manifests:     map[string]builtManifest{},
		life:          life,
		stop:          stop,
		allocs:        map[string]*alloc{},
		byRes:         map[string][]*alloc{},
		creating:      map[string]string{},
		released:      map[string]bool{},
	}, nil
}

// ErrClosed is returned by a closed Manager.
var ErrClosed = errors.New("allocation manager closed")

// Create makes the actor of one allocation (with its own key, sealed at
// rest) in state pending and returns its handle; it does not start the
// workload. Creating an allocation that exists with the same reservation
// returns its handle again (a retried commit).
func (m *Manager) Create(ctx context.Context, req CreateRequest) (actor.Handle, error) {
	if err := checkID("allocation id", req.ID); err != nil {
		return actor.Handle{}, err
	}
	var errs []error
	if req.Reservation == "" {
		errs = append(errs, errors.New("reservation: empty"))
	}
	if req.Orchestrator.IsZero() {
		errs = append(errs, errors.New("orchestrator: no handle"))
	}
	errs = append(errs, m.checkSpec(&req.Spec))
	if err := errors.Join(errs...); err != nil {
		return actor.Handle{}, fmt.Errorf("create allocation %s: %w", req.ID, err)
	}

	m.mu.Lock()
	switch a, res := m.allocs[req.ID], m.creating[req.ID]; {
	case m.closed:
		m.mu.Unlock()
		return actor.Handle{}, ErrClosed
	case a != nil && a.reservation() == req.Reservation:
		m.mu.Unlock()
		return a.act.Handle(), nil
	case a != nil || res != "":
		m.mu.Unlock()
		return actor.Handle{}, fmt.Errorf("create allocation %s: the id is taken", req.ID)
	case m.released[req.Reservation]:
		m.mu.Unlock()
		return actor.Handle{}, fmt.Errorf("create allocation %s: reservation %s was released", req.ID, req.Reservation)
	}
	m.creating[req.ID] = req.Reservation
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.creating, req.ID)
		m.mu.Unlock()
	}()

	key, err := identity.NewKey()
	if err != nil {
		return actor.Handle{}, fmt.Errorf("create allocation %s: %w", req.ID, err)
	}
	stopAfter := req.StopAfter
	if stopAfter <= 0 {
		stopAfter = m.cfg.StopAfter
	}
	// At least two heartbeats, or the allocation would fence itself
	// while its orchestrator answers.
	stopAfter = max(stopAfter, deployproto.MinStopAfter, 2*m.cfg.Heartbeat)
	now := m.cfg.Now()
	rec := Record{
		ID:           req.ID,
		Reservation:  req.Reservation,
		Deployment:   req.Deployment,
		Name:         req.Spec.Name,
		Orchestrator: req.Orchestrator,
		Spec:         req.Spec,
		DID:          key.DID(),
		SealedKey:    m.cfg.Sealer.SealKey(key),
		State:        deployproto.AllocPending,
		Seq:          seqBlock,
		Epoch:        req.Epoch,
		Contract:     req.Contract,
		NoteChain:    req.NoteChain,
		StopAfter:    stopAfter,
		Secrets:      maps.Clone(req.Secrets),
		Created:      now,
		Updated:      now,
	}
	if err := m.cfg.Store.Put(rec); err != nil {
		return actor.Handle{}, fmt.Errorf("create allocation %s: persist: %w", req.ID, err)
	}
	// Its reports count from 1, under the ceiling just written: the first
	// (queueReport, below) needs no second write of the record.
	a, err := m.newAlloc(rec, key, 0)
	if err != nil {
		m.cfg.Store.Delete(req.ID)
		os.RemoveAll(filepath.Join(m.cfg.DataDir, req.ID))
		return actor.Handle{}, fmt.Errorf("create allocation %s: %w", req.ID, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		a.act.Stop()
		a.log.close()
		m.cfg.Store.Delete(req.ID)
		os.RemoveAll(a.dir)
		return actor.Handle{}, ErrClosed
	}
	m.putLocked(req.ID, a)
	m.mu.Unlock()
	a.queueReport()
	a.startReporter()
	m.log.Info("allocation created", "allocation_id", req.ID, "deployment_id", req.Deployment,
		"reservation", req.Reservation, "name", req.Spec.Name, "executor", req.Spec.Executor)
	return a.act.Handle(), nil
}

// newAlloc opens the allocation's log and spawns its actor, whose reports
// continue from seq. Its directory is made now for its volumes (made in
// it, and by a volume driver), else by the log at its first output.
func (m *Manager) newAlloc(rec Record, key *identity.Key, seq uint64) (*alloc, error) {
	dir := filepath.Join(m.cfg.DataDir, rec.ID)
	if len(rec.Spec.Volumes) > 0 {
		if err := mkdir(dir); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	lf, err := openLog(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	act, err := m.cfg.System.Spawn(key, Inbox(rec.ID), actor.SpawnOptions{})
	if err != nil {
		lf.close()
		return nil, fmt.Errorf("spawn actor: %w", err)
	}
	life, end := context.WithCancel(m.life)
	a := &alloc{
		m:       m,
		act:     act,
		ex:      m.cfg.Executors[rec.Spec.Executor],
		dir:     dir,
		log:     lf,
		life:    life,
		end:     end,
		rec:     rec,
		seq:     seq,
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		lastAck: time.Now(),
	}
	act.AddBehavior(deployproto.BehaviorStart, a.handleStart)
	act.AddBehavior(deployproto.BehaviorStop, a.handleStop)
	act.AddBehavior(deployproto.BehaviorLogs, a.handleLogs)
	act.AddBehavior(deployproto.BehaviorStatus, a.handleStatus)
	act.AddBehavior(deployproto.BehaviorDependency, a.handleDependency)
	act.AddBehavior(deployproto.BehaviorAdopt, a.handleAdopt)
	act.AddBehavior(deployproto.BehaviorExec, a.handleExec)
	act.AddBehavior(deployproto.BehaviorExecInput, a.handleExecInput)
	act.AddBehavior(deployproto.BehaviorExecOutput, a.handleExecOutput)
	return a, nil
}

// mkdir makes dir (mode 0700) and its missing parents, as os.MkdirAll
// does, in one system call when only dir is missing: a new allocation's
// directory under an existing data directory.
func mkdir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		return nil
	}
	return os.MkdirAll(dir, 0o700) // the parent is missing, or dir exists (a directory or not)
}

// goTracked runs fn on a goroutine that Close waits for; once the manager
// is closed it runs nothing and returns false.
func (m *Manager) goTracked(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

// revertGrace is how long a reverted allocation may take to stop.
const revertGrace = 2 * time.Second

// Revert stops and removes every allocation of reservation (in any state),
// deletes their data and releases the reservation through the Ledger once.
// Reverting again does nothing. A reservation this node holds no
// allocation of (a bid never committed, or one reverted before a restart)
// is released through the Ledger, and its error returned.
func (m *Manager) Revert(ctx context.Context, reservation string) error {
	if reservation == "" {
		return errors.New("revert: empty reservation")
	}
	n, err := m.eachOf(reservation, func(a *alloc) error { return m.remove(ctx, a, revertGrace) })
	if err == ErrClosed {
		return err
	}
	if err != nil {
		return fmt.Errorf("revert %s: %w", reservation, err)
	}
	if err := m.releaseIfDone(reservation); err != nil {
		return fmt.Errorf("revert %s: %w", reservation, err)
	}
	m.log.Info("reservation reverted", "reservation_id", reservation, "allocations", n)
	return nil
}

// StopReservation stops the allocations of a reservation that still run,
// with msg as the message of their stopped state (a contract's notes not
// countersigned, its budget exhausted), giving each grace to exit. Their
// records stay, and their orchestrator hears of the end in their reports.
func (m *Manager) StopReservation(ctx context.Context, reservation, msg string, grace time.Duration) error {
	if reservation == "" {
		return errors.New("stop: empty reservation")
	}
	n, err := m.eachOf(reservation, func(a *alloc) error { return a.stopWith(ctx, grace, msg) })
	if err == ErrClosed {
		return err
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", reservation, err)
	}
	m.log.Info("reservation stopped", "reservation_id", reservation, "allocations", n, "message", msg)
	return nil
}

// eachOf runs fn on every allocation of reservation at once and returns
// how many there were and their errors joined (ErrClosed after Close).
func (m *Manager) eachOf(reservation string, fn func(a *alloc) error) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, ErrClosed
	}
	group := m.ofReservationLocked(reservation)
	m.mu.Unlock()
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for i, a := range group {
		wg.Go(func() { errs[i] = fn(a) })
	}
	wg.Wait()
	return len(group), errors.Join(errs...)
}

// remove stops a (within grace), removes its instance, record and data,
// stops its actor, and releases the reservation if it was the last one
// running.
func (m *Manager) remove(ctx context.Context, a *alloc, grace time.Duration) error {
	if err := a.stop(ctx, grace); err != nil {
		return err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	if a.removed {
		a.mu.Unlock()
		return nil
	}
	a.removed = true
	done := a.runDone
	a.mu.Unlock()
	a.end()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("remove %s: %w", a.id(), ctx.Err())
		}
	}
	rec := a.record()
	a.removeInstances(context.WithoutCancel(ctx), rec.InstanceID)
	a.leaveSubnet()
	m.mu.Lock()
	if m.allocs[rec.ID] == a {
		m.keepRemovedLocked(rec.Reservation, rec.Meter.Usage()) // its runs have ended
		m.rememberLocked(&rec)                                  // trace.go: its spans stay readable by its orchestrator
		m.deleteLocked(rec.ID, a)
	}
	m.mu.Unlock()
	if _, ok := subnetOf(&rec.Spec); ok {
		m.dropSubnetIfDone(rec.Deployment)
	}
	relErr := m.releaseIfDone(rec.Reservation)
	a.saveMu.Lock()
	a.deleted = true
	err := m.cfg.Store.Delete(rec.ID)
	a.saveMu.Unlock()
	a.log.close()
	if e := m.releaseVolumes(a, rec); e != nil {
		m.log.Warn("remove volumes", "allocation_id", rec.ID, "err", e)
	}
	if e := os.RemoveAll(a.dir); e != nil {
		err = errors.Join(err, e)
	}
	// The actor may be running this very call (a stop with remove): stop
	// it once the call has returned.
	if !m.goTracked(a.act.Stop) {
		go a.act.Stop()
	}
	m.log.Info("allocation removed", "allocation_id", rec.ID, "reservation_id", rec.Reservation)
	if err = errors.Join(err, relErr); err != nil {
		return fmt.Errorf("remove %s: %w", rec.ID, err)
	}
	return nil
}

// releaseIfDone releases reservation through the Ledger when every
// allocation of it here has ended (or none is left), once.
func (m *Manager) releaseIfDone(reservation string) error {
	m.relMu.Lock()
	defer m.relMu.Unlock()
	m.mu.Lock()
	if m.released[reservation] {
		m.mu.Unlock()
		return nil
	}
	group := m.ofReservationLocked(reservation)
	m.mu.Unlock()
	for _, a := range group {
		if !a.state().Terminal() {
			return nil
		}
	}
	if err := m.cfg.Ledger.Release(reservation); err != nil {
		return fmt.Errorf("release reservation %s: %w", reservation, err)
	}
	m.mu.Lock()
	m.released[reservation] = true
	m.mu.Unlock()
	for _, a := range group {
		a.mu.Lock()
		a.rec.Released = true
		a.mu.Unlock()
		a.persist()
	}
	m.log.Info("reservation released", "reservation_id", reservation)
	return nil
}

// Resume respawns the actors of the allocations persisted by an earlier
// run and re-attaches the unfinished ones to their executor instances,
// found by label (executor.Lister) or by their recorded ID. An instance
// that is gone (an in-process wasm one after a restart) ends its run as
// failed with a message saying so, and the restart policy applies.
// Ended allocations get their actor back too (status and logs stay
// readable until they are reverted or removed). The delegations they
// keep (the start's, the commit's note chain) go back into the Wallet.
// Records that cannot be resumed are reported in the error; the others
// are resumed.
func (m *Manager) Resume(ctx context.Context) error {
	recs, err := m.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	// One List per executor that can list: instances by allocation ID.
	found := map[string][]executor.Instance{}
	listed := map[ensemble.Executor]bool{}
	var errs []error
	for kind, ex := range m.cfg.Executors {
		l, ok := ex.(executor.Lister)
		if !ok {
			continue
		}
		ins, err := l.List(ctx, map[string]string{LabelNode: m.cfg.System.Self()})
		if err != nil {
			errs = append(errs, fmt.Errorf("resume: list %s instances: %w", kind, err))
			continue
		}
		listed[kind] = true
		for _, in := range ins {
			id := in.Labels[executor.LabelAllocation]
			found[id] = append(found[id], in)
		}
	}
	reservations := map[string]bool{}
	var resumed []*alloc
	for _, rec := range recs {
		m.mu.Lock()
		closed, exists := m.closed, m.allocs[rec.ID] != nil
		m.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if exists {
			continue
		}
		key, err := m.cfg.Sealer.OpenKey(rec.SealedKey, rec.DID)
		if err != nil {
			errs = append(errs, fmt.Errorf("resume %s: key: %w", rec.ID, err))
			continue
		}
		if rec.Chain != "" {
			if chain, err := cap.DecodeChain([]byte(rec.Chain)); err == nil {
				m.cfg.Wallet.Add(chain)
			} else {
				m.log.Warn("resume: stored chain does not decode", "allocation_id", rec.ID, "err", err)
			}
		}
		if rec.NoteChain != "" {
			if chain, err := cap.DecodeChain([]byte(rec.NoteChain)); err == nil {
				m.cfg.Wallet.Add(chain)
			} else {
				m.log.Warn("resume: stored note chain does not decode", "allocation_id", rec.ID, "err", err)
			}
		}
		a, err := m.newAlloc(rec, key, rec.Seq) // above every report sent before the restart
		if err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", rec.ID, err))
			continue
		}
		m.mu.Lock()
		m.putLocked(rec.ID, a)
		if rec.Released {
			m.released[rec.Reservation] = true
		}
		m.mu.Unlock()
		reservations[rec.Reservation] = true
		resumed = append(resumed, a)
		a.resume(ctx, found[rec.ID], listed[rec.Spec.Executor])
	}
	for _, res := range sortedKeys(reservations) {
		if err := m.releaseIfDone(res); err != nil {
			m.log.Warn("resume: release", "reservation_id", res, "err", err)
		}
	}
	m.sweepOnce.Do(func() {
		m.SweepResults()
		m.goTracked(m.sweepLoop)
	})
	m.log.Info("allocations resumed", "count", len(resumed))
	return errors.Join(errs...)
}

// Orchestrator returns the orchestrator of the allocations of reservation
// on this node (false when it has none).
func (m *Manager) Orchestrator(reservation string) (identity.DID, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if group := m.byRes[reservation]; len(group) > 0 {
		return group[0].record().Orchestrator.DID, true
	}
	return "", false
}

// List returns the current state of every allocation on this node, by ID.
func (m *Manager) List() []deployproto.Report {
	m.mu.Lock()
	all := make([]*alloc, 0, len(m.allocs))
	for _, a := range m.allocs {
		all = append(all, a)
	}
	m.mu.Unlock()
	out := make([]deployproto.Report, 0, len(all))
	for _, a := range all {
		out = append(out, a.status())
	}
	slices.SortFunc(out, func(a, b deployproto.Report) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Close stops heartbeats, supervision and log copying, and the actors. It
// leaves workloads running: docker and vm instances are re-attached by the
// next Resume (in-process wasm instances end with the process). The
// size-bounded volumes no workload can use any more (of ended
// allocations, of in-process instances, kept results) are unmounted,
// their data kept: they are mounted again when needed.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	all := make([]*alloc, 0, len(m.allocs))
	for _, a := range m.allocs {
		all = append(all, a)
	}
	m.mu.Unlock()
	m.stop()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("allocation: close: %w", ctx.Err())
	}
	for _, a := range all {
		a.act.Stop()
		a.log.close()
	}
	if err == nil {
		m.unmountIdle(all)
	}
	return err
}

// putLocked adds a to the allocations, as id.
func (m *Manager) putLocked(id string, a *alloc) {
	m.allocs[id] = a
	r := a.reservation()
	m.byRes[r] = append(m.byRes[r], a)
}

// deleteLocked removes a, which is allocation id, from the allocations.
func (m *Manager) deleteLocked(id string, a *alloc) {
	delete(m.allocs, id)
	r := a.reservation()
	group := slices.DeleteFunc(m.byRes[r], func(x *alloc) bool { return x == a })
	if len(group) == 0 {
		delete(m.byRes, r)
	} else {
		m.byRes[r] = group
	}
}

// ofReservationLocked returns the allocations of reservation here, in a
// new slice.
func (m *Manager) ofReservationLocked(reservation string) []*alloc {
	return slices.Clone(m.byRes[reservation])
}
