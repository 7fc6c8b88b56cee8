package orchestrator

// Standby orchestrators: a deployment that survives its orchestrating node.
//
// A deployment with supervision.orchestrators > 1 is orchestrated by the
// node it was submitted to (the primary) and replicated to standbys: the
// nodes its supervision.standbys names, then connected peers, each asked at
// Submit (one that cannot be reached or refuses fails the submission with
// its name). The design is a lease and epochs over the actor messages the
// deployment protocol already has; no consensus library:
//
//   - Replication. The primary's orchestrator actor sends its record
//     (deployproto.ReplicateRequest, without the sealed key) to the node
//     actor of every standby at each persisted change, at most every
//     replicateEvery, and every Lease/3 as a renewal. With it go the
//     primary node's delegations to the standby node: the user's chains to
//     the primary, redelegated by the node key, so that every chain still
//     roots at the owner and each link is signed by its holder. A standby
//     keeps the replica persisted (Role RoleStandby) and answers with the
//     highest epoch it knows and that epoch's orchestrator.
//   - Artifacts. A standby fetches the deployment's artifacts it lacks
//     from the primary's orchestrator actor in the background, at every
//     replicate while any is missing, and says in its answer how many it
//     lacks (standby_artifacts.go). A standby that lacks some still counts
//     toward the lease; a takeover without them all records which are
//     missing, and only a start or redeploy that needs one fails.
//   - Secrets. The user's secrets go with the record sealed to each
//     standby's key, and a takeover seals them again with the new node's
//     key (secrets.go).
//   - The lease. The primary makes supervision decisions (marking
//     allocations lost, redeploying: run.leaseHeld) only while a standby
//     acknowledged a replicate sent less than Lease ago (lease.go).
//   - Takeover. A standby that has heard nothing from its primary for
//     1.5 × Lease (plus rank × Lease/2, its rank in the primary's list of
//     standbys, so that two standbys do not race: the later one hears the
//     first one's replicate and stands down) takes over: epoch + 1, a new
//     orchestrator actor with a new key sealed by its node, the node's
//     chains redelegated to it, an EventTakeover, then an AdoptRequest to
//     every allocation that still runs, and the normal run loop. Its
//     standbys are the other orchestrators: the remaining standbys and the
//     old primary.
//   - Step-down. A primary that learns of a higher epoch (a replicate from a
//     newer primary, a ReplicateReply, or a stale-epoch refusal from an
//     allocation, which makes it ask its standbys at once) steps down: an
//     EventStepDown, its loop and actor stop, and it keeps the record as a
//     standby replica. A primary that restarts asks its standbys before it
//     supervises anything (rejoin). Two primaries of one epoch are settled
//     by the lower peer ID.
//
// A standby answers Get, List and Wait from its replica (status works
// against any node that holds the deployment), reads logs from the
// allocations with its node's chains, and forwards a shutdown to the
// primary (deployproto.BehaviorShutdown).
//
// Limits: the replica lags the primary by up to replicateEvery, so a
// placement made just before the primary died may be unknown to the
// standby (the commit's own fencing, stop_after, stops such a copy); the
// primary a takeover replaced is trusted not to take over back until it has
// acknowledged the new primary once (it was never the new primary's
// standby before), which a node restart of the new primary forgets.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

// The roles of a node in a deployment.
const (
	RolePrimary = "primary" // it orchestrates (also an empty Role)
	RoleStandby = "standby" // it keeps a replica and may take over
)

// replicateEvery is the shortest interval between two replicate rounds of
// one deployment: changes in between go out together.
const replicateEvery = 250 * time.Millisecond

// standbyProbeTimeout bounds the question to a standby at Submit.
const standbyProbeTimeout = 5 * time.Second

// IsStandby reports whether this node keeps d as a standby replica.
func (d *Deployment) IsStandby() bool { return d.Role == RoleStandby }

// standbyPeer returns the peer ID a supervision.standbys entry names (a
// peer ID or a did:key).
func standbyPeer(s string) (string, error) {
	if strings.HasPrefix(s, "did:") {
		return identity.DID(s).PeerID()
	}
	if _, err := identity.DIDFromPeerID(s); err != nil {
		return "", err
	}
	return s, nil
}

