package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
)

// Ledger is the provider's resource accounting (resource.Manager).
type Ledger interface {
	Reserve(id string, want match.Resources, ttl time.Duration) (resource.Reservation, error)
	CommitPart(id string, want match.Resources) (resource.Allocation, error)
	Release(id string) error
	Offer() match.Offer
	Onboarded() (resource.Onboarding, bool)
}

// Allocator creates and removes allocation actors (allocation.Manager).
type Allocator interface {
	// Create makes the actor of one allocation of a committed reservation.
	Create(ctx context.Context, req CreateAllocation) (actor.Handle, error)
	// Revert stops and removes every allocation of a reservation and
	// releases its resources. Idempotent.
	Revert(ctx context.Context, reservation string) error
}

// CreateAllocation is what the provider asks the Allocator for.
type CreateAllocation struct {
	ID           string // unique on this provider: <reservation>.<name>
	Reservation  string
	Deployment   string
	Orchestrator actor.Handle
	Spec         AllocationSpec
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	Node           *actor.Actor  // the node's root actor
	Key            *identity.Key // the node key: signs bids
	Ledger         Ledger
	Allocator      Allocator
	ReservationTTL time.Duration
	// Latencies returns the measured round trips to connected peers (nil:
	// none known).
	Latencies func() map[string]time.Duration
	Logger    *slog.Logger
}

// Provider is a node's side of the deployment protocol: it bids for the
// nodes of deployments it can host, and commits and reverts them.
type Provider struct {
	cfg ProviderConfig
	log *slog.Logger

	mu     sync.Mutex
	owners map[string]identity.DID // reservation → the orchestrator that asked for it; guarded by mu
}

// NewProvider returns a provider; Register puts it on the network.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = 30 * time.Second
	}
	return &Provider{cfg: cfg, log: cfg.Logger.With("component", "provider"), owners: map[string]identity.DID{}}
}

// Register adds the provider's behaviors to the node actor and subscribes
// it to bid requests.
func (p *Provider) Register() error {
	n := p.cfg.Node
	n.AddBehavior(BehaviorRequest, p.request)
	n.AddBehavior(BehaviorCommit, p.commit)
	n.AddBehavior(BehaviorRevert, p.revert)
	return n.Subscribe(TopicDeployments)
}

// reservationID names a provider's reservation for one bid round: one
// reservation covers whichever node of the request it is given (a provider
// hosts at most one node of an ensemble).
func reservationID(deployment string, round int) string {
	return fmt.Sprintf("%s.%d", deployment, round)
}

func (p *Provider) request(ctx context.Context, m *actor.Message) (any, error) {
	var req BidRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := checkID("deployment", req.Deployment); err != nil {
		return nil, err
	}
	if len(req.Nodes) == 0 || len(req.Nodes) > 64 {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%d nodes in a bid request", len(req.Nodes))}
	}
	self := p.cfg.Node.Handle()
	current := p.cfg.Ledger.Offer()
	reply := BidReply{Provider: self, Offer: &current}
	if _, ok := p.cfg.Ledger.Onboarded(); !ok {
		for _, nr := range req.Nodes {
			reply.NoBids = append(reply.NoBids, NoBid{Node: nr.Name, Kind: "onboarding", Reasons: []string{"no resources onboarded"}})
		}
		return reply, nil
	}
	var fit []NodeRequest
	for _, nr := range req.Nodes {
		if err := checkID("node", nr.Name); err != nil {
			return nil, err
		}
		if nr.Peer != "" && nr.Peer != self.Host && nr.Peer != string(self.DID) {
			reply.NoBids = append(reply.NoBids, NoBid{Node: nr.Name, Kind: "pinned", Reasons: []string{"pinned to another peer"}})
			continue
		}
		if err := nr.Request.Validate(); err != nil {
			reply.NoBids = append(reply.NoBids, NoBid{Node: nr.Name, Kind: "invalid", Reasons: []string{err.Error()}})
			continue
		}
		if r := match.Score(current, nr.Request); !r.Eligible {
			reply.NoBids = append(reply.NoBids, noBid(nr.Name, &match.NoFitError{Reasons: r.Reasons}))
			continue
		}
		fit = append(fit, nr)
	}
	if len(fit) > 0 {
		// One reservation, large enough for any one of the nodes.
		id := reservationID(req.Deployment, req.Round)
		want, fit := coverOne(fit)
		res, err := p.cfg.Ledger.Reserve(id, want, p.cfg.ReservationTTL)
		if err != nil {
			for _, nr := range fit {
				reply.NoBids = append(reply.NoBids, noBid(nr.Name, err))
			}
			return reply, nil
		}
		p.mu.Lock()
		p.owners[id] = m.From.DID
		p.mu.Unlock()
		offer := current
		offer.Free = res.Resources // what the reservation holds
		bid := &Bid{Reservation: id, Expires: res.Expires, Offer: offer, Latencies: p.latencies()}
		for _, nr := range fit {
			bid.Nodes = append(bid.Nodes, nr.Name)
		}
		body, err := json.Marshal(bid)
		if err != nil {
			return nil, fmt.Errorf("encode bid: %w", err)
		}
		signed := &SignedBid{Body: body}
		signed.Signature = p.cfg.Key.Sign(signed.SignedBytes(req.Deployment, self.Host))
		reply.Bid = signed
	}
	p.log.Debug("bid request", "deployment", req.Deployment, "bid", reply.Bid != nil, "no_bids", len(reply.NoBids))
	return reply, nil
}

