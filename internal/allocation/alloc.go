package allocation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
)

// seqBlock is how far ahead of the last report's Seq the persisted Seq is
// kept, so that heartbeats need no write.
const seqBlock = 1000

// Log reading limits.
const (
	defaultLogMax = 256 << 10
	maxLogMax     = 1 << 20
)

// alloc is one allocation actor and the goroutines that run its workload.
type alloc struct {
	m    *Manager
	act  *actor.Actor
	ex   executor.Executor // nil when this node no longer has the executor
	dir  string
	log  *logFile
	life context.Context // cancelled when the allocation is removed or the manager closes
	end  context.CancelFunc
	wake chan struct{} // buffered 1: wakes the reporter

	// opMu serializes start, stop and remove.
	opMu sync.Mutex

	// saveMu serializes writes of the record, so the last one holds the
	// latest state.
	saveMu  sync.Mutex
	deleted bool // guarded by saveMu: the record was deleted; write no more

	mu        sync.Mutex
	rec       Record               // guarded by mu
	seq       uint64               // guarded by mu: Seq of the last report made
	queue     []deployproto.Report // guarded by mu: reports not sent yet
	stopping  bool                 // guarded by mu: a stop was asked for
	grace     time.Duration        // guarded by mu: the stop's grace
	cancelRun context.CancelFunc   // guarded by mu: cancels the supervisor
	runDone   chan struct{}        // guarded by mu: closed when the supervisor ended; nil before it started
	copying   int                  // guarded by mu: log copiers running
	changed   chan struct{}        // guarded by mu: closed and replaced at every state change
	removed   bool                 // guarded by mu
	reporting bool                 // guarded by mu: the reporter runs
	beating   bool                 // guarded by mu: a heartbeat is in flight
	lastAck   time.Time            // guarded by mu: the last acknowledgement of a report (monotonic)
	stopMsg   string               // guarded by mu: the message of the stop asked for (default "stopped on request")
	dropping  bool                 // guarded by mu: an acknowledgement said Stop; the allocation is being removed
	kill      string               // guarded by mu: why instance killID is being killed (health check, dependency)
	killID    string               // guarded by mu
	killDep   bool                 // guarded by mu: the kill is a dependency's restart

	execs execSessions // exec sessions (exec.go)
}

func (a *alloc) id() string { return a.rec.ID } // ID never changes

func (a *alloc) record() Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec
}

func (a *alloc) reservation() string { return a.rec.Reservation } // never changes

func (a *alloc) state() deployproto.AllocationState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.State
}

// stopMessage is the message of the stopped state: the one the stop
// asked for, else def.
func (a *alloc) stopMessage(def string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopMsg != "" {
		return a.stopMsg
	}
	return def
}

func (a *alloc) isStopping() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopping
}

// transition records a change: state, message and fn's edits of the
// record; it persists the record, queues a report and wakes long polls. A
// terminal state is final: later transitions are ignored (false).
func (a *alloc) transition(state deployproto.AllocationState, msg string, fn func(r *Record)) bool {
	a.mu.Lock()
	if a.rec.State.Terminal() {
		a.mu.Unlock()
		return false
	}
	if fn != nil {
		fn(&a.rec)
	}
	a.rec.State = state
	a.rec.Message = msg
	a.rec.Updated = a.m.cfg.Now()
	a.queue = append(a.queue, a.reportLocked())
	a.notifyLocked()
	a.mu.Unlock()
	a.persist()
	a.poke()
	a.m.log.Info("allocation state", "allocation_id", a.id(), "state", state, "message", msg)
	if state.Terminal() {
		a.leaveSubnet()
		if _, ok := subnetOf(&a.rec.Spec); ok { // Spec never changes
			a.m.dropSubnetIfDone(a.rec.Deployment)
		}
	}
	return true
}

// notifyLocked wakes the long polls waiting for a change.
func (a *alloc) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// reportLocked makes the next report, advancing Seq.
func (a *alloc) reportLocked() deployproto.Report {
	a.seq++
	if a.seq >= a.rec.Seq {
		a.rec.Seq = a.seq + seqBlock // persisted by the caller, or below
	}
	return a.snapshotLocked()
}

func (a *alloc) snapshotLocked() deployproto.Report {
	r := &a.rec
	return deployproto.Report{
		Deployment: r.Deployment,
		Allocation: r.Name,
		ID:         r.ID,
		Seq:        a.seq,
		State:      r.State,
		Restarts:   r.Restarts,
		Message:    r.Message,
		Result:     r.Result,
		Ports:      r.Ports,
		Epoch:      r.Epoch,
		Time:       a.m.cfg.Now(),
	}
}

// status returns the current report (without advancing Seq).
func (a *alloc) status() deployproto.Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snapshotLocked()
}