// withStandbys chooses the standby orchestrators of a new deployment d
// and asks each whether it would serve: the spec's explicit standbys (each
// must answer) and then connected peers, up to orchestrators-1. chains are
// the owner's delegations to this node. It sets d.Standbys and
// d.NodeChains.
func (s *Service) withStandbys(ctx context.Context, d *Deployment, spec *ensemble.Spec, chains []cap.Chain) error {
	want := spec.Supervision.Orchestrators - 1
	if want < len(spec.Supervision.Standbys) {
		want = len(spec.Supervision.Standbys)
	}
	if want <= 0 {
		return nil
	}
	// The node presents the owner's chains when it asks (and later when
	// it reads logs as a standby).
	for _, c := range chains {
		text, err := c.Encode()
		if err != nil {
			return err
		}
		d.NodeChains = append(d.NodeChains, text)
		s.cfg.Wallet.Add(c)
	}
	self := s.cfg.System.Self()
	var chosen []string
	for i, name := range spec.Supervision.Standbys {
		peer, err := standbyPeer(name)
		if err != nil {
			return fmt.Errorf("supervision.standbys[%d]: %q is not a peer: %w", i, name, err)
		}
		if peer == self {
			return fmt.Errorf("supervision.standbys[%d]: %s is this node, the primary orchestrator", i, identity.ShortPeerID(peer))
		}
		if slices.Contains(chosen, peer) {
			continue
		}
		if err := s.probeStandby(ctx, d.ID, peer); err != nil {
			return fmt.Errorf("supervision.standbys[%d]: standby orchestrator %s: %w", i, peer, err)
		}
		chosen = append(chosen, peer)
	}
	var tried []string
	for _, peer := range s.cfg.Peers() {
		if len(chosen) >= want {
			break
		}
		if peer == self || slices.Contains(chosen, peer) {
			continue
		}
		if err := s.probeStandby(ctx, d.ID, peer); err != nil {
			tried = append(tried, identity.ShortPeerID(peer)+": "+err.Error())
			continue
		}
		chosen = append(chosen, peer)
	}
	if len(chosen) < want {
		msg := fmt.Sprintf("supervision.orchestrators: %d wants %d standby orchestrators, found %d among the connected peers", spec.Supervision.Orchestrators, want, len(chosen))
		if len(tried) > 0 {
			msg += " (" + strings.Join(tried, "; ") + ")"
		}
		return errors.New(msg)
	}
	d.Standbys = chosen
	return nil
}

// probeStandby asks a peer whether it would be a standby of deployment id.
func (s *Service) probeStandby(ctx context.Context, id, peer string) error {
	h, err := actor.NodeHandle(peer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, standbyProbeTimeout)
	defer cancel()
	var rep deployproto.ReplicateReply
	return s.cfg.Node.Invoke(ctx, h, deployproto.BehaviorReplicate, deployproto.ReplicateRequest{ID: id, Probe: true}, &rep)
}

// higher reports whether epoch e1 of orchestrator p1 supersedes epoch e2
// of p2: a higher epoch, or the same one from a node with a lower peer ID
// (two standbys that took over at once).
func higher(e1 uint64, p1 actor.Handle, e2 uint64, p2 actor.Handle) bool {
	if e1 != e2 {
		return e1 > e2
	}
	if p1.DID == p2.DID {
		return false
	}
	return p1.Host < p2.Host || p1.Host == p2.Host && p1.DID < p2.DID
}