// latencies returns the provider's measured round trips, in ms.
func (p *Provider) latencies() map[string]float64 {
	if p.cfg.Latencies == nil {
		return nil
	}
	out := map[string]float64{}
	for peer, d := range p.cfg.Latencies() {
		if d > 0 {
			out[peer] = float64(d.Microseconds()) / 1000
		}
	}
	return out
}

// noBid explains a refusal to bid.
func noBid(node string, err error) NoBid {
	var nf *match.NoFitError
	switch {
	case errors.As(err, &nf) && len(nf.Reasons) > 0:
		nb := NoBid{Node: node, Kind: reasonKind(nf.Reasons[0].Dimension)}
		for _, r := range nf.Reasons {
			nb.Reasons = append(nb.Reasons, r.String())
		}
		return nb
	case errors.Is(err, resource.ErrNotOnboarded):
		return NoBid{Node: node, Kind: "onboarding", Reasons: []string{"no resources onboarded"}}
	case errors.Is(err, resource.ErrInvalid):
		return NoBid{Node: node, Kind: "invalid", Reasons: []string{err.Error()}}
	}
	return NoBid{Node: node, Kind: "resource", Reasons: []string{err.Error()}}
}

func (p *Provider) owner(reservation string) (identity.DID, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.owners[reservation]
	return d, ok
}

func (p *Provider) commit(ctx context.Context, m *actor.Message) (any, error) {
	var req CommitRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(req.Reservation, req.Deployment+".") {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("reservation %s is not of deployment %s", req.Reservation, req.Deployment)}
	}
	if owner, ok := p.owner(req.Reservation); ok && owner != m.From.DID {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("reservation %s was made for another orchestrator", req.Reservation)}
	}
	if len(req.Allocations) == 0 {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: "no allocations to commit"}
	}
	var want match.Resources
	for _, spec := range req.Allocations {
		sum, err := want.Add(spec.Resources)
		if err != nil {
			return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: err.Error()}
		}
		want = sum
	}
	if _, err := p.cfg.Ledger.CommitPart(req.Reservation, want); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	reply := CommitReply{Allocations: map[string]actor.Handle{}}
	for _, spec := range req.Allocations {
		if err := checkID("allocation", spec.Name); err != nil {
			p.cfg.Allocator.Revert(ctx, req.Reservation)
			return nil, err
		}
		h, err := p.cfg.Allocator.Create(ctx, CreateAllocation{
			ID: req.Reservation + "." + spec.Name, Reservation: req.Reservation, Deployment: req.Deployment,
			Orchestrator: req.Orchestrator, Spec: spec,
		})
		if err != nil {
			// All or nothing on this provider too.
			if rerr := p.cfg.Allocator.Revert(ctx, req.Reservation); rerr != nil {
				p.log.Warn("revert after a failed commit", "reservation", req.Reservation, "err", rerr)
			}
			return nil, fmt.Errorf("create allocation %s: %w", spec.Name, err)
		}
		reply.Allocations[spec.Name] = h
	}
	p.log.Info("committed", "deployment", req.Deployment, "node", req.Node, "allocations", len(reply.Allocations))
	return reply, nil
}

func (p *Provider) revert(ctx context.Context, m *actor.Message) (any, error) {
	var req RevertRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(req.Reservation, req.Deployment+".") {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("reservation %s is not of deployment %s", req.Reservation, req.Deployment)}
	}
	if owner, ok := p.owner(req.Reservation); ok && owner != m.From.DID {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("reservation %s was made for another orchestrator", req.Reservation)}
	}
	if err := p.cfg.Allocator.Revert(ctx, req.Reservation); err != nil {
		return nil, err
	}
	if err := p.cfg.Ledger.Release(req.Reservation); err != nil && !errors.Is(err, resource.ErrNotFound) {
		return nil, err
	}
	p.mu.Lock()
	delete(p.owners, req.Reservation)
	p.mu.Unlock()
	return struct{}{}, nil
}

// checkID refuses names that could not be a deployment, node or
// allocation name (they become parts of IDs, inboxes and labels).
func checkID(what, s string) error {
	if s == "" || len(s) > 63 {
		return &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%s name %q", what, s)}
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%s name %q: lower-case letters, digits and '-' only", what, s)}
		}
	}
	return nil
}

// coverOne returns resources that cover any one of the nodes: the largest
// of each amount. GPUs do not add up that way: with GPUs, the provider bids
// for the first node that fits only.
func coverOne(nodes []NodeRequest) (match.Resources, []NodeRequest) {
	for _, nr := range nodes {
		if len(nr.Request.Resources.GPUs) > 0 {
			return nr.Request.Resources, []NodeRequest{nr}
		}
	}
	var out match.Resources
	for _, nr := range nodes {
		r := nr.Request.Resources
		out.CPU = max(out.CPU, r.CPU)
		out.RAM = max(out.RAM, r.RAM)
		out.Disk = max(out.Disk, r.Disk)
		for k, v := range r.Extra {
			if out.Extra == nil {
				out.Extra = map[string]int64{}
			}
			out.Extra[k] = max(out.Extra[k], v)
		}
	}
	return out, nodes
}
