package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
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
	changed  chan struct{} // closed at every change; guarded by mu
	shutdown bool          // shutdown requested; guarded by mu

	excluded  map[string]time.Time // providers that refused a commit, until when; loop only
	lingering map[string]time.Time // allocations told to stop after the end; guarded by mu
}

func newRun(s *Service, d *Deployment, a *actor.Actor, spec *ensemble.Spec, key *identity.Key, chains []cap.Chain) *run {
	return &run{s: s, d: d, actor: a, spec: spec, key: key, chains: chains, changed: make(chan struct{}), excluded: map[string]time.Time{}}
}

func (r *run) snapshot() *Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.clone()
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
	fn(r.d)
	r.d.Version++
	r.d.Updated = r.s.cfg.Now()
	var c *Deployment
	if persist {
		c = r.d.clone()
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	if c != nil {
		if err := r.s.cfg.Store.PutDeployment(c); err != nil {
			r.s.log.Error("persist deployment", "deployment_id", c.ID, "err", err)
		}
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
	for ctx.Err() == nil {
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
			return
		}
	}
}

// nodeRequests builds what each node of the ensemble asks of a provider.
func (r *run) nodeRequests() []NodeRequest {
	nodes, _ := nodesOf(r.spec)
	now := r.s.cfg.Now()
	var out []NodeRequest
	for _, name := range nodes {
		n := r.spec.Nodes[name]
		req := match.Request{Window: match.Window{Start: now}}
		execs := map[string]bool{}
		for _, an := range n.Allocations {
			a := r.spec.Allocations[an]
			req.Resources, _ = req.Resources.Add(resourcesOf(a.Resources))
			execs[string(a.Executor)] = true
			if a.Executor == ensemble.VM && a.Execution.Kernel == "" {
				execs[resource.ExecutorVMKernel] = true
			}
		}
		for e := range execs {
			req.Executors = append(req.Executors, e)
		}
		sort.Strings(req.Executors)
		req.Location = locationRule(n.Location)
		peer := n.Peer
		if identity.DID(peer).Valid() {
			peer, _ = identity.DID(peer).PeerID()
		}
		out = append(out, NodeRequest{Name: name, Request: req, Peer: peer})
	}
	return out
}

// resourcesOf converts an ensemble's resources to the algebra's.
func resourcesOf(r ensemble.Resources) match.Resources {
	m := match.Resources{CPU: r.CPU, RAM: r.RAM, Disk: r.Disk}
	for _, g := range r.GPUs {
		for range g.Count {
			m.GPUs = append(m.GPUs, match.GPU{Vendor: g.Vendor, Model: g.Model, VRAM: g.VRAM})
		}
	}
	return m
}

// locationRule converts an ensemble location to the algebra's: continent
// names, ISO countries, and ISO subdivisions (country part only).
func locationRule(l ensemble.Location) match.LocationRule {
	conv := func(codes []string) []match.Location {
		var out []match.Location
		for _, c := range codes {
			out = append(out, locationOf(c))
		}
		return out
	}
	return match.LocationRule{Accept: conv(l.Accept), Reject: conv(l.Reject)}
}

var continents = map[string]string{
	"africa": "AF", "antarctica": "AN", "asia": "AS", "europe": "EU",
	"north-america": "NA", "oceania": "OC", "south-america": "SA",
}

func locationOf(code string) match.Location {
	if c, ok := continents[code]; ok {
		return match.Location{Continent: c}
	}
	if len(code) > 2 && code[2] == '-' {
		return match.Location{Country: code[:2]}
	}
	return match.Location{Country: code}
}