// onReplicate is the node actor's BehaviorReplicate: a primary replicates
// a deployment here, or asks (Probe) whether this node would be a standby.
func (s *Service) onReplicate(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.ReplicateRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: err.Error()}
	}
	if !s.resumed.Load() {
		// The primary retries at its next round.
		return nil, errors.New("the node is starting: its deployments are not loaded yet")
	}
	s.ha.Lock()
	defer s.ha.Unlock()
	s.mu.Lock()
	r := s.deps[req.ID]
	s.mu.Unlock()
	if req.Probe {
		if r != nil && !r.snapshot().IsStandby() {
			return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("this node orchestrates deployment %s", req.ID)}
		}
		return deployproto.ReplicateReply{}, nil
	}
	if m.From.DID != req.Primary.DID || m.From.Host != req.Primary.Host {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("a replicate comes from its primary, not %s", m.From)}
	}
	rec, err := s.decodeReplica(req)
	if err != nil {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: err.Error()}
	}
	accept := deployproto.ReplicateReply{Epoch: req.Epoch, Primary: req.Primary}
	if r == nil {
		if err := s.startStandby(rec, true); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.deps[req.ID].heardFrom(s.cfg.Now(), req.Lease)
		s.mu.Unlock()
		s.log.Info("standby of a deployment", "deployment_id", req.ID, "primary", identity.ShortPeerID(req.Primary.Host), "epoch", req.Epoch)
		accept.Missing = s.holdArtifacts(rec)
		return accept, nil
	}
	local := r.snapshot()
	if !higher(req.Epoch, req.Primary, local.Epoch, local.Orchestrator) && req.Primary.DID != local.Orchestrator.DID {
		// Stale: the sender must step down. When this node orchestrates,
		// it replicates to it at once, so that the sender's record (kept
		// as a standby's) shows the deployment as it is, also when it has
		// ended and no lease renewals go out any more.
		if !local.IsStandby() {
			r.replicateSoon()
		}
		return deployproto.ReplicateReply{Epoch: local.Epoch, Primary: local.Orchestrator}, nil
	}
	if local.IsStandby() {
		if req.Epoch < local.Epoch {
			return deployproto.ReplicateReply{Epoch: local.Epoch, Primary: local.Orchestrator}, nil
		}
		r.update(true, func(d *Deployment) {
			v := d.Version
			*d = *rec
			d.Version = v
		})
		r.heardFrom(s.cfg.Now(), req.Lease)
		accept.Missing = s.holdArtifacts(rec)
		return accept, nil
	}
	// This node orchestrates it, at a lower epoch: another took over.
	s.stepDownLocked(r, rec, fmt.Sprintf("stepped down: %s orchestrates at epoch %d (this node was at epoch %d)",
		identity.ShortPeerID(req.Primary.Host), req.Epoch, local.Epoch))
	return accept, nil
}

// decodeReplica reads the record of a replicate request as this node keeps
// it: a standby replica, with this node's chains.
func (s *Service) decodeReplica(req deployproto.ReplicateRequest) (*Deployment, error) {
	var d Deployment
	if err := json.Unmarshal(req.Deployment, &d); err != nil {
		return nil, fmt.Errorf("replicate: deployment record: %w", err)
	}
	switch {
	case d.ID != req.ID:
		return nil, fmt.Errorf("replicate: the record is of deployment %q, not %q", d.ID, req.ID)
	case !d.Owner.Valid():
		return nil, fmt.Errorf("replicate: deployment %s has no valid owner", d.ID)
	case d.Epoch != req.Epoch:
		return nil, fmt.Errorf("replicate: the record is at epoch %d, the request at %d", d.Epoch, req.Epoch)
	case !d.State.Valid():
		return nil, fmt.Errorf("replicate: deployment %s: unknown state %q", d.ID, d.State)
	}
	if _, err := ensemble.Parse(d.Spec); err != nil {
		return nil, fmt.Errorf("replicate: deployment %s: %w", d.ID, err)
	}
	for i, text := range req.Chains {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("replicate: chain %d: %w", i, err)
		}
		if err := c.CheckLinks(); err != nil {
			return nil, fmt.Errorf("replicate: chain %d: %w", i, err)
		}
		if c.Root() != d.Owner || c.Holder() != s.cfg.Key.DID() {
			return nil, fmt.Errorf("replicate: chain %d is not from the owner %s to this node", i, d.Owner.Short())
		}
	}
	d.Role, d.SealedKey, d.NodeChains, d.SealedSecrets = RoleStandby, nil, req.Chains, nil
	d.Orchestrator = req.Primary
	if d.Placement == nil {
		d.Placement = map[string]Placement{}
	}
	if d.Allocations == nil {
		d.Allocations = map[string]*Allocation{}
	}
	for name, a := range d.Allocations {
		if a == nil {
			return nil, fmt.Errorf("replicate: deployment %s: allocation %s is empty", d.ID, name)
		}
	}
	return &d, nil
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	switch s {
	case Queued, Bidding, Committing, Provisioning, Running, Completed, Failed, ShuttingDown, Stopped:
		return true
	}
	return false
}

