package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// Self-healing: a node of the ensemble whose provider was lost, or one of
// whose allocations failed there (after its restarts), is placed again on
// another provider, within the budget of the ensemble's reschedule block,
// while the rest of the deployment keeps running. A pinned node is not
// moved: it waits for its provider. Every decision is an Event.

// brokenNode is the loop's memory of a node that needs a redeploy (not
// persisted: after a restart of the orchestrating node, its delay starts
// again).
type brokenNode struct {
	since     time.Time // when it was first seen broken
	announced bool      // the redeploying (or waiting) event was recorded
	waiting   string    // the last "no provider" summary recorded
	tries     int       // rounds that found no placement
	nextTry   time.Time
}

// healing is a node to redeploy: why, and which of its allocations run
// again (all but completed tasks).
type healing struct {
	why   string
	names []string // to run again
	lost  bool     // every broken allocation of the node was lost (its provider is silent)
	exit  *int     // the exit code of a failed task, for the deployment's
	alloc string   // the first broken allocation
}

// nodeAllocs returns the allocation names of node, sorted.
// The caller must not change it (layout).
func (r *run) nodeAllocs(node string) []string { return r.layout().nodeAllocs[node] }

// broken says whether node needs a redeploy, and why.
func (r *run) broken(d *Deployment, node string) *healing {
	var h *healing
	lost := true
	for _, name := range r.nodeAllocs(node) {
		a := d.Allocations[name]
		if a == nil {
			return nil // not committed yet
		}
		switch a.State {
		case deployproto.AllocLost, deployproto.AllocFailed, deployproto.AllocStopped:
		default:
			continue
		}
		if h == nil {
			h = &healing{alloc: name}
			h.why = fmt.Sprintf("allocation %s %s", name, a.State)
			if a.Message != "" {
				h.why += ": " + a.Message
			}
			h.exit = r.exitOf(name)
		}
		lost = lost && a.State == deployproto.AllocLost
	}
	if h == nil {
		return nil
	}
	h.lost = lost
	for _, name := range r.nodeAllocs(node) {
		if d.Allocations[name].State != deployproto.AllocCompleted {
			h.names = append(h.names, name)
		}
	}
	return h
}

// recentRedeploys returns the redeploys of node within the reschedule
// interval before now.
func recentRedeploys(d *Deployment, node string, interval time.Duration, now time.Time) []time.Time {
	var out []time.Time
	for _, t := range d.Redeploys[node] {
		if now.Sub(t) < interval {
			out = append(out, t)
		}
	}
	return out
}

// failWith ends the deployment as failed with a typed reason.
func (r *run) failWith(ctx context.Context, reason, msg string, exit *int) {
	r.update(true, func(d *Deployment) { d.Reason = reason })
	r.stopAll(ctx, Failed, msg, exit)
}