// persist writes the record.
func (a *alloc) persist() {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	if a.deleted {
		return
	}
	if err := a.m.cfg.Store.Put(a.record()); err != nil {
		a.m.log.Error("persist allocation", "allocation_id", a.id(), "err", err)
	}
}

// checkContract refuses a start that names a contract other than the
// commit's (deployproto.StartRequest.Contract). A start that names none
// is accepted: the commit, not the start, agreed to the contract.
func (a *alloc) checkContract(id string) error {
	rec := a.record()
	if id == "" || id == rec.Contract {
		return nil
	}
	want := rec.Contract
	if want == "" {
		want = "none"
	}
	return &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("start %s: contract %s is not the commit's (%s)", a.id(), id, want)}
}

// handleStart answers BehaviorStart: it checks the request and the spec,
// records the chain, moves to starting and returns; the workload is
// fetched and started in the background and its progress reported.
// Starting a started allocation does nothing; an ended one cannot start.
func (a *alloc) handleStart(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.StartRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	if err := a.checkEpoch("start", req.Epoch); err != nil {
		return nil, err
	}
	if err := a.checkContract(req.Contract); err != nil {
		return nil, err
	}
	var chain cap.Chain
	if text := strings.TrimSpace(req.Chain); text != "" {
		c, err := cap.DecodeChain([]byte(text))
		if err == nil {
			err = c.CheckLinks()
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: chain: %w", a.id(), err)
		}
		if c.Holder() != a.act.Handle().DID {
			return nil, fmt.Errorf("start %s: the chain is held by %s, not by this allocation (%s)", a.id(), c.Holder(), a.act.Handle().DID)
		}
		chain = c
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	rec := a.record()
	a.mu.Lock()
	removed, stopping := a.removed, a.stopping
	a.mu.Unlock()
	switch {
	case removed:
		return nil, fmt.Errorf("start %s: the allocation was removed", a.id())
	case a.life.Err() != nil:
		return nil, fmt.Errorf("start %s: %w", a.id(), ErrClosed)
	case rec.State.Terminal():
		return nil, fmt.Errorf("start %s: the allocation has ended (%s); it cannot start again", a.id(), rec.State)
	case stopping:
		return nil, fmt.Errorf("start %s: the allocation is stopping", a.id())
	case a.ex == nil:
		return nil, fmt.Errorf("start %s: executor %q is not available on this node", a.id(), rec.Spec.Executor)
	}
	if err := a.m.checkSpec(&rec.Spec); err != nil {
		return nil, fmt.Errorf("start %s: %w", a.id(), err)
	}
	if chain != nil {
		a.m.cfg.Wallet.Add(chain)
	}
	a.mu.Lock()
	a.lastAck = time.Now() // the orchestrator is there
	a.mu.Unlock()
	if rec.State != deployproto.AllocPending {
		if chain != nil {
			a.mu.Lock()
			a.rec.Chain = req.Chain
			a.mu.Unlock()
			a.persist()
		}
		return struct{}{}, nil
	}
	tp := actor.FormatTraceparent(remoteSpan(ctx, msg)) // trace.go
	a.transition(deployproto.AllocStarting, "", func(r *Record) {
		if chain != nil {
			r.Chain = req.Chain
		}
		r.Trace = tp
	})
	a.launch(runPlan{})
	return struct{}{}, nil
}

// handleStop answers BehaviorStop once the allocation has stopped (and,
// with Remove, been removed).
func (a *alloc) handleStop(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.StopRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	if req.Grace < 0 {
		return nil, fmt.Errorf("stop %s: negative grace %s", a.id(), req.Grace)
	}
	if err := a.checkEpoch("stop", req.Epoch); err != nil {
		return nil, err
	}
	var err error
	if req.Remove {
		err = a.m.remove(ctx, a, req.Grace)
	} else {
		err = a.stop(ctx, req.Grace)
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// stop ends the allocation in state stopped (unless it has ended already),
// giving its instance grace to exit, and returns once it is stopped or ctx
// is done (the stop goes on).
func (a *alloc) stop(ctx context.Context, grace time.Duration) error {
	return a.stopWith(ctx, grace, "")
}

// stopWith is stop with msg as the message of the stopped state (empty:
// "stopped on request").
func (a *alloc) stopWith(ctx context.Context, grace time.Duration, msg string) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	if a.rec.State.Terminal() {
		a.mu.Unlock()
		return nil
	}
	if !a.stopping {
		a.stopMsg = msg
	}
	a.stopping = true
	a.grace = grace
	cancel, done := a.cancelRun, a.runDone
	pending := a.rec.State == deployproto.AllocPending
	a.mu.Unlock()
	switch {
	case done == nil && pending:
		// Never started: no instance exists, and none will (a start checks
		// stopping under opMu).
		a.finish(deployproto.AllocStopped, nil, a.stopMessage("stopped before it started"))
		return nil
	case done == nil:
		// A resume after a restart has not launched the supervisor yet:
		// an instance may run. The supervisor that launch now starts sees
		// stopping and stops it; wait for the end.
		return a.awaitEnd(ctx)
	}
	cancel()
	select {
	case <-done:
		if !a.state().Terminal() {
			// The supervisor ended without finishing: the manager closed.
			return fmt.Errorf("stop %s: %w", a.id(), ErrClosed)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: still stopping: %w", a.id(), ctx.Err())
	}
}

// awaitEnd waits until the allocation is in a terminal state.
func (a *alloc) awaitEnd(ctx context.Context) error {
	for {
		a.mu.Lock()
		ended, changed := a.rec.State.Terminal(), a.changed
		a.mu.Unlock()
		if ended {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("stop %s: still stopping: %w", a.id(), ctx.Err())
		case <-a.life.Done():
			return fmt.Errorf("stop %s: %w", a.id(), ErrClosed)
		}
	}
}

// handleStatus answers BehaviorStatus with the current report.
func (a *alloc) handleStatus(ctx context.Context, msg *actor.Message) (any, error) {
	return a.status(), nil
}

// handleLogs answers BehaviorLogs: the entries from Offset, or, when there
// are none yet, the first ones written within Wait (bounded by the
// request's deadline); EOF once the allocation has ended and everything
// was read.
func (a *alloc) handleLogs(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.LogsRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	if req.Offset < 0 || req.Wait < 0 || req.Max < 0 || req.Tail < 0 {
		return nil, fmt.Errorf("logs of %s: negative offset, wait, max or tail", a.id())
	}
	if req.Stream != "" && req.Stream != "stdout" && req.Stream != "stderr" {
		return nil, fmt.Errorf("logs of %s: stream %q is not stdout or stderr", a.id(), req.Stream)
	}
	filter := logFilter{stream: req.Stream, since: req.Since, dropHealth: !req.HealthChecks}
	limit := req.Max
	if limit == 0 {
		limit = defaultLogMax
	}
	limit = min(limit, maxLogMax)
	wait := req.Wait
	if dl, ok := ctx.Deadline(); ok {
		// Answer before the invoker gives up.
		left := time.Until(dl)
		wait = min(wait, left-min(time.Second, left/10))
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	off := req.Offset
	if req.Tail > 0 {
		entries, next, err := a.log.tail(off, req.Tail, limit, filter)
		if err != nil {
			return nil, fmt.Errorf("logs of %s: %w", a.id(), err)
		}
		return deployproto.LogsChunk{Entries: entries, Next: next}, nil
	}
	for {
		size, logChanged := a.log.watch()
		a.mu.Lock()
		ended := a.rec.State.Terminal() && a.copying == 0
		stateChanged := a.changed
		a.mu.Unlock()
		entries, next, err := a.log.read(off, limit, filter)
		if err != nil {
			return nil, fmt.Errorf("logs of %s: %w", a.id(), err)
		}
		if len(entries) > 0 {
			return deployproto.LogsChunk{Entries: entries, Next: next}, nil
		}
		off = next
		if ended && off >= size {
			return deployproto.LogsChunk{Next: off, EOF: true}, nil
		}
		select {
		case <-logChanged:
		case <-stateChanged:
		case <-timer.C:
			return deployproto.LogsChunk{Next: off}, nil
		case <-ctx.Done():
			return deployproto.LogsChunk{Next: off}, nil
		case <-a.life.Done():
			return nil, fmt.Errorf("logs of %s: %w", a.id(), ErrClosed)
		}
	}
}

// removeInstances removes the allocation's executor instances: id, and
// any other one a Lister finds by label (one created by a start that was
// cut short).
func (a *alloc) removeInstances(ctx context.Context, id string) {
	if a.ex == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ids := map[string]bool{}
	if id != "" {
		ids[id] = true
	}
	if l, ok := a.ex.(executor.Lister); ok {
		ins, err := l.List(ctx, a.labels())
		if err != nil {
			a.m.log.Warn("list instances", "allocation_id", a.id(), "err", err)
		}
		for _, in := range ins {
			ids[in.ID] = true
		}
	}
	for x := range ids {
		if err := a.ex.Remove(ctx, x); err != nil && !errors.Is(err, executor.ErrNotFound) {
			a.m.log.Warn("remove instance", "allocation_id", a.id(), "instance", x, "err", err)
		}
	}
}

// removeInstance removes executor instance id only.
func (a *alloc) removeInstance(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.ex.Remove(ctx, id); err != nil && !errors.Is(err, executor.ErrNotFound) {
		a.m.log.Warn("remove instance", "allocation_id", a.id(), "instance", id, "err", err)
	}
}

// labels select this allocation's instances.
func (a *alloc) labels() map[string]string {
	return map[string]string{executor.LabelAllocation: a.id(), LabelNode: a.m.cfg.System.Self()}
}