// place runs bid rounds until the ensemble is placed and committed, the
// queue timeout passes, or a shutdown is requested.
func (r *run) place(ctx context.Context) {
	backoff := r.s.cfg.BidWindow
	// The first round asks the providers the offer cache shortlists, when
	// it can; every later round broadcasts.
	first := true
	for ctx.Err() == nil {
		if r.shutdownRequested() {
			return
		}
		d := r.snapshot()
		if now := r.s.cfg.Now(); now.After(d.QueueDeadline) {
			r.update(true, func(d *Deployment) {
				d.State = Failed
				d.Message = "no placement before the queue timeout: " + summarize(d.Candidates)
			})
			return
		}
		// A placement recorded but not committed (a restart while
		// committing): undo it before bidding again.
		if len(d.Placement) > 0 && d.State != Provisioning {
			r.revertPlacement(ctx, d.Placement)
			r.update(true, func(d *Deployment) { d.Placement = map[string]Placement{} })
		}
		r.update(true, func(d *Deployment) { d.State = Bidding; d.Round++ })
		reqs := r.nodeRequests()
		round := r.snapshot().Round
		var short []string
		if first {
			short = r.s.offers.shortlist(reqs, r.s.cfg.Now())
		}
		first = false
		replies, answered := r.collectBids(ctx, reqs, round, short)
		cands, reasons := r.rate(reqs, replies, answered, short)
		nodes, _ := nodesOf(r.spec)
		edges := r.edges()
		plan, missing := placeEdges(nodes, cands, edges)
		r.revertUnused(ctx, replies, plan)
		if plan == nil && short != nil {
			continue // the shortlist did not do: ask everyone
		}
		if plan == nil {
			// A missing node with bids lost them to the ensemble's other
			// nodes: two nodes never share a provider.
			for _, node := range missing {
				for _, c := range cands[node] {
					reasons = append(reasons, CandidateReason{Peer: c.Provider.Host, Node: node, Kind: "distinct",
						Reasons: []string{"fits, but is needed for another node of this ensemble (nodes never share a provider)"}})
				}
			}
			for _, node := range missing {
				for _, e := range edges {
					if (e.a == node || e.b == node) && len(cands[node]) > 0 {
						reasons = append(reasons, CandidateReason{Node: node, Kind: "rtt",
							Reasons: []string{fmt.Sprintf("no provider for %s within %s of the provider of %s (edge %s-%s)", node, e.rtt, otherEnd(e, node), e.a, e.b)}})
					}
				}
			}
			if len(reasons) == 0 {
				reasons = append(reasons, CandidateReason{Node: "*", Kind: "no-answer", Reasons: []string{"no provider answered"}})
			}
			msg := fmt.Sprintf("no placement for %s (%d providers answered): waiting for providers", joinNames(missing), len(answered))
			r.update(true, func(d *Deployment) { d.State = Queued; d.Candidates = reasons; d.Message = msg })
			r.waitChange(ctx, backoff)
			backoff = min(backoff*2, r.s.cfg.RetryMax)
			continue
		}
		// Bids arrived over authenticated links; their signatures matter to
		// third parties, so only the winners' are checked (and kept).
		if bad := r.checkSignatures(plan); bad != nil {
			r.revertPlacementOf(ctx, plan)
			r.update(true, func(d *Deployment) { d.Candidates = append(d.Candidates, bad...) })
			continue
		}
		placement := map[string]Placement{}
		for node, c := range plan {
			placement[node] = Placement{Provider: c.Provider, Reservation: c.Bid.Reservation, Score: c.Rating.Value, Cost: c.Rating.Cost.String()}
		}
		r.update(true, func(d *Deployment) {
			d.State, d.Placement, d.Candidates = Committing, placement, reasons
			d.Message = "committing"
		})
		allocs, refused := r.commitAll(ctx, placement)
		if refused != nil {
			r.revertPlacement(ctx, placement)
			r.update(true, func(d *Deployment) {
				d.Placement = map[string]Placement{}
				d.Candidates = append(d.Candidates, refused...)
				d.Message = "a provider refused the commit; bidding again"
			})
			continue
		}
		r.update(true, func(d *Deployment) {
			d.State = Provisioning
			d.Message = "starting allocations"
			for name, a := range allocs {
				d.Allocations[name] = a
			}
		})
		return
	}
}