// heal redeploys the nodes that need it, as far as their delays allow. It
// returns false when it ended the deployment.
func (r *run) heal(ctx context.Context) bool {
	if !r.leaseHeld() {
		return true
	}
	d := r.view() // read only
	now := r.s.cfg.Now()
	nodes := r.layout().nodes
	rs := r.spec.Reschedule
	for _, node := range nodes {
		h := r.broken(d, node)
		if h == nil {
			delete(r.brokenNodes, node)
			continue
		}
		b := r.brokenNodes[node]
		if b == nil {
			b = &brokenNode{since: now}
			r.brokenNodes[node] = b
		}
		if peer := r.spec.Nodes[node].Peer; peer != "" {
			if !h.lost {
				r.failWith(ctx, ReasonPinned, fmt.Sprintf("%s; node %s is pinned to %s and cannot move", h.why, node, identity.ShortPeerID(peer)), h.exit)
				return false
			}
			if !b.announced {
				b.announced = true
				msg := fmt.Sprintf("node %s is pinned to %s: waiting for its provider (%s)", node, identity.ShortPeerID(peer), h.why)
				r.announce(Event{Kind: EventWaiting, Node: node, Allocation: h.alloc, From: peer, Message: msg})
			}
			continue
		}
		recent := recentRedeploys(d, node, rs.Interval, now)
		if len(recent) >= rs.Attempts {
			msg := fmt.Sprintf("%s; redeploys are off (reschedule.attempts: 0)", h.why)
			if rs.Attempts > 0 {
				msg = fmt.Sprintf("%s; node %s was redeployed %d times within %s (reschedule.attempts: %d)", h.why, node, len(recent), rs.Interval, rs.Attempts)
			}
			r.event(Event{Kind: EventBudgetSpent, Node: node, Allocation: h.alloc, Message: msg})
			r.failWith(ctx, ReasonBudgetSpent, msg, h.exit)
			return false
		}
		attempt := len(recent) + 1
		due := b.since.Add(rs.Wait(attempt))
		if !b.announced {
			b.announced = true
			msg := fmt.Sprintf("redeploying node %s in %s (attempt %d of %d within %s): %s", node, due.Sub(now).Round(time.Millisecond), attempt, rs.Attempts, rs.Interval, h.why)
			r.announce(Event{Kind: EventRedeploying, Node: node, Allocation: h.alloc, From: d.Placement[node].Provider.Host, Message: msg})
		}
		if now.Before(due) || now.Before(b.nextTry) {
			continue
		}
		if err := r.secretsReady(node); err != nil {
			// secrets.go: a commit without them would only fail on the provider.
			msg := fmt.Sprintf("%s; node %s cannot be redeployed: %v", h.why, node, err)
			r.failWith(ctx, ReasonSecretUnavailable, msg, h.exit)
			return false
		}
		if r.redeploy(ctx, node, h, attempt, b) {
			delete(r.brokenNodes, node)
			continue
		}
		if r.state().Terminal() || r.shutdownRequested() {
			return false
		}
		if !h.lost {
			// A failure, not a silence: without another provider at
			// hand, waiting would only delay the deployment's end.
			r.failWith(ctx, ReasonAllocationFailed, fmt.Sprintf("%s; no other provider took node %s: %s", h.why, node, b.waiting), h.exit)
			return false
		}
		queue := r.s.cfg.QueueTimeout
		if r.spec.Timeouts.Queue > 0 {
			queue = r.spec.Timeouts.Queue
		}
		if r.s.cfg.Now().Sub(b.since) > queue {
			r.failWith(ctx, ReasonNoPlacement, fmt.Sprintf("%s; no provider for node %s within the queue timeout (%s): %s", h.why, node, queue, b.waiting), h.exit)
			return false
		}
		b.tries++
		b.nextTry = r.s.cfg.Now().Add(min(r.s.cfg.BidWindow<<min(b.tries, 8), r.s.cfg.RetryMax))
	}
	return true
}

// nextWake returns how long the loop may sleep before heal has work: the
// earliest due redeploy, at most max.
func (r *run) nextWake(longest time.Duration) time.Duration {
	now := r.s.cfg.Now()
	wait := longest
	d := r.view()
	for node, b := range r.brokenNodes {
		due := b.since.Add(r.spec.Reschedule.Wait(len(recentRedeploys(d, node, r.spec.Reschedule.Interval, now)) + 1))
		if b.nextTry.After(due) {
			due = b.nextTry
		}
		if w := due.Sub(now); w < wait {
			wait = max(w, 10*time.Millisecond)
		}
	}
	return wait
}