// startStandby keeps d as a standby replica: answered from by Get, List and
// Wait, watched for its primary's silence. persist stores it first.
func (s *Service) startStandby(d *Deployment, persist bool) error {
	spec, err := ensemble.Parse(d.Spec)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	for _, text := range d.NodeChains {
		if c, err := cap.DecodeChain([]byte(text)); err == nil && c.Holder() == s.cfg.Key.DID() {
			s.cfg.Wallet.Add(c)
		}
	}
	if persist {
		if err := s.cfg.Store.PutDeployment(d.clone()); err != nil {
			return fmt.Errorf("persist deployment %s: %w", d.ID, err)
		}
	}
	// The node actor reads the allocations' logs for it.
	r := newRun(s, d, s.cfg.Node, spec, nil, nil)
	r.ha = newHAState(s.cfg.Now(), d.Standbys)
	s.mu.Lock()
	s.deps[d.ID] = r
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch(r)
	}()
	return nil
}

// watch waits for the primary's silence and takes over.
func (s *Service) watch(r *run) {
	self := s.cfg.System.Self()
	for s.ctx.Err() == nil && !r.resigned() {
		d := r.snapshot()
		if d.State.Terminal() {
			return // nothing to supervise; the record stays for status
		}
		heard, next, lease := r.lastHeard()
		var t *time.Timer
		var wait <-chan time.Time
		if rank := slices.Index(d.Standbys, self); rank >= 0 {
			// Listed by the primary: it may take over.
			after := lease*3/2 + time.Duration(rank)*lease/2
			silence := s.cfg.Now().Sub(heard)
			if silence >= after {
				s.takeover(r, silence)
				return
			}
			t = time.NewTimer(after - silence)
			wait = t.C
		}
		select {
		case <-next:
		case <-wait:
		case <-s.ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
	}
}

// takeover makes this node the primary of a standby replica whose primary
// has been silent for silence.
func (s *Service) takeover(r *run, silence time.Duration) {
	s.ha.Lock()
	defer s.ha.Unlock()
	s.mu.Lock()
	current := s.deps[r.d.ID] == r
	s.mu.Unlock()
	if heard, _, _ := r.lastHeard(); !current || s.cfg.Now().Sub(heard) < silence || r.resigned() {
		return // replaced, or heard from meanwhile
	}
	old := r.snapshot()
	if old.State.Terminal() {
		return
	}
	fail := func(err error) {
		s.log.Error("take over a deployment", "deployment_id", old.ID, "err", err)
	}
	spec, err := ensemble.Parse(old.Spec)
	if err != nil {
		fail(err)
		return
	}
	key, err := identity.NewKey()
	if err != nil {
		fail(err)
		return
	}
	now := s.cfg.Now()
	d := old.clone()
	d.Role = RolePrimary
	d.Epoch = old.Epoch + 1
	d.Orchestrator = actor.Handle{DID: key.DID(), Host: s.cfg.System.Self(), Inbox: "orch/" + old.ID}
	d.SealedKey = s.cfg.Sealer.SealKey(key)
	d.Chains = nil
	var ocs []cap.Chain
	for _, text := range old.NodeChains {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			fail(fmt.Errorf("chain: %w", err))
			return
		}
		leaf := c.Leaf()
		oc, err := cap.Redelegate(s.cfg.Key, c, cap.DelegationParams{Audience: key.DID(), Command: leaf.Command(), Expiry: leaf.Expiry()}, now)
		if err != nil {
			fail(fmt.Errorf("delegate to the orchestrator: %w", err))
			return
		}
		text, err := oc.Encode()
		if err != nil {
			fail(err)
			return
		}
		d.Chains = append(d.Chains, text)
		ocs = append(ocs, oc)
	}
	if len(ocs) == 0 {
		fail(errors.New("the primary gave this node no delegations"))
		return
	}
	// The other orchestrators stand by for this one, the old primary last.
	formerHost := old.Orchestrator.Host
	d.Standbys = nil
	for _, p := range old.Standbys {
		if p != s.cfg.System.Self() && p != formerHost {
			d.Standbys = append(d.Standbys, p)
		}
	}
	if formerHost != "" && formerHost != s.cfg.System.Self() {
		d.Standbys = append(d.Standbys, formerHost)
	}
	// The allocations report here once adopted: a whole lost_after for it.
	for _, a := range d.Allocations {
		if !a.State.Terminal() {
			a.LastSeen = now
		}
	}
	d.addEvent(now, Event{Kind: EventTakeover, From: formerHost, To: s.cfg.System.Self(), Epoch: d.Epoch,
		Message: fmt.Sprintf("took over from %s at epoch %d: no word for %s", identity.ShortPeerID(formerHost), d.Epoch, silence.Round(100*time.Millisecond))})
	if s.adoptSecrets(d, s.cfg.System.Self()) { // secrets.go
		msg := fmt.Sprintf("this node did not get the deployment's secrets from %s: placing or redeploying a node whose volumes need one will fail", identity.ShortPeerID(formerHost))
		d.addEvent(now, Event{Kind: EventTakeover, Epoch: d.Epoch, Message: msg})
		s.log.Warn("took over without the secrets", "deployment_id", d.ID)
	}
	if missing := s.missingArtifacts(d); len(missing) > 0 {
		// The takeover goes on: the allocations keep running; only a
		// start or redeploy that needs one of these will fail.
		msg := fmt.Sprintf("this node does not hold %d of the deployment's artifacts (%s): its copy from %s was not complete; starting or redeploying an allocation that needs one will fail",
			len(missing), strings.Join(missing, ", "), identity.ShortPeerID(formerHost))
		d.addEvent(now, Event{Kind: EventTakeover, Epoch: d.Epoch, Message: msg})
		s.log.Warn("took over without every artifact", "deployment_id", d.ID, "missing", missing)
	}
	r.resign()
	if err := s.cfg.Store.PutDeployment(d.clone()); err != nil {
		fail(fmt.Errorf("persist: %w", err))
		return
	}
	s.log.Warn("took over a deployment", "deployment_id", d.ID, "from", identity.ShortPeerID(formerHost), "epoch", d.Epoch, "silence", silence)
	nr, err := s.start(d, key, spec, ocs, nil)
	if err != nil {
		fail(err)
		return
	}
	nr.ha.mu.Lock()
	nr.ha.former = formerHost
	nr.ha.mu.Unlock()
	r.update(false, func(*Deployment) {}) // wake Wait callers: the next call finds nr
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		nr.adoptAll(s.ctx)
	}()
}

