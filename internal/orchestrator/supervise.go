package orchestrator

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
)

// exitOf returns the exit code of an allocation that ended.
func (r *run) exitOf(name string) *int {
	d := r.snapshot()
	if a := d.Allocations[name]; a != nil && a.Result != nil && a.Result.Reason == executor.ReasonExited {
		c := a.Result.ExitCode
		return &c
	}
	return nil
}

// supervise watches a running deployment: reports, lost allocations and
// their redeploys, the propagation of restarts, the total timeout, and the
// end.
func (r *run) supervise(ctx context.Context) {
	for ctx.Err() == nil {
		if r.shutdownRequested() {
			return
		}
		if d := r.view(); !d.EndDeadline.IsZero() && r.s.cfg.Now().After(d.EndDeadline) {
			r.failWith(ctx, ReasonTimeout, "the total timeout passed", nil)
			return
		}
		r.checkLost()
		if !r.heal(ctx) {
			return
		}
		r.propagate(ctx)
		if r.shutdownRequested() || r.state() != Running {
			return
		}
		d := r.view()
		allDone := true
		for _, name := range r.layout().allocs {
			a := d.Allocations[name]
			if a == nil || a.State != deployproto.AllocCompleted {
				allDone = false
			}
		}
		if allDone {
			zero := 0
			r.update(true, func(d *Deployment) {
				d.State, d.Message, d.ExitCode = Completed, "every allocation completed", &zero
			})
			return
		}
		r.waitChange(ctx, r.nextWake(time.Second))
	}
}

// checkLost marks started allocations silent for longer than LostAfter.
func (r *run) checkLost() {
	if !r.leaseHeld() {
		return
	}
	now := r.s.cfg.Now()
	var lost []string
	r.mu.Lock()
	for name, a := range r.d.Allocations {
		if a.Started && !a.State.Terminal() && !a.LastSeen.IsZero() && now.Sub(a.LastSeen) > r.s.cfg.LostAfter {
			lost = append(lost, name)
		}
	}
	r.mu.Unlock()
	if len(lost) == 0 {
		return
	}
	sort.Strings(lost)
	r.update(true, func(d *Deployment) {
		for _, name := range lost {
			a := d.Allocations[name]
			a.State = deployproto.AllocLost
			a.Message = fmt.Sprintf("no heartbeat from %s for %s", identity.ShortPeerID(a.Handle.Host), r.s.cfg.LostAfter)
			d.addEvent(now, Event{Kind: EventLost, Allocation: name, Node: a.Node, From: a.Handle.Host, Epoch: a.Epoch,
				Message: fmt.Sprintf("allocation %s lost: %s", name, a.Message)})
		}
	})
	r.s.log.Warn("allocations lost", "deployment_id", r.d.ID, "allocations", joinNames(lost))
}

// fail ends the deployment as failed, stopping what still runs.
func (r *run) fail(ctx context.Context, msg string, exit *int) {
	r.stopAll(ctx, Failed, msg, exit)
}

// stopAll stops every allocation that still runs and reverts placements
// that never started, then ends the deployment in state end.
func (r *run) stopAll(ctx context.Context, end State, msg string, exit *int) {
	ctx, span := r.startSpan(ctx, SpanShutdown, attribute.String("deployment.end", string(end)), attribute.String("message", msg))
	d := r.snapshot()
	if d.State != ShuttingDown {
		r.update(true, func(d *Deployment) { d.State, d.Message = ShuttingDown, msg })
	}
	var wg sync.WaitGroup
	for _, a := range d.Allocations {
		if !a.Started || a.State.Terminal() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := r.actor.Invoke(ctx, a.Handle, deployproto.BehaviorStop, deployproto.StopRequest{Grace: 10 * time.Second, Epoch: d.Epoch}, nil); err != nil {
				r.noteStale(err) // replaced by a standby? (standby.go)
				r.s.log.Warn("stop allocation", "deployment_id", d.ID, "allocation", a.Name, "err", err)
			}
		}()
	}
	wg.Wait()
	// Nodes whose allocations never started: release them on the provider.
	started := map[string]bool{}
	for _, a := range d.Allocations {
		if a.Started {
			started[a.Node] = true
		}
	}
	for node, pl := range d.Placement {
		if !started[node] {
			r.revert(ctx, pl.Provider.Host, pl.Reservation)
		}
	}
	span.End() // trace.go: ended before the end is seen
	r.update(true, func(d *Deployment) {
		d.State = end
		d.Message = msg
		if end == Failed {
			if exit == nil {
				one := 1
				exit = &one
			}
			d.ExitCode = exit
		}
		for _, a := range d.Allocations {
			if !a.State.Terminal() {
				a.State = deployproto.AllocStopped
			}
		}
	})
	r.s.log.Info("deployment ended", "deployment_id", d.ID, "state", end, "message", msg)
}

