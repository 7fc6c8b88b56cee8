package node

import (
	"context"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// planService implements apiserver.PlanService.
type planService struct{ n *Node }

func (s planService) Plan(ctx context.Context, req api.PlanRequest) (*api.Plan, error) {
	spec, chains, err := parseSubmission(req.Ensemble, req.Chains, "plan")
	if err != nil {
		return nil, err
	}
	// The owner must be trusted here for plans: the check a deployment
	// passes, for the narrower command.
	if err := s.n.verify.VerifyChain(time.Now(), chains[0], deployproto.BehaviorPlan, nil); err != nil {
		return nil, err
	}
	p, err := s.n.deploys.Plan(ctx, orchestrator.PlanRequest{Spec: spec, Chains: chains})
	if err != nil {
		return nil, &apiserver.BadRequest{Err: err}
	}
	out := &api.Plan{ID: p.ID, Unplaced: p.Unplaced, Stuck: p.Stuck, Asked: p.Asked, Answered: p.Answered,
		RoundMS: float64(p.Round.Microseconds()) / 1000}
	for _, pn := range p.Placement {
		out.Placement = append(out.Placement, api.DeploymentNode{Node: pn.Node, Provider: pn.Provider, Score: pn.Score, Cost: pn.Cost})
	}
	for _, c := range p.Reasons {
		out.Candidates = append(out.Candidates, api.DeploymentCandidate{Peer: c.Peer, Node: c.Node, Kind: c.Kind, Reasons: c.Reasons})
	}
	return out, nil
}

func (s planService) Providers(context.Context) []api.Provider {
	var out []api.Provider
	for _, k := range s.n.deploys.Providers() {
		p := api.Provider{Peer: k.Peer, Executors: k.Offer.Executors, Price: k.Offer.Price.String(), LastSeen: k.LastSeen}
		p.Free, _ = wire[api.Resources](k.Offer.Free)
		p.Location, _ = wire[api.Location](k.Offer.Location)
		out = append(out, p)
	}
	return out
}
