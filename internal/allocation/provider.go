package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/storage"
)

// ProviderLedger is the provider's resource accounting as bidding and
// committing use it (resource.Ledger).
type ProviderLedger interface {
	Ledger
	Reserve(id string, want match.Resources, ttl time.Duration) (resource.Reservation, error)
	CommitPart(id string, want match.Resources) (resource.Allocation, error)
	Offer() match.Offer
	Onboarded() (resource.Onboarding, bool)
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	Node           *actor.Actor  // the node's root actor
	Key            *identity.Key // the node key: signs bids
	Ledger         ProviderLedger
	Allocations    *Manager // creates and reverts the allocations of commits
	ReservationTTL time.Duration
	// ReservationsPerPeer bounds the live (uncommitted, unexpired)
	// reservations one peer holds here; default DefaultReservationsPerPeer.
	ReservationsPerPeer int
	// ReservedSharePerPeer bounds what a peer's live reservations hold
	// together, as a share (0, 1] of the onboarded resources, in every
	// dimension; a peer with no other live reservation may reserve beyond
	// it (one large job must still find a provider). Default
	// DefaultReservedSharePerPeer.
	ReservedSharePerPeer float64
	// Now is the clock reservations expire by; default time.Now.
	Now func() time.Time
	// Latencies returns the measured round trips to connected peers (nil:
	// none known).
	Latencies func() map[string]time.Duration
	// NoSubnet says why this node runs no subnets ("" when it does): a
	// request that needs deployproto.FeatureSubnet gets it as the reason
	// of its NoBid.
	NoSubnet string
	// Contracts signs the contracts of commits (*notary.Notary); nil: a
	// commit's contract is refused. Wallet keeps the delegations of the
	// note behavior commits bring (CommitRequest.NoteChain), so that the
	// node's notes to the requester carry them; nil: they are not kept.
	Contracts Contracts
	Wallet    Wallet
	Logger    *slog.Logger
}

// Contracts is the provider's side of contracts (the node adapts
// notary.Notary.Sign): it checks a commit's contract against what was
// bid, signs it, starts noting it and returns the provider's signature.
type Contracts interface {
	Sign(c *contract.Contract, want Expect) ([]byte, error)
}

// Expect is what a provider agreed to for a commit's contract: the
// deployment and reservation, the requester (the commit sender's node)
// and Terms, the further check of the terms (the price bid, the
// resources committed, the node and its allocations).
type Expect struct {
	Deployment  string
	Reservation string
	Requester   identity.DID
	Terms       func(t *contract.Terms) error
}

// ErrNoContract is why a provider with a price refuses a commit that
// brings no contract.
var ErrNoContract = errors.New("no contract")

// Provider is a node's side of the deployment protocol (package
// deployproto): it bids for the nodes of deployments it can host, and
// commits and reverts them, creating the allocation actors of a commit
// with the Manager.
type Provider struct {
	cfg ProviderConfig
	log *slog.Logger

	// mu is held from the bound check of a bid request to recording its
	// reservation, so that one peer's concurrent requests cannot pass the
	// check together.
	mu   sync.Mutex
	live map[string]hold // guarded by mu: live reservations made here, by ID

	stats providerStats // stats.go
}

// hold is the provider's note of one live reservation: who asked for it
// and what it holds until when. It is dropped when the reservation is
// committed, reverted or expires.
type hold struct {
	owner     identity.DID // the orchestrator actor that asked: only it may commit or revert
	peer      string       // its host, whose reservations are bounded together
	resources match.Resources
	expires   time.Time
	price     match.Price // the price of the bid: the commit's contract must carry it
}

// Defaults of the per-peer reservation bounds.
const (
	DefaultReservationsPerPeer  = 8
	DefaultReservedSharePerPeer = 0.5
)

// NewProvider returns a provider; Register puts it on the network.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = 30 * time.Second
	}
	if cfg.ReservationsPerPeer <= 0 {
		cfg.ReservationsPerPeer = DefaultReservationsPerPeer
	}
	if cfg.ReservedSharePerPeer <= 0 || cfg.ReservedSharePerPeer > 1 {
		cfg.ReservedSharePerPeer = DefaultReservedSharePerPeer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, log: cfg.Logger.With("component", "provider"), live: map[string]hold{}}
}