// adoptAll moves the allocations that still run to this orchestrator,
// retrying each for up to two lost_after periods.
func (r *run) adoptAll(ctx context.Context) {
	d := r.snapshot()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var adopted, failed []string
	for _, name := range sortedKeys(d.Allocations) {
		a := d.Allocations[name]
		if a.Handle.IsZero() || a.State.Terminal() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.adopt(ctx, d, a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, name+": "+err.Error())
				return
			}
			adopted = append(adopted, name)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil || r.resigned() {
		return
	}
	slices.Sort(adopted)
	slices.Sort(failed)
	msg := fmt.Sprintf("adopted %d allocations at epoch %d", len(adopted), d.Epoch)
	if len(adopted) > 0 {
		msg += ": " + joinNames(adopted)
	}
	if len(failed) > 0 {
		msg += "; not adopted: " + strings.Join(failed, "; ")
	}
	r.event(Event{Kind: EventTakeover, Epoch: d.Epoch, Message: msg})
}

func (r *run) adopt(ctx context.Context, d *Deployment, a *Allocation) error {
	chain, err := r.delegateTo(a.Handle.DID)
	if err != nil {
		return err
	}
	req := deployproto.AdoptRequest{Deployment: d.ID, Epoch: d.Epoch, Orchestrator: r.actor.Handle(), Chain: chain}
	deadline := r.s.cfg.Now().Add(2 * r.s.cfg.LostAfter)
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
		err = r.actor.Invoke(cctx, a.Handle, deployproto.BehaviorAdopt, req, nil)
		cancel()
		var ae *actor.Error
		switch {
		case err == nil:
			return nil
		case r.noteStale(err):
			return err
		case errors.As(err, &ae) && (ae.Code == actor.CodeUnknownBehavior || ae.Code == actor.CodeDenied || ae.Code == actor.CodeHandler):
			return err // it will not change its mind
		case ctx.Err() != nil || r.resigned() || r.s.cfg.Now().After(deadline):
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		backoff = min(2*backoff, 2*time.Second)
	}
}

// noteStale reports whether err is a refusal for a stale epoch; if so the
// run asks its standbys at once, which tell it whether it has been
// replaced (it then steps down).
func (r *run) noteStale(err error) bool {
	var ae *actor.Error
	if !errors.As(err, &ae) || ae.Code != deployproto.CodeStaleEpoch {
		return false
	}
	r.s.log.Warn("an allocation knows a higher epoch", "deployment_id", r.d.ID, "err", err)
	r.replicateSoon()
	return true
}