// collectBids broadcasts a bid request (and sends it to pinned peers and
// to this node) and collects the replies during the bid window, or until
// every connected peer answered. With a shortlist it sends the request to
// those providers only, and waits for them.
func (r *run) collectBids(ctx context.Context, reqs []NodeRequest, round int, shortlist []string) (map[string]answer, map[string]bool) {
	req := BidRequest{Deployment: r.d.ID, Orchestrator: r.actor.Handle(), Round: round, Nodes: reqs}
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.BidWindow)
	defer cancel()
	self := r.s.cfg.Node.Handle()
	expect := map[string]bool{self.Host: true}
	if shortlist == nil {
		for _, p := range r.s.cfg.Peers() {
			expect[p] = true
		}
	}
	var mu sync.Mutex
	replies := map[string]answer{}
	answered := map[string]bool{}
	done := make(chan struct{})
	var closeOnce sync.Once
	collect := func(rep *actor.Reply) {
		mu.Lock()
		defer mu.Unlock()
		host := rep.From.Host
		if answered[host] {
			return
		}
		answered[host] = true
		if rep.Err == nil {
			var br BidReply
			if rep.Decode(&br) == nil && br.Provider.Host == host {
				replies[host] = open(br)
			}
		} else {
			replies[host] = answer{BidReply: BidReply{Provider: rep.From, NoBids: []NoBid{{Node: "*", Kind: "refused", Reasons: []string{rep.Err.Error()}}}}}
		}
		all := true
		for p := range expect {
			if !answered[p] {
				all = false
				break
			}
		}
		if all {
			closeOnce.Do(func() { close(done) })
		}
	}
	targets := []actor.Handle{self}
	if shortlist == nil {
		if err := r.actor.Broadcast(ctx, TopicDeployments, BehaviorRequest, req, collect); err != nil {
			r.s.log.Warn("bid request not published", "deployment_id", r.d.ID, "err", err)
		}
	} else {
		for _, host := range shortlist {
			if host == self.Host {
				continue
			}
			if h, err := actor.NodeHandle(host); err == nil {
				targets = append(targets, h)
				expect[host] = true
			}
		}
	}
	for _, nr := range reqs {
		if nr.Peer != "" && nr.Peer != self.Host {
			if h, err := actor.NodeHandle(nr.Peer); err == nil {
				targets = append(targets, h)
				mu.Lock()
				expect[nr.Peer] = true
				mu.Unlock()
			}
		}
	}
	for _, h := range targets {
		go func() {
			rep, err := r.actor.InvokeRaw(ctx, h, BehaviorRequest, req)
			if rep == nil {
				var ae *actor.Error
				if !errors.As(err, &ae) || ae.Code == actor.CodeTimeout {
					return // no answer
				}
				rep = &actor.Reply{From: h, Err: ae}
			}
			rep.From.Host = h.Host
			collect(rep)
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]answer, len(replies))
	for k, v := range replies {
		out[k] = v
	}
	ans := make(map[string]bool, len(answered))
	for k, v := range answered {
		ans[k] = v
	}
	return out, ans
}

// answer is a provider's reply to a bid request, its bid opened.
type answer struct {
	BidReply
	bid *Bid // nil when the reply has no bid, or one that does not decode
}

// open decodes the bid of a reply; one that does not decode becomes a
// reason not to count the provider.
func open(br BidReply) answer {
	a := answer{BidReply: br}
	if br.Bid == nil {
		return a
	}
	b, err := br.Bid.Open()
	if err != nil {
		a.NoBids = append(a.NoBids, NoBid{Node: "*", Kind: "invalid", Reasons: []string{err.Error()}})
		return a
	}
	a.bid = &b
	return a
}

