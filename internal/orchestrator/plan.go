package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// PlanRequest is an ensemble to place without deploying it (dms plan).
type PlanRequest struct {
	Spec *ensemble.Spec
	// Chains are the owner's delegations to this node; one must cover
	// deployproto.BehaviorPlan (a delegation of /dms/deployment does).
	Chains []cap.Chain
}

// PlanNode is where a plan places one node of the ensemble.
type PlanNode struct {
	Node     string
	Provider string // peer ID
	Score    float64
	Cost     string
}

// PlanResult is the outcome of one dry-run bid round: where each node
// would land, the nodes that cannot be placed, and why every provider
// that does not host a node does not.
type PlanResult struct {
	ID        string // the round's name, as providers logged it
	Placement []PlanNode
	Unplaced  []string // every node, when any cannot be placed: all or nothing
	Stuck     []string // the nodes the placement found no provider for
	Reasons   []placement.Reason
	Asked     int // providers asked, this node included
	Answered  int
	// Round is how long the bid round took: until every provider asked
	// had answered, or the bid window ended.
	Round time.Duration
}

// planTTL is how long the orchestrator actor of a plan may ask providers
// in the user's name, beyond the bid window.
const planTTL = time.Minute

// Plan runs one dry-run bid round for the ensemble and places it, as a
// deployment's first round would, but providers reserve nothing and sign
// nothing (deployproto.BehaviorPlan), and nothing is committed. Every
// provider the node is connected to is asked; the round feeds the offer
// cache and the known-providers table.
func (s *Service) Plan(ctx context.Context, req PlanRequest) (*PlanResult, error) {
	if err := deployable(req.Spec); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	chain, err := s.planChain(req.Chains, now)
	if err != nil {
		return nil, err
	}
	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	// The node delegates to a one-round actor the plan command only, for
	// a minute: it can ask for dry-run bids and nothing else.
	exp := now.Add(s.cfg.BidWindow + planTTL)
	if le := chain.Leaf().Expiry(); !le.IsZero() && le.Before(exp) {
		exp = le
	}
	oc, err := cap.Redelegate(s.cfg.Key, chain, cap.DelegationParams{Audience: key.DID(), Command: deployproto.BehaviorPlan, Expiry: exp}, now)
	if err != nil {
		return nil, fmt.Errorf("delegate to the plan actor: %w", err)
	}
	id := "p" + newID()[1:]
	a, err := s.cfg.System.Spawn(key, "plan/"+id, actor.SpawnOptions{Workers: 1})
	if err != nil {
		return nil, err
	}
	s.cfg.Wallet.Add(oc)
	defer func() {
		a.Stop()
		if w, ok := s.cfg.Wallet.(interface{ Remove(identity.DID) }); ok {
			w.Remove(key.DID())
		}
	}()
	r := newRun(s, &Deployment{ID: id, Orchestrator: a.Handle()}, a, req.Spec, key, []cap.Chain{oc})
	r.dryRun = true
	reqs := placement.Requests(req.Spec, now)
	began := time.Now() // the round's real duration, whatever clock the service keeps
	rd := r.collectBids(ctx, reqs, 1, nil)
	took := time.Since(began)
	rd.Now = s.cfg.Now()
	r.learnOffers(rd)
	cands, reasons := placement.Rate(rd)
	nodes, _ := placement.Nodes(req.Spec)
	edges := placement.Edges(req.Spec)
	plan, missing := placement.Place(nodes, cands, edges)
	res := &PlanResult{ID: id, Asked: len(slices.Compact(slices.Sorted(slices.Values(rd.Asked)))), Answered: len(rd.Answered), Round: took}
	if plan == nil {
		res.Unplaced, res.Stuck = slices.Clone(missing), missing
		res.Reasons = placement.Explain(missing, cands, edges, reasons)
		// The nodes Place did not report stuck have no placement either.
		for _, n := range nodes {
			if !slices.Contains(res.Unplaced, n) {
				res.Unplaced = append(res.Unplaced, n)
			}
		}
		slices.Sort(res.Unplaced)
		return res, nil
	}
	res.Reasons = append(reasons, passedOver(plan, cands)...)
	for _, n := range slices.Sorted(maps.Keys(plan)) {
		c := plan[n]
		res.Placement = append(res.Placement, PlanNode{Node: n, Provider: c.Provider.Host, Score: c.Rating.Value, Cost: c.Rating.Cost.String()})
	}
	s.log.Info("plan", "plan_id", id, "placed", len(res.Placement), "asked", res.Asked, "answered", res.Answered)
	return res, nil
}

// passedOver explains, for every node placed, why each other provider
// that could host it does not: it hosts another node of the ensemble, or
// another provider scored higher.
func passedOver(plan map[string]placement.Candidate, cands map[string][]placement.Candidate) []placement.Reason {
	hostOf := map[string]string{} // provider → node placed there
	for n, c := range plan {
		hostOf[c.Provider.Host] = n
	}
	var out []placement.Reason
	for _, n := range slices.Sorted(maps.Keys(plan)) {
		chosen := plan[n]
		for _, c := range cands[n] {
			h := c.Provider.Host
			switch {
			case h == chosen.Provider.Host:
			case hostOf[h] != "":
				out = append(out, placement.Reason{Peer: h, Node: n, Kind: deployproto.KindDistinct,
					Reasons: []string{fmt.Sprintf("fits, but hosts %s: nodes never share a provider", hostOf[h])}})
			default:
				why := fmt.Sprintf("fits (score %.2f), but %s scored %.2f", c.Rating.Value, identity.ShortPeerID(chosen.Provider.Host), chosen.Rating.Value)
				switch {
				case c.Rating.Value == chosen.Rating.Value:
					why = fmt.Sprintf("fits (score %.2f), as well as %s, which has the lower peer ID", c.Rating.Value, identity.ShortPeerID(chosen.Provider.Host))
				case c.Rating.Value > chosen.Rating.Value:
					why = fmt.Sprintf("fits (score %.2f), but %s (score %.2f) was chosen so that every node gets a provider", c.Rating.Value, identity.ShortPeerID(chosen.Provider.Host), chosen.Rating.Value)
				}
				out = append(out, placement.Reason{Peer: h, Node: n, Kind: deployproto.KindOutscored, Reasons: []string{why}})
			}
		}
	}
	return out
}

// planChain returns an unexpired chain held by this node that covers
// deployproto.BehaviorPlan.
func (s *Service) planChain(chains []cap.Chain, now time.Time) (cap.Chain, error) {
	for _, c := range chains {
		if len(c) == 0 || c.Holder() != s.cfg.Key.DID() {
			continue
		}
		leaf := c.Leaf()
		if exp := leaf.Expiry(); !exp.IsZero() && !now.Before(exp) {
			continue
		}
		if cap.Covers(leaf.Command(), deployproto.BehaviorPlan) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("the plan carries no delegation of %s to this node (dms plan makes one with the user key)", deployproto.BehaviorPlan)
}