// stepDownLocked retires primary r in favour of a newer orchestrator: rec
// becomes the standby replica this node keeps. The caller holds s.ha.
func (s *Service) stepDownLocked(r *run, rec *Deployment, why string) {
	s.mu.Lock()
	current := s.deps[rec.ID] == r
	s.mu.Unlock()
	if !current || !r.resign() {
		return
	}
	go r.actor.Stop()      // its own workers may be the caller's
	s.pool.release(rec.ID) // subnet.go: the block is the new primary's to keep
	rec.Role, rec.SealedKey, rec.SealedSecrets = RoleStandby, nil, nil
	own := r.snapshot()
	if rec.NodeChains == nil {
		rec.NodeChains = own.NodeChains
	}
	rec.Version = max(rec.Version, own.Version) + 1 // versions only grow, for Wait callers
	rec.addEvent(s.cfg.Now(), Event{Kind: EventStepDown, From: s.cfg.System.Self(), To: rec.Orchestrator.Host, Epoch: rec.Epoch, Message: why})
	s.log.Warn("stepped down", "deployment_id", rec.ID, "reason", why)
	if err := s.startStandby(rec, true); err != nil {
		s.log.Error("keep a replica after stepping down", "deployment_id", rec.ID, "err", err)
	}
	r.update(false, func(*Deployment) {}) // wake Wait callers: the next call finds the replica
}

// stepDownTo retires primary r after a standby answered with a higher
// epoch: its own record, marked as a replica of that orchestrator, is kept
// until the new primary replicates here. It lists no standbys, so that it
// takes over nothing before then.
func (s *Service) stepDownTo(r *run, epoch uint64, primary actor.Handle, from string) {
	s.ha.Lock()
	defer s.ha.Unlock()
	rec := r.snapshot()
	old := rec.Epoch
	rec.Epoch, rec.Orchestrator, rec.Standbys = epoch, primary, nil
	s.stepDownLocked(r, rec, fmt.Sprintf("stepped down: %s knows epoch %d, orchestrated by %s (this node was at epoch %d)",
		identity.ShortPeerID(from), epoch, identity.ShortPeerID(primary.Host), old))
}

// chainsFor returns the node's delegations to a standby (token files),
// made once per run.
func (r *run) chainsFor(peer string, d *Deployment) ([]string, error) {
	r.ha.mu.Lock()
	texts, ok := r.ha.chains[peer]
	r.ha.mu.Unlock()
	if ok {
		return texts, nil
	}
	aud, err := identity.DIDFromPeerID(peer)
	if err != nil {
		return nil, err
	}
	for _, text := range d.NodeChains {
		c, err := cap.DecodeChain([]byte(text))
		if err != nil {
			return nil, err
		}
		leaf := c.Leaf()
		nc, err := cap.Redelegate(r.s.cfg.Key, c, cap.DelegationParams{Audience: aud, Command: leaf.Command(), Expiry: leaf.Expiry()}, r.s.cfg.Now())
		if err != nil {
			return nil, err
		}
		t, err := nc.Encode()
		if err != nil {
			return nil, err
		}
		texts = append(texts, t)
	}
	r.ha.mu.Lock()
	r.ha.chains[peer] = texts
	r.ha.mu.Unlock()
	return texts, nil
}