// rate checks and scores the bids: a bid counts when its signature is the
// provider's, its offer is well-formed, and the orchestrator's own scoring
// finds it eligible. It returns the candidates per node, and why every
// other provider is not one.
func (r *run) rate(reqs []NodeRequest, replies map[string]answer, answered map[string]bool, shortlist []string) (map[string][]candidate, []CandidateReason) {
	byName := map[string]NodeRequest{}
	for _, nr := range reqs {
		byName[nr.Name] = nr
	}
	now := r.s.cfg.Now()
	cands := map[string][]candidate{}
	var reasons []CandidateReason
	hosts := make([]string, 0, len(replies))
	for h := range replies {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		br := replies[host]
		if _, err := identity.DIDFromPeerID(host); err != nil {
			continue
		}
		if br.Offer != nil {
			r.s.offers.put(host, *br.Offer, now)
		}
		for _, nb := range br.NoBids {
			reasons = append(reasons, CandidateReason{Peer: host, Node: nb.Node, Kind: nb.Kind, Reasons: nb.Reasons})
		}
		if br.bid == nil {
			continue
		}
		b := *br.bid
		offerErr := b.Offer.Validate()
		for _, node := range b.Nodes {
			nr, ok := byName[node]
			bad := func(kind, why string) {
				reasons = append(reasons, CandidateReason{Peer: host, Node: node, Kind: kind, Reasons: []string{why}})
			}
			switch {
			case !ok:
				continue
			case offerErr != nil:
				bad("invalid", offerErr.Error())
				continue
			case now.Before(r.excluded[host]):
				bad("refused", "refused a commit earlier")
				continue
			}
			rating := match.Score(b.Offer, nr.Request)
			if !rating.Eligible {
				var why []string
				for _, rs := range rating.Reasons {
					why = append(why, rs.String())
				}
				kind := "resource"
				if len(rating.Reasons) > 0 {
					kind = reasonKind(rating.Reasons[0].Dimension)
				}
				reasons = append(reasons, CandidateReason{Peer: host, Node: node, Kind: kind, Reasons: why})
				continue
			}
			cands[node] = append(cands[node], candidate{Node: node, Provider: br.Provider, Bid: b, Signed: br.Bid, Rating: rating})
		}
	}
	peers := append([]string{r.s.cfg.Node.Handle().Host}, r.s.cfg.Peers()...)
	if shortlist != nil {
		peers = append([]string{r.s.cfg.Node.Handle().Host}, shortlist...)
	}
	sort.Strings(peers)
	for _, p := range compact(peers) {
		if !answered[p] {
			reasons = append(reasons, CandidateReason{Peer: p, Node: "*", Kind: "no-answer"})
			r.s.offers.drop(p)
		}
	}
	return cands, reasons
}

// revertUnused releases the reservations of bids the plan does not use.
func (r *run) revertUnused(ctx context.Context, replies map[string]answer, plan map[string]candidate) {
	// Reservation IDs name a round and a node, the same on every provider.
	type key struct{ host, reservation string }
	used := map[key]bool{}
	for _, c := range plan {
		used[key{c.Provider.Host, c.Bid.Reservation}] = true
	}
	for host, br := range replies {
		if b := br.bid; b != nil && !used[key{host, b.Reservation}] {
			r.revert(ctx, host, b.Reservation)
		}
	}
}

// revert asks a provider to release a reservation (and remove what was
// committed of it), without waiting: a lost revert is repaired by the
// reservation's expiry.
func (r *run) revert(ctx context.Context, host, reservation string) {
	h, err := actor.NodeHandle(host)
	if err != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.CommitTimeout)
		defer cancel()
		if err := r.actor.Invoke(ctx, h, BehaviorRevert, RevertRequest{Deployment: r.d.ID, Reservation: reservation}, nil); err != nil {
			r.s.log.Debug("revert", "deployment_id", r.d.ID, "reservation", reservation, "err", err)
		}
	}()
}

func (r *run) revertPlacement(ctx context.Context, p map[string]Placement) {
	for _, pl := range p {
		r.revert(ctx, pl.Provider.Host, pl.Reservation)
	}
}

