package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// revertUnused releases the reservations of bids the plan does not use.
// When many providers of a broadcast round bid for nothing, one broadcast
// (deployproto.ReleaseRequest) releases theirs instead of a revert to
// each: a 10,000-provider round sent 9,999 reverts and waited for as many
// answers.
func (r *run) revertUnused(ctx context.Context, replies map[string]placement.Answer, plan map[string]placement.Candidate) {
	// Reservation IDs name a round and a node, the same on every provider.
	type key struct{ host, reservation string }
	used := map[key]bool{}
	for _, c := range plan {
		used[key{c.Provider.Host, c.Bid.Reservation}] = true
	}
	self := r.s.cfg.Node.Handle().Host
	unused := map[string][]string{} // reservation → hosts other than this node
	for host, br := range replies {
		if b := br.Opened; b != nil && !used[key{host, b.Reservation}] {
			if host == self { // a broadcast does not reach this node
				r.revert(ctx, host, b.Reservation)
				continue
			}
			unused[b.Reservation] = append(unused[b.Reservation], host)
		}
	}
	for reservation, hosts := range unused {
		if !r.releaseAll(ctx, reservation, hosts, plan) {
			for _, host := range hosts {
				r.revert(ctx, host, reservation)
			}
		}
	}
}

// releaseBroadcastMin is the fewest unused bids of one reservation that
// revertUnused releases by broadcast, when they are also at least a
// quarter of the peers (a broadcast reaches every one).
const releaseBroadcastMin = 16

// releaseAll releases reservation at hosts with one broadcast, keeping it
// at the providers the plan uses, and reports whether it was sent. Like a
// revert, it is not waited for: a provider that misses it keeps the
// reservation until it expires.
func (r *run) releaseAll(ctx context.Context, reservation string, hosts []string, plan map[string]placement.Candidate) bool {
	if len(hosts) < releaseBroadcastMin || 4*len(hosts) < len(r.s.cfg.Peers()) {
		return false
	}
	req := deployproto.ReleaseRequest{Deployment: r.d.ID, Reservation: reservation}
	for _, c := range plan {
		if c.Bid.Reservation == reservation && !slices.Contains(req.Keep, c.Provider.Host) {
			req.Keep = append(req.Keep, c.Provider.Host)
		}
	}
	if len(req.Keep) > deployproto.MaxNodes {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.CommitTimeout)
	defer cancel()
	if err := r.actor.Publish(ctx, deployproto.TopicDeployments, deployproto.BehaviorRelease, deployproto.MarshalReleaseRequest(&req)); err != nil {
		r.s.log.Debug("release", "deployment_id", r.d.ID, "reservation_id", reservation, "err", err)
		return false
	}
	for _, host := range hosts {
		r.abandon(host, reservation, "placement reverted") // contracts.go
	}
	return true
}

// revert asks a provider to release a reservation (and remove what was
// committed of it), without waiting: a lost revert is repaired by the
// reservation's expiry.
func (r *run) revert(ctx context.Context, host, reservation string) {
	r.abandon(host, reservation, "placement reverted") // contracts.go
	h, err := actor.NodeHandle(host)
	if err != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.CommitTimeout)
		defer cancel()
		if err := r.actor.Invoke(ctx, h, deployproto.BehaviorRevert, deployproto.RevertRequest{Deployment: r.d.ID, Reservation: reservation}, nil); err != nil {
			r.s.log.Debug("revert", "deployment_id", r.d.ID, "reservation_id", reservation, "err", err)
		}
	}()
}

func (r *run) revertPlacement(ctx context.Context, p map[string]Placement) {
	for _, pl := range p {
		r.revert(ctx, pl.Provider.Host, pl.Reservation)
	}
}