// Register adds the provider's behaviors to the node actor and subscribes
// it to bid requests.
func (p *Provider) Register() error {
	n := p.cfg.Node
	n.AddBehavior(deployproto.BehaviorRequest, p.request)
	n.AddBehavior(deployproto.BehaviorPlan, p.plan)
	n.AddBehavior(deployproto.BehaviorCommit, p.commit)
	n.AddBehavior(deployproto.BehaviorRevert, p.revert)
	n.AddBehavior(deployproto.BehaviorRelease, p.release)
	n.AddBehavior(deployproto.BehaviorResults, p.results)
	return n.Subscribe(deployproto.TopicDeployments)
}

func (p *Provider) request(ctx context.Context, m *actor.Message) (any, error) {
	reply, binary, err := p.answer(m, false)
	if err != nil {
		return nil, err
	}
	p.stats.count(reply)
	return encodeReply(reply, binary), nil
}

// encodeReply answers in the form the request came in: the binary form
// (deployproto.MarshalBidReply) to a binary request, else the reply for
// the runtime to encode as JSON.
func encodeReply(reply deployproto.BidReply, binary bool) any {
	if binary {
		return deployproto.MarshalBidReply(&reply)
	}
	return reply
}

// plan answers a dry-run bid request (deployproto.BehaviorPlan) as request
// would, but reserves nothing and signs nothing: the bid it returns has no
// reservation and cannot be committed.
func (p *Provider) plan(ctx context.Context, m *actor.Message) (any, error) {
	reply, binary, err := p.answer(m, true)
	if err != nil {
		return nil, err
	}
	return encodeReply(reply, binary), nil
}

// answer answers a bid request; with dryRun it reserves nothing and
// returns an unsigned bid marked DryRun. binary says the request came in
// the binary form (deployproto.MarshalBidRequest): the bid's body is
// binary too, and the reply is to be.
func (p *Provider) answer(m *actor.Message, dryRun bool) (reply deployproto.BidReply, binary bool, err error) {
	binary = deployproto.IsBinary(m.Payload)
	req, err := deployproto.UnmarshalBidRequest(m.Payload)
	if err != nil {
		return reply, binary, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("payload of %s: %v", m.Behavior, err)}
	}
	if err := deployproto.CheckName("deployment", req.Deployment); err != nil {
		return reply, binary, err
	}
	if len(req.Nodes) == 0 || len(req.Nodes) > deployproto.MaxNodes {
		return reply, binary, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%d nodes in a bid request", len(req.Nodes))}
	}
	self := p.cfg.Node.Handle()
	current := p.cfg.Ledger.Offer()
	reply = deployproto.BidReply{Provider: self, Offer: &current}
	if _, ok := p.cfg.Ledger.Onboarded(); !ok {
		for _, nr := range req.Nodes {
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindOnboarding, Reasons: []string{"no resources onboarded"}})
		}
		return reply, binary, nil
	}
	var fit []deployproto.NodeRequest
	for _, nr := range req.Nodes {
		if err := deployproto.CheckName("node", nr.Name); err != nil {
			return reply, binary, err
		}
		if nr.Peer != "" && nr.Peer != self.Host && nr.Peer != string(self.DID) {
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindPinned, Reasons: []string{"pinned to another peer"}})
			continue
		}
		if missing := p.missingCredentials(nr.Credentials); len(missing) > 0 {
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindStorage,
				Reasons: []string{fmt.Sprintf("no operator credentials named %s (storage.credentials)", strings.Join(missing, ", "))}})
			continue
		}
		if err := nr.Request.Validate(); err != nil {
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindInvalid, Reasons: []string{err.Error()}})
			continue
		}
		if p.cfg.NoSubnet != "" && slices.Contains(nr.Request.Executors, deployproto.FeatureSubnet) {
			reply.NoBids = append(reply.NoBids, deployproto.NoBid{Node: nr.Name, Kind: deployproto.KindExecutor,
				Reasons: []string{"no subnet here: " + p.cfg.NoSubnet}})
			continue
		}
		if r := match.Score(current, nr.Request); !r.Eligible {
			reply.NoBids = append(reply.NoBids, deployproto.NoFit(nr.Name, r.Reasons))
			continue
		}
		fit = append(fit, nr)
	}
	if len(fit) > 0 && dryRun {
		bid := &deployproto.Bid{Offer: current, Latencies: p.latencies(), DryRun: true}
		for _, nr := range fit {
			bid.Nodes = append(bid.Nodes, nr.Name)
		}
		var body []byte
		if binary {
			body = deployproto.MarshalBid(bid)
		} else if body, err = json.Marshal(bid); err != nil {
			return deployproto.BidReply{}, binary, err
		}
		reply.Bid = &deployproto.SignedBid{Body: body} // no signature: no commit can use it
		p.log.Debug("plan request", "deployment_id", req.Deployment, "bid", true, "no_bids", len(reply.NoBids))
		return reply, binary, nil
	}
	if len(fit) > 0 {
		// One reservation, large enough for any one of the nodes.
		id := deployproto.ReservationID(req.Deployment, req.Round)
		want, fit := coverOne(fit)
		res, err := p.reserve(m.From, id, want, current.Price)
		if err != nil {
			for _, nr := range fit {
				reply.NoBids = append(reply.NoBids, noBid(nr.Name, err))
			}
			p.log.Debug("bid request refused", "deployment_id", req.Deployment, "peer_id", m.From.Host, "err", err)
			return reply, binary, nil
		}
		offer := current
		offer.Free = res.Resources // what the reservation holds
		bid := &deployproto.Bid{Reservation: id, Expires: res.Expires, Offer: offer, Latencies: p.latencies()}
		for _, nr := range fit {
			bid.Nodes = append(bid.Nodes, nr.Name)
		}
		if binary {
			// Not signed: the reply travels on the authenticated link to
			// the orchestrator that asked, and the commit is checked
			// against this provider's own record of the reservation
			// (checkReservation, bidPrice), not against the bid
			// (docs/security.md, "Bids").
			reply.Bid = &deployproto.SignedBid{Body: deployproto.MarshalBid(bid)}
		} else {
			signed, err := deployproto.SignBid(p.cfg.Key, req.Deployment, self.Host, bid)
			if err != nil {
				return deployproto.BidReply{}, binary, err
			}
			reply.Bid = signed
		}
	}
	p.log.Debug("bid request", "deployment_id", req.Deployment, "bid", reply.Bid != nil, "no_bids", len(reply.NoBids))
	return reply, binary, nil
}