// redeploy places node again: a bid round for it alone that excludes the
// providers of the other nodes and those that failed this one, a commit
// at a new epoch, the start of its allocations (but completed tasks), the
// old copies stopped, and the dependents told. It returns false when no
// provider took it (the caller retries).
func (r *run) redeploy(ctx context.Context, node string, h *healing, attempt int, b *brokenNode) bool {
	d := r.snapshot()
	now := r.s.cfg.Now()
	rs := r.spec.Reschedule
	excluded := maps.Clone(r.excluded)
	far := now.Add(24 * time.Hour)
	for other, pl := range d.Placement {
		if other != node {
			excluded[pl.Provider.Host] = far
		}
	}
	for _, name := range r.nodeAllocs(node) {
		if a := d.Allocations[name]; a != nil {
			excluded[a.Handle.Host] = now.Add(rs.Interval)
			for _, old := range a.Replaced {
				excluded[old.Handle.Host] = now.Add(rs.Interval)
			}
		}
	}
	r.update(true, func(d *Deployment) { d.Round++ })
	round := r.snapshot().Round
	var reqs []deployproto.NodeRequest
	for _, req := range placement.Requests(r.spec, now) {
		if req.Name == node {
			reqs = append(reqs, req)
		}
	}
	rd := r.collectBids(ctx, reqs, round, nil)
	rd.Excluded, rd.Now = excluded, r.s.cfg.Now()
	r.learnOffers(rd)
	cands, reasons := placement.Rate(rd)
	// Edges to the nodes that stay are not checked again (their providers'
	// bids are not part of this round).
	plan, missing := placement.Place([]string{node}, cands, nil)
	r.revertUnused(ctx, rd.Replies, plan)
	if plan == nil {
		reasons = placement.Explain(missing, cands, nil, reasons)
		summary := placement.Summarize(reasons)
		msg := fmt.Sprintf("no provider for node %s (%d answered): %s; retrying", node, len(rd.Answered), summary)
		r.update(true, func(d *Deployment) { d.Candidates = reasons; d.Message = msg })
		if summary != b.waiting {
			b.waiting = summary
			r.event(Event{Kind: EventWaiting, Node: node, Message: msg})
		}
		return false
	}
	if bad := placement.VerifyBids(d.ID, plan); bad != nil {
		for _, x := range bad {
			r.excluded[x.Peer] = r.s.cfg.Now().Add(time.Minute)
		}
		r.revertPlanOf(ctx, plan)
		return false
	}
	c := plan[node]
	var epoch uint64
	r.update(true, func(d *Deployment) { d.Epoch++; epoch = d.Epoch })
	pl := Placement{Provider: c.Provider, Reservation: c.Bid.Reservation, Score: c.Rating.Value, Cost: c.Rating.Cost.String(), Epoch: epoch, Price: c.Bid.Offer.Price}
	placed := map[string]Placement{node: pl}
	rerun := map[string]bool{}
	for _, n := range h.names {
		rerun[n] = true
	}
	allocs, refused := r.commitAll(ctx, placed, epoch, func(name string) bool { return rerun[name] })
	if refused == nil && d.Subnet.IsValid() {
		// The moved addresses live at the new provider before it starts
		// (subnet.go): a new version of the table to every current
		// provider. Only the new provider's refusal fails the redeploy.
		now := maps.Clone(d.Placement)
		now[node] = pl
		if err := refusedBy(r.pushSubnet(ctx, now), pl.Provider.Host); err != nil {
			r.excluded[pl.Provider.Host] = r.s.cfg.Now().Add(time.Minute)
			refused = []placement.Reason{{Peer: pl.Provider.Host, Node: node, Kind: deployproto.KindRefused, Reasons: []string{err.Error()}}}
		}
	}
	if refused != nil {
		r.revertPlacement(ctx, placed)
		r.update(true, func(d *Deployment) { d.Candidates = append(d.Candidates, refused...) })
		return false
	}
	old := d.Placement[node]
	from := old.Provider.Host
	msg := fmt.Sprintf("redeployed node %s from %s to %s (attempt %d of %d): %s", node, identity.ShortPeerID(from), identity.ShortPeerID(pl.Provider.Host), attempt, rs.Attempts, h.why)
	var replaced []*Allocation
	r.update(true, func(d *Deployment) {
		for name, na := range allocs {
			oa := d.Allocations[name]
			replaced = append(replaced, oa)
			na.Replaced = append(slices.Clone(oa.Replaced), Replaced{Handle: oa.Handle, Epoch: oa.Epoch})
			if n := len(na.Replaced) - maxReplaced; n > 0 {
				na.Replaced = na.Replaced[n:]
			}
			d.Allocations[name] = na
		}
		d.setPlacement(node, pl)
		if d.Redeploys == nil {
			d.Redeploys = map[string][]time.Time{}
		}
		d.Redeploys[node] = append(recentRedeploys(d, node, rs.Interval, now), r.s.cfg.Now())
		d.Message = msg
		d.addEvent(r.s.cfg.Now(), Event{Kind: EventRedeployed, Node: node, Allocation: h.alloc, From: from, To: pl.Provider.Host, Epoch: epoch, Message: msg})
	})
	r.s.log.Info("supervision", "deployment_id", d.ID, "kind", EventRedeployed, "node", node, "message", msg)
	r.s.stats.placements.Add(1)
	r.retire(ctx, old, replaced, epoch)
	// The old placement's contracts end here (contracts.go): what was
	// countersigned stays owed.
	r.abandon(old.Provider.Host, old.Reservation, "node redeployed")
	for _, oa := range replaced {
		r.abandonID(oa.Contract, "node redeployed")
	}
	names := sortedKeys(allocs)
	r.startNames(ctx, names)
	for _, name := range names {
		r.queuePropagation(name, deployproto.DependencyMoved, fmt.Sprintf("%s moved from %s to %s", name, identity.ShortPeerID(from), identity.ShortPeerID(pl.Provider.Host)))
	}
	return true
}

// maxReplaced is how many replaced copies an allocation remembers.
const maxReplaced = 8

// retire releases what the replaced copies of a node held: a copy never
// started is reverted with its reservation; a lost or stopped one is asked
// to stop and remove itself (its provider may only be cut off); a failed
// one has released its resources already and keeps its logs.
func (r *run) retire(ctx context.Context, old Placement, copies []*Allocation, epoch uint64) {
	started := false
	for _, a := range copies {
		started = started || a.Started
	}
	if !started {
		r.revert(ctx, old.Provider.Host, old.Reservation)
		return
	}
	for _, a := range copies {
		if a.State == deployproto.AllocFailed {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.CommitTimeout)
			defer cancel()
			if err := r.actor.Invoke(ctx, a.Handle, deployproto.BehaviorStop, deployproto.StopRequest{Grace: 10 * time.Second, Remove: true, Epoch: epoch}, nil); err != nil {
				r.s.log.Debug("stop replaced copy", "deployment_id", r.d.ID, "allocation", a.Name, "err", err)
				return
			}
			// Removed on request: its final report may never come.
			r.staleStopped(a.Name, a.Handle, "stopped on request")
		}()
	}
}