// commitAll commits every node of the placement in parallel. When one
// refuses or fails, it returns why (the caller reverts them all).
func (r *run) commitAll(ctx context.Context, placement map[string]Placement) (map[string]*Allocation, []CandidateReason) {
	_, hostOf := nodesOf(r.spec)
	byNode := map[string][]AllocationSpec{}
	for _, name := range allocNames(r.spec) {
		a := r.spec.Allocations[name]
		byNode[hostOf[name]] = append(byNode[hostOf[name]], AllocationSpec{
			Name: name, Type: a.Type, Executor: a.Executor, Resources: resourcesOf(a.Resources),
			Execution: a.Execution, Ports: a.Ports, Volumes: a.Volumes, Healthcheck: a.Healthcheck,
			Restart: a.Restart, Timeout: r.spec.Timeouts.Execution,
		})
	}
	type result struct {
		node  string
		reply CommitReply
		err   error
	}
	results := make(chan result, len(placement))
	for node, pl := range placement {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
			defer cancel()
			h, err := actor.NodeHandle(pl.Provider.Host)
			var reply CommitReply
			if err == nil {
				err = r.actor.Invoke(ctx, h, BehaviorCommit, CommitRequest{
					Deployment: r.d.ID, Node: node, Reservation: pl.Reservation, Orchestrator: r.actor.Handle(),
					Allocations: byNode[node], Metadata: r.spec.Metadata,
				}, &reply)
			}
			results <- result{node, reply, err}
		}()
	}
	allocs := map[string]*Allocation{}
	var refused []CandidateReason
	for range placement {
		res := <-results
		pl := placement[res.node]
		if res.err == nil && len(res.reply.Allocations) != len(byNode[res.node]) {
			res.err = fmt.Errorf("committed %d allocations of %d", len(res.reply.Allocations), len(byNode[res.node]))
		}
		if res.err != nil {
			r.s.log.Warn("commit refused", "deployment_id", r.d.ID, "node", res.node, "provider", pl.Provider.Host, "err", res.err)
			refused = append(refused, CandidateReason{Peer: pl.Provider.Host, Node: res.node, Kind: "refused", Reasons: []string{"commit: " + res.err.Error()}})
			r.excluded[pl.Provider.Host] = r.s.cfg.Now().Add(time.Minute)
			continue
		}
		for _, spec := range byNode[res.node] {
			allocs[spec.Name] = &Allocation{Name: spec.Name, Node: res.node, Handle: res.reply.Allocations[spec.Name], State: AllocPending}
		}
	}
	if refused != nil {
		return nil, refused
	}
	return allocs, nil
}

// provision starts the allocations level by level (depends_on order,
// parallel within a level); a level starts when every allocation of the
// previous one is ready: a service running (healthy when it has a
// healthcheck), a task completed.
func (r *run) provision(ctx context.Context) {
	levels, err := r.spec.Levels()
	if err != nil {
		r.fail(ctx, err.Error(), nil)
		return
	}
	for i, level := range levels {
		if err := r.startLevel(ctx, level); err != nil {
			r.fail(ctx, err.Error(), nil)
			return
		}
		if i == len(levels)-1 {
			break
		}
		for {
			if ctx.Err() != nil || r.shutdownRequested() {
				return
			}
			ready, failed := r.levelReady(level)
			if failed != "" {
				r.fail(ctx, failed, r.exitOf(failed))
				return
			}
			if ready {
				break
			}
			r.checkLost()
			r.waitChange(ctx, time.Second)
		}
	}
	r.setState(Running, "all allocations started")
}

func (r *run) startLevel(ctx context.Context, level []string) error {
	type res struct {
		name string
		err  error
	}
	results := make(chan res, len(level))
	started := 0
	for _, name := range level {
		a := r.snapshot().Allocations[name]
		if a == nil || a.Started {
			continue
		}
		started++
		go func() { results <- res{name, r.startOne(ctx, a)} }()
	}
	var errs []error
	for range started {
		rr := <-results
		if rr.err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", rr.name, rr.err))
			continue
		}
		r.update(true, func(d *Deployment) {
			if a := d.Allocations[rr.name]; a != nil {
				a.Started = true
				if a.State == AllocPending {
					a.State = AllocStarting
				}
				a.LastSeen = r.s.cfg.Now()
			}
		})
	}
	return errors.Join(errs...)
}

