package allocation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
)

// killGrace is how long an instance killed by its supervisor (a failing
// health check, a dependency's restart) may take to exit.
const killGrace = 10 * time.Second

// fenceGrace is how long a fenced instance may take to exit.
const fenceGrace = revertGrace

// checkEpoch refuses a command of an epoch older than the allocation's
// with a CodeStaleEpoch error; epoch 0 means the command gives none and
// passes. A newer epoch raises the allocation's.
func (a *alloc) checkEpoch(op string, epoch uint64) error {
	if epoch == 0 {
		return nil
	}
	a.mu.Lock()
	cur := a.rec.Epoch
	raise := epoch > cur
	if raise {
		a.rec.Epoch = epoch
	}
	a.mu.Unlock()
	if epoch < cur {
		return staleEpoch(op, a.id(), epoch, cur)
	}
	if raise {
		a.persist()
	}
	return nil
}

// staleEpoch is the error refusing a command of epoch older than cur.
func staleEpoch(op, id string, epoch, cur uint64) *actor.Error {
	return &actor.Error{Code: deployproto.CodeStaleEpoch,
		Msg: fmt.Sprintf("%s %s: epoch %d is older than %d, the allocation's: the sender was superseded", op, id, epoch, cur)}
}

// adoptStale is the error refusing an adoption of epoch not newer than
// cur.
func adoptStale(id string, epoch, cur uint64) *actor.Error {
	return &actor.Error{Code: deployproto.CodeStaleEpoch,
		Msg: fmt.Sprintf("adopt %s: epoch %d is not newer than %d, the allocation's", id, epoch, cur)}
}

// dmsLine writes a line from dms into the allocation's log: on stderr,
// prefixed "[dms] ", so that `dms deployment logs` shows it among the
// workload's output.
func (a *alloc) dmsLine(format string, args ...any) {
	line := "[dms] " + strings.TrimRight(fmt.Sprintf(format, args...), "\n") + "\n"
	if err := a.log.appendAt(a.m.cfg.Now(), streamDMS, []byte(line)); err != nil {
		a.m.log.Warn("log line", "allocation_id", a.id(), "err", err)
	}
}

// killRun kills instance id, the current run, for why: the supervisor
// then ends the run as unhealthy (dep false) or restarts at once for a
// dependency (dep true). It returns false when the allocation is stopping
// or the instance could not be stopped.
func (a *alloc) killRun(id, why string, dep bool) bool {
	a.mu.Lock()
	if a.stopping || a.rec.State.Terminal() || a.rec.InstanceID != id {
		a.mu.Unlock()
		return false
	}
	a.kill, a.killID, a.killDep = why, id, dep
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(a.life, killGrace+stopMargin)
	defer cancel()
	if err := a.ex.Stop(ctx, id, killGrace); err != nil {
		a.m.log.Warn("kill instance", "allocation_id", a.id(), "instance", id, "err", err)
		a.takeKill(id)
		return false
	}
	return true
}

// takeKill returns (and forgets) why instance id was killed by its
// supervisor, if it was.
func (a *alloc) takeKill(id string) (why string, dep bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id == "" || a.killID != id {
		return "", false
	}
	why, dep = a.kill, a.killDep
	a.kill, a.killID, a.killDep = "", "", false
	return why, dep
}

// handleDependency answers BehaviorDependency: it writes the notice into
// the log and, when it asks for a restart, kills the running instance (in
// the background, after the answer) and starts a new run at once. Such a restart counts in the Restarts that the
// reports show but is not charged to max_restarts. An allocation that is
// not running (pending, starting, restarting, ended: a completed task is
// never run again) only logs the notice.
func (a *alloc) handleDependency(ctx context.Context, msg *actor.Message) (any, error) {
	var n deployproto.DependencyNotice
	if err := msg.Decode(&n); err != nil {
		return nil, err
	}
	if n.Dependency == "" || n.Event == "" {
		return nil, fmt.Errorf("dependency notice for %s: no dependency or event", a.id())
	}
	if err := a.checkEpoch("dependency notice", n.Epoch); err != nil {
		return nil, err
	}
	line := noticeLine(n)
	rec := a.record()
	running := rec.InstanceID != "" && (rec.State == deployproto.AllocRunning ||
		rec.State == deployproto.AllocHealthy || rec.State == deployproto.AllocUnhealthy)
	switch {
	case !n.Restart:
		a.dmsLine("%s", line)
	case !running:
		a.dmsLine("%s; this allocation is %s, not restarted", line, rec.State)
	default:
		if n.Strategy != "" {
			a.dmsLine("%s; restarting this allocation (%s)", line, n.Strategy)
		} else {
			a.dmsLine("%s; restarting this allocation", line)
		}
		why := fmt.Sprintf("restarting: dependency %s %s", n.Dependency, n.Event)
		// In the background: the instance may take its grace to exit, and
		// the orchestrator waits for the answer.
		a.m.goTracked(func() {
			if !a.killRun(rec.InstanceID, why, true) {
				a.dmsLine("the restart for dependency %s did not happen: the allocation is stopping or its instance could not be stopped", n.Dependency)
			}
		})
	}
	return struct{}{}, nil
}

// noticeLine says what a dependency notice tells: "dependency db
// restarted", then its message; a message that starts with the
// dependency's name ("db restarted (restart 2): exited with code 1") is
// the whole tale.
func noticeLine(n deployproto.DependencyNotice) string {
	switch {
	case n.Message == "":
		return fmt.Sprintf("dependency %s %s", n.Dependency, n.Event)
	case strings.HasPrefix(n.Message, n.Dependency+" "):
		return "dependency " + n.Message
	default:
		return fmt.Sprintf("dependency %s %s: %s", n.Dependency, n.Event, n.Message)
	}
}