// startNames starts the named allocations in depends_on order, waiting
// (up to the commit timeout per level) for each level to be ready before
// the next. A start that fails marks the allocation failed (heal then
// redeploys it).
func (r *run) startNames(ctx context.Context, names []string) {
	levels, err := r.spec.Levels()
	if err != nil {
		return
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var todo [][]string
	for _, level := range levels {
		var l []string
		for _, n := range level {
			if want[n] {
				l = append(l, n)
			}
		}
		if len(l) > 0 {
			todo = append(todo, l)
		}
	}
	for i, level := range todo {
		r.startLevel(ctx, level)
		if i == len(todo)-1 {
			break
		}
		deadline := r.s.cfg.Now().Add(r.s.cfg.CommitTimeout + r.s.cfg.LostAfter)
		for ctx.Err() == nil && !r.shutdownRequested() && r.s.cfg.Now().Before(deadline) {
			if ready, failed := r.levelReady(level); ready || failed != "" {
				break
			}
			r.waitChange(ctx, time.Second)
		}
	}
}

// A propagation is a restart or move of an allocation that its
// dependents (or, under one_for_all, all the others) are told of.
type propagation struct {
	dep, event, msg string
}

func (r *run) queuePropagation(dep, event, msg string) {
	r.mu.Lock()
	r.propagations = append(r.propagations, propagation{dep, event, msg})
	r.mu.Unlock()
}

// propagate applies the supervision strategy to the queued restarts and
// moves: dependents are told (and restarted under rest_for_one), or every
// other allocation is restarted (one_for_all), in depends_on order.
func (r *run) propagate(ctx context.Context) {
	r.mu.Lock()
	ps := r.propagations
	r.propagations = nil
	r.mu.Unlock()
	for _, p := range ps {
		r.propagateOne(ctx, p)
	}
}

func (r *run) propagateOne(ctx context.Context, p propagation) {
	strategy := r.spec.Supervision.Strategy
	if strategy == "" {
		strategy = ensemble.OneForOne
	}
	dependents := r.dependents(p.dep)
	restart := strategy != ensemble.OneForOne
	targets := dependents
	if strategy == ensemble.OneForAll {
		targets = nil
		levels, _ := r.spec.Levels()
		for _, level := range levels {
			for _, n := range level {
				if n != p.dep {
					targets = append(targets, n)
				}
			}
		}
	}
	d := r.snapshot()
	for _, name := range targets {
		a := d.Allocations[name]
		if a == nil || !a.Started || a.State.Terminal() {
			continue
		}
		if restart {
			r.mu.Lock()
			r.induced[name]++
			r.mu.Unlock()
		}
		n := deployproto.DependencyNotice{Epoch: d.Epoch, Dependency: p.dep, Event: p.event, Message: p.msg, Restart: restart, Strategy: string(strategy)}
		cctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
		err := r.actor.Invoke(cctx, a.Handle, deployproto.BehaviorDependency, n, nil)
		cancel()
		r.noteStale(err) // replaced by a standby? (standby.go)
		if err != nil {
			if restart {
				r.mu.Lock()
				r.induced[name]--
				r.mu.Unlock()
			}
			r.s.log.Warn("dependency notice", "deployment_id", d.ID, "allocation", name, "err", err)
			continue
		}
		what := "told it"
		if restart {
			what = fmt.Sprintf("restarting it (%s)", strategy)
		}
		r.event(Event{Kind: EventNotified, Allocation: name, Epoch: d.Epoch,
			Message: fmt.Sprintf("%s %s: %s; %s", p.dep, p.event, strings.TrimPrefix(p.msg, p.dep+" "), what)})
	}
}

// dependents returns the allocations that depend on dep, directly or
// through others, in depends_on order.
func (r *run) dependents(dep string) []string {
	levels, err := r.spec.Levels()
	if err != nil {
		return nil
	}
	in := map[string]bool{dep: true}
	var out []string
	for _, level := range levels {
		for _, n := range level {
			for _, x := range r.spec.Allocations[n].DependsOn {
				if in[x] && !in[n] {
					in[n] = true
					out = append(out, n)
				}
			}
		}
	}
	return out
}