// startOne delegates to the allocation actor and starts it.
func (r *run) startOne(ctx context.Context, a *Allocation) error {
	chain, err := r.delegateTo(a.Handle.DID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
	defer cancel()
	return r.actor.Invoke(ctx, a.Handle, BehaviorStart, StartRequest{Chain: chain}, nil)
}

// delegateTo gives an allocation actor CmdDeployment from the
// orchestrator's own chain, so that it can report here.
func (r *run) delegateTo(aud identity.DID) (string, error) {
	for _, c := range r.chains {
		if !cap.Covers(c.Leaf().Command(), CmdDeployment) {
			continue
		}
		nc, err := cap.Redelegate(r.key, c, cap.DelegationParams{Audience: aud, Command: CmdDeployment, Expiry: c.Leaf().Expiry()}, r.s.cfg.Now())
		if err != nil {
			return "", err
		}
		return nc.Encode()
	}
	return "", fmt.Errorf("the orchestrator holds no %s delegation", CmdDeployment)
}

// levelReady reports whether every allocation of a level is ready, or the
// name of one that failed.
func (r *run) levelReady(level []string) (bool, string) {
	d := r.snapshot()
	ready := true
	for _, name := range level {
		a := d.Allocations[name]
		spec := r.spec.Allocations[name]
		switch {
		case a == nil:
			return false, name
		case a.State == AllocFailed || a.State == AllocLost || a.State == AllocStopped:
			return false, name
		case spec.Type == ensemble.Task && a.State == AllocCompleted:
		case spec.Type == ensemble.Service && spec.Healthcheck == nil && (a.State == AllocRunning || a.State == AllocHealthy):
		case spec.Type == ensemble.Service && a.State == AllocHealthy:
		default:
			ready = false
		}
	}
	return ready, ""
}

// exitOf returns the exit code of an allocation that ended.
func (r *run) exitOf(name string) *int {
	d := r.snapshot()
	if a := d.Allocations[name]; a != nil && a.Result != nil && a.Result.Reason == executor.ReasonExited {
		c := a.Result.ExitCode
		return &c
	}
	return nil
}

// supervise watches a running deployment: reports, lost allocations, the
// total timeout, and the end.
func (r *run) supervise(ctx context.Context) {
	for ctx.Err() == nil {
		if r.shutdownRequested() {
			return
		}
		if d := r.snapshot(); !d.EndDeadline.IsZero() && r.s.cfg.Now().After(d.EndDeadline) {
			r.fail(ctx, "the total timeout passed", nil)
			return
		}
		r.checkLost()
		d := r.snapshot()
		allDone := true
		for _, name := range allocNames(r.spec) {
			a := d.Allocations[name]
			if a == nil {
				continue
			}
			if a.State == AllocFailed || a.State == AllocLost {
				msg := fmt.Sprintf("allocation %s %s", name, a.State)
				if a.Message != "" {
					msg += ": " + a.Message
				}
				r.fail(ctx, msg, r.exitOf(name))
				return
			}
			if !a.State.Terminal() {
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
		r.waitChange(ctx, time.Second)
	}
}

// checkLost marks started allocations silent for longer than LostAfter.
func (r *run) checkLost() {
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
			a.State = AllocLost
			a.Message = fmt.Sprintf("no heartbeat from %s for %s", shortPeer(a.Handle.Host), r.s.cfg.LostAfter)
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
			if err := r.actor.Invoke(ctx, a.Handle, BehaviorStop, StopRequest{Grace: 10 * time.Second}, nil); err != nil {
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
				a.State = AllocStopped
			}
		}
	})
	r.s.log.Info("deployment ended", "deployment_id", d.ID, "state", end, "message", msg)
}

// onReport handles an allocation's report.
func (r *run) onReport(ctx context.Context, m *actor.Message) (any, error) {
	var rep Report
	if err := m.Decode(&rep); err != nil {
		return nil, err
	}
	r.mu.Lock()
	a := r.d.Allocations[rep.Allocation]
	r.mu.Unlock()
	if a == nil || a.Handle.DID != m.From.DID {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("%s is not allocation %s of deployment %s", m.From.DID.Short(), rep.Allocation, r.d.ID)}
	}
	if ended := r.state().Terminal() || a.State == AllocLost; ended && !rep.State.Terminal() {
		// It runs for a deployment that ended (or that gave it up as
		// lost): stop it, so it frees its provider's resources.
		r.stopLingering(a.Name, a.Handle)
		return nil, nil
	}
	now := r.s.cfg.Now()
	changed := rep.Seq > a.Seq && (rep.State != a.State || rep.Restarts != a.Restarts || rep.Result != nil && a.Result == nil)
	r.update(changed, func(d *Deployment) {
		a := d.Allocations[rep.Allocation]
		a.LastSeen = now
		if rep.Seq <= a.Seq || a.State == AllocLost && !rep.State.Terminal() {
			return
		}
		a.Seq, a.State, a.Restarts, a.Message = rep.Seq, rep.State, rep.Restarts, rep.Message
		if rep.Result != nil {
			a.Result = rep.Result
		}
		if rep.Ports != nil {
			a.Ports = rep.Ports
		}
	})
	return nil, nil
}