// PeerLimitError is why a peer may not reserve more here: it holds Count
// live reservations already, or they would hold more than the share
// allowed of Dimension.
type PeerLimitError struct {
	Peer      string
	Count     int     // its live reservations here
	Max       int     // ProviderConfig.ReservationsPerPeer
	Dimension string  // set when the share is the limit: cpu, ram, disk, gpu or an extra kind
	Share     float64 // ProviderConfig.ReservedSharePerPeer
}

func (e *PeerLimitError) Error() string {
	if e.Dimension == "" {
		return fmt.Sprintf("the requesting peer holds %d live reservations here (at most %d)", e.Count, e.Max)
	}
	return fmt.Sprintf("the requesting peer's %d live reservations here would hold more than %g%% of the onboarded %s", e.Count+1, e.Share*100, e.Dimension)
}

// reserve reserves want as id for the actor from, within the bounds of
// its peer: a peer may hold ReservationsPerPeer live reservations, and
// beyond its first, only while together they hold at most
// ReservedSharePerPeer of the onboarded resources. It fails with a
// *PeerLimitError or the Ledger's error.
func (p *Provider) reserve(from actor.Handle, id string, want match.Resources, price match.Price) (resource.Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked()
	if h, ok := p.live[id]; ok && h.owner == from.DID {
		// The same round's request again (a pinned node's round sends
		// it by broadcast and directly): the same reservation.
		return resource.Reservation{ID: id, Resources: h.resources, Expires: h.expires}, nil
	}
	var count int
	var total match.Resources
	for _, h := range p.live {
		if h.peer != from.Host {
			continue
		}
		count++
		if sum, err := total.Add(h.resources); err == nil {
			total = sum
		}
	}
	if count > 0 {
		if count >= p.cfg.ReservationsPerPeer {
			return resource.Reservation{}, &PeerLimitError{Peer: from.Host, Count: count, Max: p.cfg.ReservationsPerPeer}
		}
		on, _ := p.cfg.Ledger.Onboarded()
		sum, err := total.Add(want)
		if err != nil {
			return resource.Reservation{}, fmt.Errorf("%w: %w", resource.ErrInvalid, err)
		}
		if dim := overShare(sum, on.Resources, p.cfg.ReservedSharePerPeer); dim != "" {
			return resource.Reservation{}, &PeerLimitError{Peer: from.Host, Count: count, Max: p.cfg.ReservationsPerPeer, Dimension: dim, Share: p.cfg.ReservedSharePerPeer}
		}
	}
	res, err := p.cfg.Ledger.Reserve(id, want, p.cfg.ReservationTTL)
	if err != nil {
		return res, err
	}
	p.live[id] = hold{owner: from.DID, peer: from.Host, resources: res.Resources, expires: res.Expires, price: price}
	return res, nil
}

