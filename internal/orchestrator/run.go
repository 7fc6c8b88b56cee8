package orchestrator

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// run is the orchestrator of one deployment: its actor, its persisted
// state, and the loop that drives it through its states.
type run struct {
	s     *Service
	actor *actor.Actor
	spec  *ensemble.Spec
	// key and chains are the orchestrator's key and delegation chains,
	// unsealed and decoded once.
	key    *identity.Key
	chains []cap.Chain

	mu       sync.Mutex
	d        *Deployment   // guarded by mu
	shared   *Deployment   // a copy of d for readers (view), nil after a change; guarded by mu
	changed  chan struct{} // closed at every change; guarded by mu
	shutdown bool          // shutdown requested; guarded by mu

	excluded  map[string]time.Time // providers that refused a commit, until when; loop only
	lingering map[string]time.Time // allocations told to stop after the end; guarded by mu

	brokenNodes  map[string]*brokenNode // nodes to redeploy (heal.go); loop only
	propagations []propagation          // restarts and moves to propagate; guarded by mu
	induced      map[string]int         // restarts asked of an allocation by a dependency notice, not yet seen; guarded by mu

	dryRun bool // a plan's round: ask with deployproto.BehaviorPlan

	ha *haState // its part in standby orchestration (standby.go); nil for a plan's round

	boxes standbyBoxes // the secrets sealed to each standby (secrets.go)

	contracts map[string]string // contract IDs by "<host> <reservation>" (contracts.go); guarded by mu

	// sc is the deployment's root span context (from Deployment.Trace),
	// invalid when it is not traced; root is the live root span on the
	// node that took the submission, until the deployment runs or ends
	// (trace.go). root is guarded by mu.
	sc        trace.SpanContext
	root      trace.Span
	exhausted string // why the budget is spent, "" while it is not (contracts.go); guarded by mu

	layoutOnce sync.Once
	lay        layout // the spec's nodes (layout); made once
}

// layout is how the spec's allocations are grouped on nodes: the nodes,
// sorted, the node of each allocation (placement.Nodes), each node's
// allocations, sorted, and every allocation's name, sorted. The spec does
// not change during a run, so it is made once: heal asks at every turn of
// the loop, the bid round, the commits and the routing table at each
// placement. Readers must not change it.
type layout struct {
	nodes      []string
	hostOf     map[string]string
	nodeAllocs map[string][]string
	allocs     []string
}

// layout returns the spec's layout, made at the first call.
func (r *run) layout() *layout {
	r.layoutOnce.Do(func() {
		l := &r.lay
		l.nodes, l.hostOf = placement.Nodes(r.spec)
		l.allocs = allocNames(r.spec)
		l.nodeAllocs = make(map[string][]string, len(l.nodes))
		for name, n := range l.hostOf {
			l.nodeAllocs[n] = append(l.nodeAllocs[n], name)
		}
		for _, names := range l.nodeAllocs {
			slices.Sort(names)
		}
	})
	return &r.lay
}

func newRun(s *Service, d *Deployment, a *actor.Actor, spec *ensemble.Spec, key *identity.Key, chains []cap.Chain) *run {
	return &run{s: s, d: d, actor: a, spec: spec, key: key, chains: chains, changed: make(chan struct{}), excluded: map[string]time.Time{},
		brokenNodes: map[string]*brokenNode{}, induced: map[string]int{}, sc: parseTraceparent(d.Trace)}
}

func (r *run) snapshot() *Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.clone()
}

// view returns a copy of the deployment shared by the readers until it
// next changes: the caller must not change it (snapshot gives one to
// change).
func (r *run) view() *Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shared == nil {
		r.shared = r.d.clone()
	}
	return r.shared
}

func (r *run) state() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.State
}

// update changes the deployment under the lock, persists it and wakes
// waiters. persist=false skips the store (heartbeats).
func (r *run) update(persist bool, fn func(d *Deployment)) {
	r.mu.Lock()
	seq := r.d.EventSeq
	r.shared = nil
	fn(r.d)
	var events []Event
	if !r.d.IsStandby() { // a replica's events were traced by its primary
		events = newEvents(r.d, seq)
	}
	r.endRootLocked(false)    // trace.go: once every allocation runs, or the end
	if r.d.State.Terminal() { // an ended deployment needs its secrets no more, but for its results (secrets.go)
		r.d.StandbySecrets = nil
		if r.d.SealedSecrets != nil && !resultsNeedSecrets(r.specOf(r.d)) {
			r.d.SealedSecrets = nil
		}
	}
	if r.d.State.Terminal() && r.d.Subnet.IsValid() && !r.dryRun {
		r.s.pool.release(r.d.ID) // subnet.go: the block goes back once the deployment ended
	}
	r.d.Version++
	r.d.Updated = r.s.cfg.Now()
	var c *Deployment
	if persist {
		// The copy persisted is also the readers' (view): neither the
		// store nor a reader changes what it is given.
		c = r.d.clone()
		r.shared = c
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.traceEvents(events)          // trace.go
	if c != nil && !r.resigned() { // a run that stepped down or was taken over persists nothing more (standby.go)
		if err := r.s.cfg.Store.PutDeployment(c); err != nil {
			r.s.log.Error("persist deployment", "deployment_id", c.ID, "err", err)
		}
		r.replicateSoon() // tell the standbys (standby.go)
	}
}

func (r *run) setState(st State, msg string) {
	r.update(true, func(d *Deployment) {
		d.State, d.Message = st, msg
	})
	r.s.log.Info("deployment state", "deployment_id", r.d.ID, "state", st, "message", msg)
}

func (r *run) requestShutdown() {
	r.mu.Lock()
	r.shutdown = true
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *run) shutdownRequested() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shutdown
}

// waitChange waits for a change, the timer or the end of ctx.
func (r *run) waitChange(ctx context.Context, d time.Duration) {
	r.mu.Lock()
	ch := r.changed
	r.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// loop drives the deployment until it ends or the service closes. The
// actor stays after the end: it answers log reads, and stops allocations
// that outlived their deployment (a provider back after being marked lost).
func (r *run) loop(ctx context.Context) {
	// Every message sent for the deployment carries its trace (trace.go).
	ctx = r.traced(ctx)
	defer func() {
		r.mu.Lock()
		r.endRootLocked(true)
		r.mu.Unlock()
	}()
	for ctx.Err() == nil {
		if msg := r.exhaustedMessage(); msg != "" && !r.state().Terminal() {
			r.failWith(ctx, ReasonBudgetExhausted, msg, nil) // contracts.go
			continue
		}
		if r.shutdownRequested() && !r.state().Terminal() && r.state() != ShuttingDown {
			r.setState(ShuttingDown, "shutdown requested")
		}
		switch r.state() {
		case Queued, Bidding, Committing:
			r.place(ctx)
		case Provisioning:
			r.provision(ctx)
		case Running:
			r.supervise(ctx)
		case ShuttingDown:
			r.stopAll(ctx, Stopped, "shut down", nil)
		default:
			r.endContracts() // contracts.go
			return
		}
	}
}

// leaseHeld reports whether this node may make supervision decisions for
// the deployment (mark allocations lost, redeploy): always, unless the
// deployment has standby orchestrators and this node's lease lapsed (see
// standby.go).
func (r *run) leaseHeld() bool { return r.holdsLease() }