// onArtifact serves a chunk of an artifact shipped with the deployment.
func (r *run) onArtifact(ctx context.Context, m *actor.Message) (any, error) {
	var req ArtifactRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	d := r.snapshot()
	known := false
	for _, a := range d.Artifacts {
		known = known || a == req.Digest
	}
	if !known || req.Deployment != d.ID {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("deployment %s has no artifact %s", d.ID, req.Digest)}
	}
	data, size, err := r.s.cfg.Store.Artifact(req.Digest, req.Offset, ArtifactChunkSize)
	if err != nil {
		return nil, err
	}
	return ArtifactChunk{Data: data, Size: size}, nil
}

// logs streams allocation logs.
func (r *run) logs(ctx context.Context, only string, follow bool, emit func(string, LogEntry)) error {
	d := r.snapshot()
	var names []string
	for _, name := range allocNames(r.specOf(d)) {
		if only == "" || only == name {
			names = append(names, name)
		}
	}
	if only != "" && len(names) == 0 {
		return fmt.Errorf("deployment %s has no allocation %s: %w", d.ID, only, ErrNotFound)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.logsOf(ctx, name, follow, func(e LogEntry) {
				mu.Lock()
				emit(name, e)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) specOf(d *Deployment) *ensemble.Spec {
	if r.spec != nil {
		return r.spec
	}
	spec, err := ensemble.Parse(d.Spec)
	if err != nil {
		return &ensemble.Spec{}
	}
	return spec
}

func (r *run) logsOf(ctx context.Context, name string, follow bool, emit func(LogEntry)) error {
	var offset int64
	for ctx.Err() == nil {
		d := r.snapshot()
		a := d.Allocations[name]
		if a == nil || a.Handle.IsZero() {
			if !follow || d.State.Terminal() {
				return nil
			}
			r.waitChange(ctx, time.Second)
			continue
		}
		wait := time.Duration(0)
		if follow {
			wait = 5 * time.Second
		}
		var chunk LogsChunk
		cctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
		err := r.actor.Invoke(cctx, a.Handle, BehaviorLogs, LogsRequest{Offset: offset, Wait: wait}, &chunk)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of %s: %w", name, err)
		}
		for _, e := range chunk.Entries {
			emit(e)
		}
		offset = chunk.Next
		if chunk.EOF || !follow && len(chunk.Entries) == 0 {
			return nil
		}
	}
	return nil
}

// summarize shortens candidate reasons for a message.
func summarize(cs []CandidateReason) string {
	if len(cs) == 0 {
		return "no provider answered"
	}
	kinds := map[string]int{}
	for _, c := range cs {
		kinds[c.Kind]++
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return joinNames(parts)
}

// edges returns the ensemble's rtt constraints. Bandwidth constraints are
// not measured yet: they are not enforced.
func (r *run) edges() []edge {
	var out []edge
	for _, e := range r.spec.Edges {
		if e.RTT > 0 && len(e.Between) == 2 {
			out = append(out, edge{a: e.Between[0], b: e.Between[1], rtt: e.RTT})
		}
	}
	return out
}

func otherEnd(e edge, node string) string {
	if e.a == node {
		return e.b
	}
	return e.a
}

// checkSignatures verifies the bids of a plan; a provider whose signature
// fails is excluded like one that refused a commit.
func (r *run) checkSignatures(plan map[string]candidate) []CandidateReason {
	var bad []CandidateReason
	for node, c := range plan {
		if c.Signed != nil && c.Signed.Verify(r.d.ID, c.Provider.Host) {
			continue
		}
		bad = append(bad, CandidateReason{Peer: c.Provider.Host, Node: node, Kind: "invalid", Reasons: []string{"bid signature does not verify"}})
		r.excluded[c.Provider.Host] = r.s.cfg.Now().Add(time.Minute)
	}
	return bad
}

func (r *run) revertPlacementOf(ctx context.Context, plan map[string]candidate) {
	for _, c := range plan {
		r.revert(ctx, c.Provider.Host, c.Bid.Reservation)
	}
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
		if err := r.actor.Invoke(ctx, h, BehaviorStop, StopRequest{Grace: 10 * time.Second}, nil); err != nil {
			r.s.log.Warn("stop lingering allocation", "deployment_id", r.d.ID, "allocation", name, "err", err)
		}
	}()
}