// expireLocked forgets the reservations that have expired (the Ledger
// has dropped them).
func (p *Provider) expireLocked() {
	now := p.cfg.Now()
	for id, h := range p.live {
		if !now.Before(h.expires) {
			delete(p.live, id)
		}
	}
}

// forget drops the note of reservation id (committed or reverted).
func (p *Provider) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.live, id)
	p.expireLocked()
}

// overShare returns the first dimension in which held is more than share
// of onboarded, or "".
func overShare(held, onboarded match.Resources, share float64) string {
	over := func(h, o int64) bool { return float64(h) > share*float64(o) }
	switch {
	case over(int64(held.CPU), int64(onboarded.CPU)):
		return match.DimCPU
	case over(int64(held.RAM), int64(onboarded.RAM)):
		return match.DimRAM
	case over(int64(held.Disk), int64(onboarded.Disk)):
		return match.DimDisk
	case over(int64(len(held.GPUs)), int64(len(onboarded.GPUs))):
		return match.DimGPU
	}
	for _, k := range sortedKeys(held.Extra) {
		if over(held.Extra[k], onboarded.Extra[k]) {
			return k
		}
	}
	return ""
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
func noBid(node string, err error) deployproto.NoBid {
	var nf *match.NoFitError
	var pl *PeerLimitError
	switch {
	case errors.As(err, &pl):
		return deployproto.NoBid{Node: node, Kind: deployproto.KindPeerLimit, Reasons: []string{pl.Error()}}
	case errors.As(err, &nf) && len(nf.Reasons) > 0:
		return deployproto.NoFit(node, nf.Reasons)
	case errors.Is(err, resource.ErrNotOnboarded):
		return deployproto.NoBid{Node: node, Kind: deployproto.KindOnboarding, Reasons: []string{"no resources onboarded"}}
	case errors.Is(err, resource.ErrInvalid):
		return deployproto.NoBid{Node: node, Kind: deployproto.KindInvalid, Reasons: []string{err.Error()}}
	}
	return deployproto.NoBid{Node: node, Kind: deployproto.KindResource, Reasons: []string{err.Error()}}
}

// owner returns the orchestrator actor of a reservation: the one that
// asked for it while it is live, the one its allocations report to once
// committed.
func (p *Provider) owner(reservation string) (identity.DID, bool) {
	p.mu.Lock()
	h, ok := p.live[reservation]
	p.mu.Unlock()
	if ok {
		return h.owner, true
	}
	if p.cfg.Allocations == nil {
		return "", false
	}
	return p.cfg.Allocations.Orchestrator(reservation)
}

// checkReservation refuses a commit or revert of a reservation that is
// not of the deployment named, or that another orchestrator made.
func (p *Provider) checkReservation(m *actor.Message, deployment, reservation string) error {
	if !strings.HasPrefix(reservation, deployment+".") {
		return &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("reservation %s is not of deployment %s", reservation, deployment)}
	}
	if owner, ok := p.owner(reservation); ok && owner != m.From.DID {
		return &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("reservation %s was made for another orchestrator", reservation)}
	}
	return nil
}