// onReport handles an allocation's report and answers it with a
// deployproto.ReportAck: the current epoch, and a stop for a copy that was
// replaced or that runs for a deployment that ended.
func (r *run) onReport(ctx context.Context, m *actor.Message) (any, error) {
	var rep deployproto.Report
	if err := m.Decode(&rep); err != nil {
		return nil, err
	}
	r.mu.Lock()
	var a *Allocation
	if cur := r.d.Allocations[rep.Allocation]; cur != nil {
		c := *cur // a copy: its fields are read below, after the lock, while other reports update the original
		a = &c
	}
	epoch := r.d.Epoch
	var stale *Replaced
	if a != nil && a.Handle.DID != m.From.DID {
		for i := range a.Replaced {
			if a.Replaced[i].Handle.DID == m.From.DID {
				stale = &a.Replaced[i]
			}
		}
	}
	var replacedEpoch uint64
	if stale != nil {
		replacedEpoch = stale.Epoch
	}
	r.mu.Unlock()
	if a == nil || a.Handle.DID != m.From.DID && stale == nil {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("%s is not allocation %s of deployment %s", m.From.DID.Short(), rep.Allocation, r.d.ID)}
	}
	if stale != nil {
		return r.onStaleReport(a.Name, m.From, rep, replacedEpoch, epoch), nil
	}
	if r.state().Terminal() && !rep.State.Terminal() {
		// It runs for a deployment that ended: stop it, so it frees its
		// provider's resources.
		r.stopLingering(a.Name, a.Handle)
		return deployproto.ReportAck{Epoch: epoch}, nil
	}
	now := r.s.cfg.Now()
	back := a.State == deployproto.AllocLost && !rep.State.Terminal()
	restarted := rep.Seq > a.Seq && rep.Restarts > a.Restarts
	changed := rep.Seq > a.Seq && (rep.State != a.State || rep.Restarts != a.Restarts || rep.Result != nil && a.Result == nil)
	induced := false
	if restarted {
		r.mu.Lock()
		if r.induced[a.Name] > 0 {
			r.induced[a.Name]--
			induced = true
		}
		r.mu.Unlock()
	}
	r.update(changed || back, func(d *Deployment) {
		a := d.Allocations[rep.Allocation]
		a.LastSeen = now
		if back {
			d.addEvent(now, Event{Kind: EventBack, Allocation: a.Name, Node: a.Node, From: a.Handle.Host, Epoch: a.Epoch,
				Message: fmt.Sprintf("allocation %s is back: %s reports again", a.Name, identity.ShortPeerID(a.Handle.Host))})
			a.Seq = 0 // take its state as it reports it
		}
		if rep.Seq <= a.Seq {
			return
		}
		a.Seq, a.State, a.Restarts, a.Message = rep.Seq, rep.State, rep.Restarts, rep.Message
		if rep.Result != nil {
			a.Result = rep.Result
		}
		if rep.Ports != nil {
			a.Ports = rep.Ports
		}
		if restarted {
			why := "asked to by a dependency notice"
			if !induced {
				why = rep.Message
			}
			d.addEvent(now, Event{Kind: EventRestarted, Allocation: a.Name, Node: a.Node, From: a.Handle.Host, Epoch: a.Epoch,
				Message: fmt.Sprintf("restarted %s on %s (restart %d): %s", a.Name, identity.ShortPeerID(a.Handle.Host), rep.Restarts, why)})
		}
		if changed && rep.State == deployproto.AllocFailed {
			d.addEvent(now, Event{Kind: EventFailed, Allocation: a.Name, Node: a.Node, From: a.Handle.Host, Epoch: a.Epoch,
				Message: fmt.Sprintf("allocation %s failed on %s: %s", a.Name, identity.ShortPeerID(a.Handle.Host), rep.Message)})
		}
	})
	if restarted && !induced {
		r.queuePropagation(a.Name, deployproto.DependencyRestarted, fmt.Sprintf("%s restarted (restart %d): %s", a.Name, rep.Restarts, rep.Message))
	}
	return deployproto.ReportAck{Epoch: epoch}, nil
}