// commitAll commits every node of the placement in parallel, at the
// fencing epoch given, with the allocations keep selects (nil: all), each
// at its next placement attempt and with the secrets its volumes name
// sealed to its provider (secrets.go). When one refuses or fails, it
// returns why (the caller reverts them all).
func (r *run) commitAll(ctx context.Context, placed map[string]Placement, epoch uint64, keep func(name string) bool) (map[string]*Allocation, []placement.Reason) {
	hostOf := r.layout().hostOf
	d := r.view()
	byNode := map[string][]deployproto.AllocationSpec{}
	for _, name := range r.layout().allocs {
		if keep != nil && !keep(name) {
			continue
		}
		a := r.spec.Allocations[name]
		attempt := 1
		if old := d.Allocations[name]; old != nil {
			attempt = max(old.Attempt, 1) + 1
		}
		byNode[hostOf[name]] = append(byNode[hostOf[name]], deployproto.AllocationSpec{
			Name: name, Type: a.Type, Executor: a.Executor, Resources: a.Resources.Match(),
			Execution: a.Execution, Ports: a.Ports, Volumes: a.Volumes, Healthcheck: a.Healthcheck,
			Restart: a.Restart, Timeout: r.spec.Timeouts.Execution, Attempt: attempt,
			Subnet:   subnetOf(d, name), // subnet.go
			ShipLogs: a.Logs.Ship,
		})
	}
	type result struct {
		node     string
		reply    deployproto.CommitReply
		err      error
		ours     bool   // the failure is this orchestrator's, not the provider's
		contract string // the contract's ID ("": none)
	}
	results := make(chan result, len(placed))
	for node, pl := range placed {
		go func() {
			ctx, span := r.startSpan(ctx, SpanCommit, attribute.String("node", node), attribute.String("provider", pl.Provider.Host),
				attribute.String("epoch", strconv.FormatUint(epoch, 10)), attribute.Int("allocations", len(byNode[node])))
			var err error
			defer func() { endSpan(span, err) }() // trace.go
			secrets, err := r.secretsFor(pl.Provider.Host, byNode[node])
			if err != nil {
				results <- result{node: node, err: err, ours: true}
				return
			}
			ct, noteChain, err := r.propose(node, pl, byNode[node]) // contracts.go
			if err != nil {
				results <- result{node: node, err: fmt.Errorf("contract: %w", err), ours: true}
				return
			}
			var ctID string
			if ct != nil {
				ctID = ct.ID
			}
			ctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
			defer cancel()
			h, err := actor.NodeHandle(pl.Provider.Host)
			var reply deployproto.CommitReply
			if err == nil {
				err = r.actor.Invoke(ctx, h, deployproto.BehaviorCommit, deployproto.CommitRequest{
					Deployment: r.d.ID, Node: node, Reservation: pl.Reservation, Orchestrator: r.actor.Handle(),
					Allocations: byNode[node], Metadata: r.spec.Metadata,
					Epoch: epoch, StopAfter: r.stopAfter(), // lease.go: longer with standbys
					Secrets: secrets, Contract: ct, NoteChain: noteChain,
				}, &reply)
			}
			if err == nil && ct != nil {
				// The provider's signature completes the contract; a bad
				// one fails the commit like a refusal.
				if aerr := r.s.cfg.Contracts.Agree(ct.ID, reply.ProviderSig); aerr != nil {
					err = fmt.Errorf("contract %s: %w", ct.ID, aerr)
				}
			}
			results <- result{node: node, reply: reply, err: err, contract: ctID}
		}()
	}
	allocs := map[string]*Allocation{}
	var refused []placement.Reason
	for range placed {
		res := <-results
		pl := placed[res.node]
		if res.err == nil && len(res.reply.Allocations) != len(byNode[res.node]) {
			res.err = fmt.Errorf("committed %d allocations of %d", len(res.reply.Allocations), len(byNode[res.node]))
		}
		if res.ours {
			r.s.log.Warn("commit not sent", "deployment_id", r.d.ID, "node", res.node, "err", res.err)
			refused = append(refused, placement.Reason{Peer: pl.Provider.Host, Node: res.node, Kind: deployproto.KindRefused, Reasons: []string{"commit not sent: " + res.err.Error()}})
			continue
		}
		if res.err != nil {
			r.s.log.Warn("commit refused", "deployment_id", r.d.ID, "node", res.node, "peer_id", pl.Provider.Host, "err", res.err)
			refused = append(refused, placement.Reason{Peer: pl.Provider.Host, Node: res.node, Kind: deployproto.KindRefused, Reasons: []string{"commit: " + res.err.Error()}})
			r.excluded[pl.Provider.Host] = r.s.cfg.Now().Add(time.Minute)
			continue
		}
		for _, spec := range byNode[res.node] {
			allocs[spec.Name] = &Allocation{Name: spec.Name, Node: res.node, Handle: res.reply.Allocations[spec.Name], State: deployproto.AllocPending, Attempt: spec.Attempt, Epoch: epoch, Contract: res.contract}
		}
	}
	if refused != nil {
		return nil, refused
	}
	return allocs, nil
}

// revertPlanOf releases the reservations of a plan not committed.
func (r *run) revertPlanOf(ctx context.Context, plan map[string]placement.Candidate) {
	for _, c := range plan {
		r.revert(ctx, c.Provider.Host, c.Bid.Reservation)
	}
}
