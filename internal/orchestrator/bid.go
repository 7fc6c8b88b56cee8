package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// place runs bid rounds until the ensemble is placed and committed, the
// queue timeout passes, or a shutdown is requested.
func (r *run) place(ctx context.Context) {
	backoff := r.s.cfg.BidWindow
	// The first round asks the providers the offer cache shortlists, when
	// it can; every later round broadcasts.
	first := true
	hint := ""         // how to get an executor no provider offers, as of the last round
	var asked []string // the shortlist of a round whose reservations may still be held
	defer func() { r.s.offers.release(asked) }()
	for ctx.Err() == nil {
		if r.shutdownRequested() {
			return
		}
		d := r.view()
		if now := r.s.cfg.Now(); now.After(d.QueueDeadline) {
			r.update(true, func(d *Deployment) {
				d.State, d.Reason = Failed, ReasonNoPlacement
				d.Message = "no placement before the queue timeout: " + placement.Summarize(d.Candidates) + hint
			})
			return
		}
		if err := r.allSecretsReady(); err != nil { // secrets.go: a standby that took over without them
			r.update(true, func(d *Deployment) {
				d.State, d.Reason, d.Message = Failed, ReasonSecretUnavailable, "cannot place the deployment: "+err.Error()
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
		now := r.s.cfg.Now()
		reqs := placement.Requests(r.spec, now)
		round := r.view().Round
		var short []string
		r.s.offers.release(asked) // the last round's reservations are settled
		asked = nil
		if first {
			short = r.s.offers.shortlist(reqs, now)
			asked = short
		}
		first = false
		rd := r.collectBids(ctx, reqs, round, short)
		rd.Excluded, rd.Now = r.excluded, r.s.cfg.Now()
		r.learnOffers(rd)
		cands, reasons := placement.Rate(rd)
		nodes := r.layout().nodes
		edges := placement.Edges(r.spec)
		plan, missing := placement.Place(nodes, cands, edges)
		r.revertUnused(ctx, rd.Replies, plan)
		if plan == nil && short != nil {
			continue // the shortlist did not do: ask everyone
		}
		if plan == nil {
			reasons = placement.Explain(missing, cands, edges, reasons)
			msg := fmt.Sprintf("no placement for %s (%d providers answered): waiting for providers", joinNames(missing), len(rd.Answered))
			if hint = placement.ExecutorHint(rd); hint != "" {
				hint = "; " + hint
			}
			msg += hint
			r.update(true, func(d *Deployment) { d.State = Queued; d.Candidates = reasons; d.Message = msg })
			r.waitChange(ctx, backoff)
			backoff = min(backoff*2, r.s.cfg.RetryMax)
			continue
		}
		// Bids arrived over authenticated links from the providers they
		// name; the winners' are checked here (dry runs, signatures).
		if bad := placement.VerifyBids(r.d.ID, plan); bad != nil {
			for _, b := range bad {
				r.excluded[b.Peer] = r.s.cfg.Now().Add(time.Minute)
			}
			r.revertPlanOf(ctx, plan)
			r.update(true, func(d *Deployment) { d.Candidates = append(d.Candidates, bad...) })
			continue
		}
		placed := map[string]Placement{}
		var epoch uint64
		r.update(true, func(d *Deployment) {
			d.Epoch++
			epoch = d.Epoch
			for node, c := range plan {
				placed[node] = Placement{Provider: c.Provider, Reservation: c.Bid.Reservation, Score: c.Rating.Value, Cost: c.Rating.Cost.String(), Epoch: epoch, Price: c.Bid.Offer.Price}
			}
			d.State, d.Placement, d.Candidates = Committing, placed, reasons
			d.Message = "committing"
		})
		allocs, refused := r.commitAll(ctx, placed, epoch, nil)
		if refused == nil {
			// Every node committed: the routing table before any start
			// (subnet.go); a provider that refuses it fails the placement
			// as a refused commit would.
			if refused = r.pushSubnet(ctx, placed); refused != nil {
				for _, x := range refused {
					r.excluded[x.Peer] = r.s.cfg.Now().Add(time.Minute)
				}
			}
		}
		if refused != nil {
			r.revertPlacement(ctx, placed)
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
			for _, node := range sortedKeys(placed) {
				pl := placed[node]
				d.addEvent(r.s.cfg.Now(), Event{Kind: EventPlaced, Node: node, To: pl.Provider.Host, Epoch: epoch,
					Message: fmt.Sprintf("placed node %s on %s", node, identity.ShortPeerID(pl.Provider.Host))})
			}
		})
		r.s.stats.placements.Add(uint64(len(placed)))
		return
	}
}

// collectBids broadcasts a bid request (and sends it to pinned peers and
// to this node) and collects the replies during the bid window, or until
// every connected peer answered. With a shortlist it sends the request to
// those providers only, and waits for them.
func (r *run) collectBids(ctx context.Context, reqs []deployproto.NodeRequest, round int, shortlist []string) (rd placement.Round) {
	ctx, span := r.startSpan(ctx, SpanBidRound, attribute.Int("round", round), attribute.Int("nodes", len(reqs)), attribute.Bool("shortlist", shortlist != nil))
	defer func() { // trace.go
		bids, noBids := 0, 0
		for _, a := range rd.Replies {
			if a.Opened != nil {
				bids++
			} else {
				noBids++
			}
		}
		span.SetAttributes(attribute.Int("providers.asked", len(rd.Asked)), attribute.Int("providers.answered", len(rd.Answered)),
			attribute.Int("bids", bids), attribute.Int("no_bids", noBids))
		span.End()
	}()
	req := deployproto.BidRequest{Deployment: r.d.ID, Orchestrator: r.actor.Handle(), Round: round, Nodes: reqs}
	// Encoded once, in the binary form, for every provider asked: each
	// decodes it, and answers in binary too (deployproto/wire.go).
	payload := deployproto.MarshalBidRequest(&req)
	behavior := deployproto.BehaviorRequest
	if r.dryRun {
		behavior = deployproto.BehaviorPlan
	} else {
		r.s.stats.rounds.Add(1)
		if shortlist == nil {
			r.s.stats.broadcasts.Add(1)
		}
	}
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
	replies := map[string]placement.Answer{}
	answered := map[string]bool{}
	waiting := len(expect) // hosts expected that did not answer yet; guarded by mu
	done := make(chan struct{})
	var closeOnce sync.Once
	expectAlso := func(host string) {
		mu.Lock()
		defer mu.Unlock()
		if !expect[host] {
			expect[host] = true
			if !answered[host] {
				waiting++
			}
		}
	}
	collect := func(rep *actor.Reply) {
		// Decoded before the lock: replies arrive on many goroutines.
		host := rep.From.Host
		var a placement.Answer
		ok := false
		if rep.Err == nil {
			if br, err := deployproto.UnmarshalBidReply(rep.Payload); err == nil && br.Provider.Host == host {
				a, ok = placement.Open(br), true
			}
		} else {
			a, ok = placement.Refused(rep.From, rep.Err), true
		}
		mu.Lock()
		defer mu.Unlock()
		if answered[host] {
			return
		}
		answered[host] = true
		if ok {
			replies[host] = a
		}
		if expect[host] {
			waiting--
		}
		if waiting == 0 {
			closeOnce.Do(func() { close(done) })
		}
	}
	targets := []actor.Handle{self}
	if shortlist == nil {
		if err := r.actor.Broadcast(ctx, deployproto.TopicDeployments, behavior, payload, collect); err != nil {
			r.s.log.Warn("bid request not published", "deployment_id", r.d.ID, "err", err)
		}
	} else {
		for _, host := range shortlist {
			if host == self.Host {
				continue
			}
			if h, err := actor.NodeHandle(host); err == nil {
				targets = append(targets, h)
				expectAlso(host)
			}
		}
	}
	for _, nr := range reqs {
		if nr.Peer != "" && nr.Peer != self.Host {
			if h, err := actor.NodeHandle(nr.Peer); err == nil {
				targets = append(targets, h)
				expectAlso(nr.Peer)
			}
		}
	}
	for _, h := range targets {
		go func() {
			rep, err := r.actor.InvokeRaw(ctx, h, behavior, payload)
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
	rd = placement.Round{Requests: reqs, Replies: maps.Clone(replies), Answered: maps.Clone(answered)}
	if shortlist != nil {
		rd.Asked = append([]string{self.Host}, shortlist...)
	} else { // the node's peers only when they were asked: a list of every connected peer
		rd.Asked = append([]string{self.Host}, r.s.cfg.Peers()...)
	}
	return rd
}

// learnOffers keeps what the providers of a round offered in the offer
// cache, and forgets those that did not answer.
func (r *run) learnOffers(rd placement.Round) {
	seen := make(map[string]match.Offer, len(rd.Replies))
	for host, a := range rd.Replies {
		if a.Offer == nil {
			continue
		}
		if _, err := identity.DIDFromPeerID(host); err == nil {
			r.s.offers.put(host, *a.Offer, rd.Now)
			seen[host] = *a.Offer
		}
	}
	r.s.known.putAll(seen, rd.Now)
	for _, p := range rd.NotAnswered() {
		r.s.offers.drop(p)
	}
}