// replicateRound sends the record to every standby at once and waits for
// their answers. It reports false when the run stepped down.
func (r *run) replicateRound(ctx context.Context) bool {
	d := r.view()
	if len(d.Standbys) == 0 || r.resigned() {
		return !r.resigned()
	}
	rec := d.clone()
	rec.SealedKey, rec.Role, rec.NodeChains, rec.Version = nil, "", nil, 0
	// The secrets go sealed to each standby's key, never with this node's (secrets.go).
	rec.SealedSecrets, rec.StandbySecrets = nil, r.standbySecrets(d)
	data, err := json.Marshal(rec)
	if err != nil {
		r.s.log.Error("replicate", "deployment_id", d.ID, "err", err)
		return true
	}
	self := r.actor.Handle()
	sent := r.s.cfg.Now()
	timeout := min(max(r.s.cfg.Lease/3, time.Second), 5*time.Second)
	var wg sync.WaitGroup
	for _, peer := range d.Standbys {
		chains, err := r.chainsFor(peer, d)
		if err != nil {
			r.s.log.Warn("replicate: delegate to a standby", "deployment_id", d.ID, "peer_id", peer, "err", err)
			continue
		}
		h, err := actor.NodeHandle(peer)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var rep deployproto.ReplicateReply
			req := deployproto.ReplicateRequest{ID: d.ID, Deployment: data, Epoch: d.Epoch, Primary: self, Lease: r.s.cfg.Lease, Chains: chains}
			if err := r.actor.Invoke(cctx, h, deployproto.BehaviorReplicate, req, &rep); err != nil {
				r.s.log.Debug("replicate", "deployment_id", d.ID, "peer_id", peer, "err", err)
				return
			}
			if higher(rep.Epoch, rep.Primary, d.Epoch, self) {
				r.s.stepDownTo(r, rep.Epoch, rep.Primary, peer)
				return
			}
			r.standbyMissing(peer, rep.Missing)
			if r.acknowledged(peer, sent) {
				r.event(Event{Kind: EventStepDown, From: peer, Epoch: d.Epoch,
					Message: fmt.Sprintf("%s, the orchestrator this node took over from, is back and stands by at epoch %d", identity.ShortPeerID(peer), d.Epoch)})
			}
		}()
	}
	wg.Wait()
	return !r.resigned()
}

// rejoin runs before the loop of a primary with standbys: one replicate
// round, so that a primary back after a restart learns first whether it
// was replaced. It reports false when the run stepped down.
func (r *run) rejoin(ctx context.Context) bool {
	return r.replicateRound(ctx)
}

// replicate sends the record to the standbys after every persisted change
// (at most every replicateEvery) and, while the deployment has not ended,
// every Lease/3 as a renewal, until ctx ends or the run steps down.
func (r *run) replicate(ctx context.Context) {
	renew := r.s.cfg.Lease / 3
	t := time.NewTimer(renew)
	defer t.Stop()
	pause := time.NewTimer(replicateEvery) // one for every round: a round follows every persisted change
	pause.Stop()
	defer pause.Stop()
	for {
		var renewal <-chan time.Time
		if !r.state().Terminal() {
			renewal = t.C // an ended deployment needs no lease
		}
		select {
		case <-ctx.Done():
			return
		case <-r.ha.kick:
		case <-renewal:
		}
		if !r.replicateRound(ctx) {
			return
		}
		pause.Reset(replicateEvery)
		select {
		case <-pause.C:
		case <-ctx.Done():
		}
		pause.Stop()
		t.Reset(renew)
	}
}

// onShutdown is the orchestrator's BehaviorShutdown: a standby forwards
// the user's shutdown.
func (r *run) onShutdown(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.ShutdownRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	d := r.snapshot()
	if req.Deployment != d.ID {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("this orchestrator runs deployment %s, not %q", d.ID, req.Deployment)}
	}
	node, err := actor.NodeHandle(m.From.Host)
	if err != nil || m.From.DID != node.DID || !slices.Contains(d.Standbys, m.From.Host) {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("%s is not a standby orchestrator of deployment %s", m.From, d.ID)}
	}
	r.s.log.Info("shutdown forwarded by a standby", "deployment_id", d.ID, "peer_id", m.From.Host)
	r.requestShutdown()
	return struct{}{}, nil
}

// forwardShutdown asks the primary of a standby replica to shut it down.
func (s *Service) forwardShutdown(ctx context.Context, r *run) (*Deployment, error) {
	d := r.snapshot()
	cctx, cancel := context.WithTimeout(ctx, standbyProbeTimeout)
	defer cancel()
	err := s.cfg.Node.Invoke(cctx, d.Orchestrator, deployproto.BehaviorShutdown, deployproto.ShutdownRequest{Deployment: d.ID}, nil)
	if err != nil {
		return nil, fmt.Errorf("deployment %s is orchestrated by %s, which this node (a standby) could not ask to shut it down: %w; a standby takes over after %s without word from it",
			d.ID, d.Orchestrator.Host, err, s.cfg.Lease*3/2)
	}
	s.log.Info("shutdown forwarded to the primary", "deployment_id", d.ID, "peer_id", d.Orchestrator.Host)
	return d, nil
}
