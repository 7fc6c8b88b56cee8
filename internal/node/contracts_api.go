package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/notary"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// contractRecords is what the contract API reads of the notary.
type contractRecords interface {
	Get(id string) (notary.Record, error)
	List(deployment string) ([]notary.Record, error)
	Chain(id string) (*contract.Chain, error)
}

var _ contractRecords = (*notary.Notary)(nil)

// contractService serves the node's contracts to the REST API from its
// notary and its ledger: what dms contract, dms deployment usage and the
// ledger line of dms resources show.
type contractService struct {
	records contractRecords
	ledger  contract.Ledger
	self    identity.DID // this node's DID: whose balance the ledger shows
}

var _ apiserver.ContractService = contractService{}

// newContractService returns the API's contract service, nil (the
// endpoints answer 503) on a node without a notary.
func newContractService(no *notary.Notary, l contract.Ledger, self identity.DID) apiserver.ContractService {
	if no == nil {
		return nil
	}
	return contractService{records: no, ledger: l, self: self}
}

// minContractPrefix is the shortest contract ID prefix resolved.
const minContractPrefix = 4

func (s contractService) Contracts(_ context.Context, deployment string) ([]api.Contract, error) {
	rs, err := s.records.List(deployment)
	if err != nil {
		return nil, fmt.Errorf("list contracts: %w", err)
	}
	out := make([]api.Contract, 0, len(rs))
	for _, r := range rs {
		c, err := wireContract(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s contractService) Contract(_ context.Context, id string) (*api.ContractDetail, error) {
	r, err := s.find(id)
	if err != nil {
		return nil, err
	}
	c, err := wireContract(r)
	if err != nil {
		return nil, err
	}
	ch, err := s.records.Chain(r.Contract.ID)
	if err != nil {
		return nil, fmt.Errorf("chain of contract %s: %w", r.Contract.ID, err)
	}
	return &api.ContractDetail{Contract: c, Chain: wireChain(ch)}, nil
}

// find returns the record of a contract by ID, else by unique prefix.
func (s contractService) find(id string) (notary.Record, error) {
	r, err := s.records.Get(id)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return notary.Record{}, fmt.Errorf("contract %s: %w", id, err)
	}
	if len(id) < minContractPrefix {
		return notary.Record{}, &apiserver.NotFound{Err: fmt.Errorf("no contract %s (an ID prefix needs %d characters or more)", id, minContractPrefix)}
	}
	all, err := s.records.List("")
	if err != nil {
		return notary.Record{}, fmt.Errorf("list contracts: %w", err)
	}
	var found []notary.Record
	for _, r := range all {
		if r.Contract != nil && strings.HasPrefix(r.Contract.ID, id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return notary.Record{}, &apiserver.NotFound{Err: fmt.Errorf("no contract %s on this node (dms contract list shows them)", id)}
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.Contract.ID
	}
	slices.Sort(ids)
	return notary.Record{}, &apiserver.Ambiguous{Err: fmt.Errorf("contract prefix %s matches %d contracts", id, len(found)), Candidates: ids}
}

// Usage sums a deployment's contracts. On the node that orchestrates the
// deployment they are its requester contracts; a provider sees its own.
func (s contractService) Usage(_ context.Context, deployment string) (*api.DeploymentUsage, error) {
	rs, err := s.records.List(deployment)
	if err != nil {
		return nil, fmt.Errorf("contracts of %s: %w", deployment, err)
	}
	if slices.ContainsFunc(rs, func(r notary.Record) bool { return r.Role == notary.RoleRequester }) {
		rs = slices.DeleteFunc(rs, func(r notary.Record) bool { return r.Role != notary.RoleRequester })
	}
	u := &api.DeploymentUsage{Deployment: deployment, Contracts: []api.ContractUsed{}}
	var amount, owed, budget match.Money
	for _, r := range rs {
		c, err := wireContract(r)
		if err != nil {
			return nil, err
		}
		t, _ := termsOf(r.Contract) // wireContract decoded them
		last, acc := noteOf(r.Last), noteOf(r.Accepted)
		u.Contracts = append(u.Contracts, api.ContractUsed{
			Contract: c.ID, Node: c.Node, Provider: c.Provider, Allocations: c.Allocations,
			Usage: c.Usage, Amount: c.Amount, Owed: c.Owed, Notes: c.Notes, Final: c.Final,
			State: c.State, Reason: c.Reason,
		})
		if last != nil {
			u.Usage = addUsage(u.Usage, wireUsage(last.Usage))
			amount = addMoney(amount, last.Amount)
		}
		if acc != nil {
			owed = addMoney(owed, acc.Amount)
		}
		budget = max(budget, t.Budget)
	}
	u.Amount, u.Owed = api.Money(amount.String()), api.Money(owed.String())
	if budget > 0 {
		u.Budget = api.Money(budget.String())
	}
	return u, nil
}

func (s contractService) Ledger(ctx context.Context) (*api.LedgerBalance, error) {
	if s.ledger == nil {
		return nil, errors.New("this node keeps no ledger")
	}
	b, err := s.ledger.Balance(ctx, s.self)
	if err != nil {
		return nil, fmt.Errorf("ledger balance of %s: %w", s.self, err)
	}
	return &api.LedgerBalance{
		DID:      string(b.DID),
		Paid:     api.Money(b.Paid.String()),
		Received: api.Money(b.Received.String()),
		Escrowed: api.Money(b.Escrowed.String()),
	}, nil
}

// wireContract is a record as the API shows it.
func wireContract(r notary.Record) (api.Contract, error) {
	if r.Contract == nil {
		return api.Contract{}, errors.New("a contract record without its contract")
	}
	t, err := termsOf(r.Contract)
	if err != nil {
		return api.Contract{}, fmt.Errorf("contract %s: %w", r.Contract.ID, err)
	}
	c := api.Contract{
		ID: r.Contract.ID, Deployment: t.Deployment, Node: t.Node, Reservation: t.Reservation,
		Allocations: slices.Clone(t.Allocations),
		Role:        string(r.Role), State: string(r.State), Reason: r.Reason, Refusal: r.Refusal,
		Requester: string(t.Requester), User: string(t.User), Provider: string(t.Provider),
		Price:      wirePrice(t.Price),
		IntervalMS: t.Interval.Milliseconds(),
		Settlement: t.Settlement,
		Created:    t.Created, Updated: r.Updated,
		Amount: "0", Owed: "0",
	}
	if c.Allocations == nil {
		c.Allocations = []string{}
	}
	if t.Budget > 0 {
		c.Budget = api.Money(t.Budget.String())
	}
	if n := noteOf(r.Last); n != nil {
		c.Notes, c.Usage, c.Amount, c.Final = n.Seq, wireUsage(n.Usage), api.Money(n.Amount.String()), n.Final
	}
	if n := noteOf(r.Accepted); n != nil {
		c.Owed = api.Money(n.Amount.String())
	}
	return c, nil
}

// termsOf returns a contract's decoded terms, decoding them from the
// signed body when they are not yet.
func termsOf(c *contract.Contract) (*contract.Terms, error) {
	if t := c.Terms(); t != nil {
		return t, nil
	}
	var t contract.Terms
	if err := json.Unmarshal(c.Body, &t); err != nil {
		return nil, fmt.Errorf("terms do not decode: %w", err)
	}
	return &t, nil
}

// noteOf returns a note's decoded body, nil for no note or one that does
// not decode (the notary keeps only notes it checked).
func noteOf(sn *contract.SignedNote) *contract.Note {
	if sn == nil {
		return nil
	}
	if n := sn.Note(); n != nil {
		return n
	}
	var n contract.Note
	if json.Unmarshal(sn.Body, &n) != nil {
		return nil
	}
	return &n
}

func wirePrice(p match.Price) api.ContractPrice {
	m := func(v match.Money) api.Money {
		if v == 0 {
			return ""
		}
		return api.Money(v.String())
	}
	return api.ContractPrice{CPU: m(p.CPU), RAM: m(p.RAM), Disk: m(p.Disk), GPU: m(p.GPU)}
}

func wireUsage(u contract.Usage) api.ContractUsage {
	return api.ContractUsage{CPUMicros: u.CPUMicros, MemoryByteSeconds: u.MemoryByteSeconds, WallMillis: u.WallMillis, NetBytes: u.NetBytes}
}

// wireChain copies a chain with its bodies as signed.
func wireChain(ch *contract.Chain) api.ContractChain {
	out := api.ContractChain{Notes: make([]api.SignedNote, 0, len(ch.Notes))}
	if c := ch.Contract; c != nil {
		out.Contract = &api.SignedContract{ID: c.ID, Body: c.Body, RequesterSig: c.RequesterSig, ProviderSig: c.ProviderSig}
	}
	for _, n := range ch.Notes {
		out.Notes = append(out.Notes, api.SignedNote{Hash: n.Hash, Body: n.Body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig})
	}
	return out
}

// addUsage sums two usage vectors, saturating.
func addUsage(a, b api.ContractUsage) api.ContractUsage {
	add := func(x, y uint64) uint64 {
		if x+y < x {
			return ^uint64(0)
		}
		return x + y
	}
	return api.ContractUsage{
		CPUMicros:         add(a.CPUMicros, b.CPUMicros),
		MemoryByteSeconds: add(a.MemoryByteSeconds, b.MemoryByteSeconds),
		WallMillis:        add(a.WallMillis, b.WallMillis),
		NetBytes:          add(a.NetBytes, b.NetBytes),
	}
}

// addMoney sums two amounts, MaxMoney when the sum overflows.
func addMoney(a, b match.Money) match.Money {
	if a > match.MaxMoney-b {
		return match.MaxMoney
	}
	return a + b
}