// handleAdopt answers BehaviorAdopt: a standby orchestrator took the
// deployment over. The request must name this allocation's deployment, a
// higher epoch than the allocation's, and the sender as the orchestrator;
// its chain must be held by this allocation and root in the same issuer
// (the same user) as the chain the allocation was started with. The
// allocation then reports to the new orchestrator, at once.
func (a *alloc) handleAdopt(ctx context.Context, msg *actor.Message) (any, error) {
	var req deployproto.AdoptRequest
	if err := msg.Decode(&req); err != nil {
		return nil, err
	}
	rec := a.record()
	switch {
	case req.Deployment != rec.Deployment:
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("adopt %s: it belongs to deployment %s, not %s", a.id(), rec.Deployment, req.Deployment)}
	case req.Epoch <= rec.Epoch:
		return nil, adoptStale(a.id(), req.Epoch, rec.Epoch)
	case req.Orchestrator.IsZero() || req.Orchestrator.DID != msg.From.DID:
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("adopt %s: an adoption must name its sender as the orchestrator", a.id())}
	case strings.TrimSpace(rec.Chain) == "":
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("adopt %s: the allocation has no chain yet (it was never started): nothing to check the new one against", a.id())}
	}
	chain, err := cap.DecodeChain([]byte(strings.TrimSpace(req.Chain)))
	if err == nil {
		err = chain.CheckLinks()
	}
	if err != nil {
		return nil, fmt.Errorf("adopt %s: chain: %w", a.id(), err)
	}
	if chain.Holder() != a.act.Handle().DID {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("adopt %s: the chain is held by %s, not by this allocation (%s)", a.id(), chain.Holder(), a.act.Handle().DID)}
	}
	cur, err := cap.DecodeChain([]byte(strings.TrimSpace(rec.Chain)))
	if err != nil {
		return nil, fmt.Errorf("adopt %s: the allocation's own chain: %w", a.id(), err)
	}
	if chain.Root() != cur.Root() {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("adopt %s: the chain roots in %s, not in %s who deployed it", a.id(), chain.Root(), cur.Root())}
	}

	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	if req.Epoch <= a.rec.Epoch { // raised meanwhile
		cur := a.rec.Epoch
		a.mu.Unlock()
		return nil, adoptStale(a.id(), req.Epoch, cur)
	}
	if a.removed {
		a.mu.Unlock()
		return nil, fmt.Errorf("adopt %s: the allocation was removed", a.id())
	}
	a.m.cfg.Wallet.Add(chain)
	a.rec.Orchestrator = req.Orchestrator
	a.rec.Chain = strings.TrimSpace(req.Chain)
	a.rec.Epoch = req.Epoch
	a.lastAck = time.Now()
	a.mu.Unlock()
	a.m.log.Info("allocation adopted", "allocation_id", a.id(), "orchestrator", req.Orchestrator.String(), "epoch", req.Epoch)
	a.dmsLine("adopted by orchestrator %s (epoch %d)", req.Orchestrator.DID, req.Epoch)
	a.queueReport() // persists
	a.startReporter()
	return struct{}{}, nil
}

// acked takes an orchestrator's acknowledgement of a report sent at sent:
// it keeps the time (fencing), raises the epoch, and, when the
// acknowledgement says Stop, stops and removes the allocation.
func (a *alloc) acked(ack deployproto.ReportAck, sent time.Time) {
	a.mu.Lock()
	if sent.After(a.lastAck) {
		a.lastAck = sent
	}
	raise := ack.Epoch > a.rec.Epoch
	if raise {
		a.rec.Epoch = ack.Epoch
	}
	drop := ack.Stop && !a.dropping && !a.removed
	if drop {
		a.dropping = true
	}
	a.mu.Unlock()
	if raise {
		a.persist()
	}
	if !drop {
		return
	}
	reason := ack.Reason
	if reason == "" {
		reason = "this copy was replaced or given up"
	}
	a.dmsLine("stopped by the orchestrator: %s", reason)
	a.m.log.Info("allocation stopped by its orchestrator", "allocation_id", a.id(), "reason", reason)
	// Not on the reporter's goroutine: the removal waits for it to end.
	if !a.m.goTracked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), revertGrace+stopMargin)
		defer cancel()
		if err := a.m.remove(ctx, a, revertGrace); err != nil && !errors.Is(err, ErrClosed) {
			a.m.log.Error("remove a stale allocation", "allocation_id", a.id(), "err", err)
		}
	}) {
		a.mu.Lock()
		a.dropping = false
		a.mu.Unlock()
	}
}

// fenceIfSilent stops the workload when the orchestrator has not
// acknowledged a report for StopAfter: the node may have been placed
// again elsewhere. The record stays, so that the final report reaches the
// orchestrator once it answers again. It returns whether it fenced.
func (a *alloc) fenceIfSilent() bool {
	a.mu.Lock()
	silent := time.Since(a.lastAck)
	after := a.rec.StopAfter
	if after <= 0 {
		after = a.m.cfg.StopAfter
	}
	ended := a.rec.State.Terminal() || a.stopping
	a.mu.Unlock()
	if ended || silent < after {
		return false
	}
	msg := fmt.Sprintf("fenced: no word from the orchestrator for %s (stop_after); its node may run elsewhere now", after)
	a.m.log.Warn("allocation fenced", "allocation_id", a.id(), "silent", silent.String(), "stop_after", after.String())
	a.dmsLine("%s", msg)
	ctx, cancel := context.WithTimeout(a.life, fenceGrace+stopMargin)
	defer cancel()
	if err := a.stopWith(ctx, fenceGrace, msg); err != nil {
		a.m.log.Warn("fence", "allocation_id", a.id(), "err", err)
	}
	return true
}