// onStaleReport answers a report of a copy that a redeploy replaced: it is
// told to stop (and, once it reports its end, recorded as stopped).
func (r *run) onStaleReport(name string, from actor.Handle, rep deployproto.Report, copyEpoch, epoch uint64) deployproto.ReportAck {
	reason := fmt.Sprintf("stale copy: allocation %s was placed again at epoch %d (this copy's epoch is %d)", name, epoch, copyEpoch)
	r.update(true, func(d *Deployment) {
		a := d.Allocations[name]
		for i := range a.Replaced {
			c := &a.Replaced[i]
			if c.Handle.DID != from.DID || c.Stopped {
				continue
			}
			switch {
			case rep.State.Terminal():
				markStaleStopped(d, r.s.cfg.Now(), name, c, string(rep.State))
			case !c.Told:
				c.Told = true
				d.addEvent(r.s.cfg.Now(), Event{Kind: EventStaleStopped, Allocation: name, Node: a.Node, From: c.Handle.Host, Epoch: c.Epoch,
					Message: fmt.Sprintf("stopping stale copy of %s on %s, epoch %d: it reported %s", name, identity.ShortPeerID(c.Handle.Host), c.Epoch, rep.State)})
			}
		}
	})
	return deployproto.ReportAck{Epoch: epoch, Stop: true, Reason: reason}
}

// staleStopped records that the replaced copy of name at h has stopped
// (once, whichever of its final report and the stop's reply comes first).
func (r *run) staleStopped(name string, h actor.Handle, how string) {
	r.update(true, func(d *Deployment) {
		a := d.Allocations[name]
		for i := range a.Replaced {
			if c := &a.Replaced[i]; c.Handle == h && !c.Stopped {
				markStaleStopped(d, r.s.cfg.Now(), name, c, how)
			}
		}
	})
}

func markStaleStopped(d *Deployment, now time.Time, name string, c *Replaced, how string) {
	c.Stopped = true
	d.addEvent(now, Event{Kind: EventStaleStopped, Allocation: name, Node: d.Allocations[name].Node, From: c.Handle.Host, Epoch: c.Epoch,
		Message: fmt.Sprintf("stopped stale copy of %s on %s, epoch %d (%s)", name, identity.ShortPeerID(c.Handle.Host), c.Epoch, how)})
}

// stopLingering stops an allocation that runs for an ended deployment, at
// most once a minute per allocation.
func (r *run) stopLingering(name string, h actor.Handle) {
	r.mu.Lock()
	if r.lingering == nil {
		r.lingering = map[string]time.Time{}
	}
	now := r.s.cfg.Now()
	if last, ok := r.lingering[name]; ok && now.Sub(last) < time.Minute {
		r.mu.Unlock()
		return
	}
	r.lingering[name] = now
	r.mu.Unlock()
	r.s.log.Info("stopping an allocation that outlived its deployment", "deployment_id", r.d.ID, "allocation", name)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.actor.Invoke(ctx, h, deployproto.BehaviorStop, deployproto.StopRequest{Grace: 10 * time.Second}, nil); err != nil {
			r.s.log.Warn("stop lingering allocation", "deployment_id", r.d.ID, "allocation", name, "err", err)
		}
	}()
}