func (p *Provider) commit(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.CommitRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := p.checkReservation(m, req.Deployment, req.Reservation); err != nil {
		return nil, err
	}
	if len(req.Allocations) == 0 {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: "no allocations to commit"}
	}
	if req.Orchestrator.DID != m.From.DID {
		// The allocations would report to, and be owned by, someone else.
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: "a commit must name its sender as the orchestrator"}
	}
	var want match.Resources
	for _, spec := range req.Allocations {
		if err := deployproto.CheckName("allocation", spec.Name); err != nil {
			return nil, err
		}
		sum, err := want.Add(spec.Resources)
		if err != nil {
			return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: err.Error()}
		}
		want = sum
	}
	price := p.bidPrice(req.Reservation)
	noteChain, err := p.checkContract(m, &req, price)
	if err != nil {
		return nil, err
	}
	if _, err := p.cfg.Ledger.CommitPart(req.Reservation, want); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	// No longer live: the allocations record the owner from here on.
	defer p.forget(req.Reservation)
	reply := deployproto.CommitReply{Allocations: map[string]actor.Handle{}}
	var contractID, noteText string
	if req.Contract != nil {
		contractID = req.Contract.ID
	}
	if noteChain != nil {
		noteText = strings.TrimSpace(req.NoteChain)
	}
	for _, spec := range req.Allocations {
		h, err := p.cfg.Allocations.Create(ctx, CreateRequest{
			ID: req.Reservation + "." + spec.Name, Reservation: req.Reservation, Deployment: req.Deployment,
			Orchestrator: req.Orchestrator, Spec: spec, Epoch: req.Epoch, StopAfter: req.StopAfter,
			Secrets: secretsOf(spec, req.Secrets), Contract: contractID, NoteChain: noteText,
		})
		if err != nil {
			// All or nothing on this provider too.
			if rerr := p.cfg.Allocations.Revert(ctx, req.Reservation); rerr != nil {
				p.log.Warn("revert after a failed commit", "reservation_id", req.Reservation, "err", rerr)
			}
			return nil, fmt.Errorf("create allocation %s: %w", spec.Name, err)
		}
		reply.Allocations[spec.Name] = h
	}
	if req.Contract != nil {
		// Signed once the allocations exist: the notary meters them from
		// here on.
		requester, _ := identity.DIDFromPeerID(m.From.Host)
		sig, err := p.cfg.Contracts.Sign(req.Contract, Expect{
			Deployment: req.Deployment, Reservation: req.Reservation, Requester: requester,
			Terms: func(t *contract.Terms) error { return checkTerms(t, req.Node, price, want, req.Allocations) },
		})
		if err != nil {
			if rerr := p.cfg.Allocations.Revert(ctx, req.Reservation); rerr != nil {
				p.log.Warn("revert after a refused contract", "reservation_id", req.Reservation, "err", rerr)
			}
			return nil, refusedContract(err)
		}
		reply.ProviderSig = sig
		if noteChain != nil && p.cfg.Wallet != nil {
			p.cfg.Wallet.Add(noteChain)
		}
	}
	p.log.Info("committed", "deployment_id", req.Deployment, "node", req.Node, "allocations", len(reply.Allocations), "contract", contractID)
	p.stats.won.Add(1)
	return reply, nil
}

// bidPrice is the price this provider bid for a reservation: the one in
// its hold, else (the hold expired or was made before a restart) its
// current price.
func (p *Provider) bidPrice(reservation string) match.Price {
	p.mu.Lock()
	h, ok := p.live[reservation]
	p.mu.Unlock()
	if ok {
		return h.price
	}
	return p.cfg.Ledger.Offer().Price
}

// checkContract checks what a commit brings for its contract, before
// anything is committed: a provider with a price needs a contract; one
// with a contract needs Contracts to sign it; its note chain, when given,
// must be well formed and held by this node. It returns the note chain.
func (p *Provider) checkContract(m *actor.Message, req *deployproto.CommitRequest, price match.Price) (cap.Chain, error) {
	if req.Contract == nil {
		if price != (match.Price{}) {
			return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("%v: this provider's price is %s; a commit must bring a contract (an orchestrator of this release proposes one)", ErrNoContract, price)}
		}
		return nil, nil
	}
	if p.cfg.Contracts == nil {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: "this provider signs no contracts"}
	}
	if len(req.Contract.Body) > contract.MaxEncoded {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("contract of %d bytes (at most %d)", len(req.Contract.Body), contract.MaxEncoded)}
	}
	text := strings.TrimSpace(req.NoteChain)
	if text == "" {
		return nil, nil
	}
	c, err := cap.DecodeChain([]byte(text))
	if err == nil {
		err = c.CheckLinks()
	}
	if err != nil {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: "note chain: " + err.Error()}
	}
	if self := p.cfg.Key.DID(); c.Holder() != self {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("note chain: held by %s, not by this node (%s)", c.Holder(), self)}
	}
	if !cap.Covers(c.Leaf().Command(), deployproto.BehaviorNote) {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("note chain: command %s does not cover %s", c.Leaf().Command(), deployproto.BehaviorNote)}
	}
	return c, nil
}

// checkTerms is the provider's check of a contract's terms against its
// bid and the commit: the node, the allocations, the price bid and the
// resources committed.
func checkTerms(t *contract.Terms, node string, price match.Price, reserved match.Resources, specs []deployproto.AllocationSpec) error {
	if t.Node != node {
		return fmt.Errorf("the contract is for node %s, the commit for %s", t.Node, node)
	}
	if t.Price != price {
		return fmt.Errorf("the contract's price %s is not the price bid (%s)", t.Price, price)
	}
	if !sameResources(t.Reserved, reserved) {
		return fmt.Errorf("the contract reserves %s, the commit %s", t.Reserved, reserved)
	}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	got := slices.Clone(t.Allocations)
	slices.Sort(got)
	if !slices.Equal(got, names) {
		return fmt.Errorf("the contract covers allocations %s, the commit %s", strings.Join(got, ", "), strings.Join(names, ", "))
	}
	return nil
}

// sameResources compares two resource vectors (GPUs and extras as sets).
func sameResources(a, b match.Resources) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// refusedContract is the commit's error when the notary refuses its
// contract: denied, with the notary's reason.
func refusedContract(err error) error {
	var ae *actor.Error
	if errors.As(err, &ae) {
		return err
	}
	return &actor.Error{Code: actor.CodeDenied, Msg: "contract refused: " + err.Error()}
}

func (p *Provider) revert(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.RevertRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := p.checkReservation(m, req.Deployment, req.Reservation); err != nil {
		return nil, err
	}
	if err := p.cfg.Allocations.Revert(ctx, req.Reservation); err != nil {
		return nil, err
	}
	if err := p.cfg.Ledger.Release(req.Reservation); err != nil && !errors.Is(err, resource.ErrNotFound) {
		return nil, err
	}
	p.forget(req.Reservation)
	return struct{}{}, nil
}

// release answers deployproto.BehaviorRelease, a broadcast: when this
// provider holds the round's reservation for the sender, uncommitted, and
// is not among those kept, it releases it as revert would. Every other
// case is no error — the broadcast reaches providers that did not bid —
// and nothing is answered (a broadcast's error would be sent back to the
// orchestrator from each provider).
func (p *Provider) release(ctx context.Context, m *actor.Message) (any, error) {
	req, err := deployproto.UnmarshalReleaseRequest(m.Payload)
	if err != nil {
		return nil, nil
	}
	if !strings.HasPrefix(req.Reservation, req.Deployment+".") || len(req.Keep) > deployproto.MaxNodes {
		return nil, nil
	}
	self := p.cfg.Node.Handle().Host
	if slices.Contains(req.Keep, self) {
		return nil, nil
	}
	p.mu.Lock()
	h, ok := p.live[req.Reservation]
	p.mu.Unlock()
	if !ok || h.owner != m.From.DID {
		return nil, nil // not held here, committed, or another orchestrator's
	}
	if err := p.cfg.Allocations.Revert(ctx, req.Reservation); err != nil {
		p.log.Debug("release", "reservation_id", req.Reservation, "err", err)
		return nil, nil
	}
	if err := p.cfg.Ledger.Release(req.Reservation); err != nil && !errors.Is(err, resource.ErrNotFound) {
		p.log.Debug("release", "reservation_id", req.Reservation, "err", err)
		return nil, nil
	}
	p.forget(req.Reservation)
	return nil, nil
}

// results answers deployproto.BehaviorResults (Manager.Results): the
// invoker must be the deployment's orchestrator or its user.
func (p *Provider) results(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.ResultsRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if p.cfg.Allocations == nil {
		return nil, errors.New("results: this node runs no allocations")
	}
	return p.cfg.Allocations.Results(ctx, m.From.DID, req)
}

// coverOne returns resources that cover any one of the nodes: the largest
// of each amount. GPUs do not add up that way: with GPUs, the provider bids
// for the first node that fits only.
func coverOne(nodes []deployproto.NodeRequest) (match.Resources, []deployproto.NodeRequest) {
	for _, nr := range nodes {
		if len(nr.Request.Resources.GPUs) > 0 {
			return nr.Request.Resources, []deployproto.NodeRequest{nr}
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

// missingCredentials returns the names of operator credentials this node
// does not have, of at most the first deployproto.MaxNodes asked.
func (p *Provider) missingCredentials(names []string) []string {
	var have map[string]storage.Credentials
	if p.cfg.Allocations != nil {
		have = p.cfg.Allocations.cfg.Credentials
	}
	var missing []string
	for _, n := range names[:min(len(names), deployproto.MaxNodes)] {
		if _, ok := have[n]; !ok {
			if len(n) > 64 {
				n = n[:64] + "…"
			}
			missing = append(missing, strconv.Quote(n))
		}
	}
	return missing
}
