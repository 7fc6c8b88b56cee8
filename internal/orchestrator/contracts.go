package orchestrator

import (
	"fmt"

	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Contracts is the requester's side of contracts (package contract) as
// the orchestrator uses it; *notary.Notary implements it. Propose signs
// the terms of a placement as the requester, Agree completes a contract
// with the provider's signature from the commit reply, Abandon closes one
// whose placement was reverted or replaced, End is told that the
// deployment ended (its contracts wait two intervals more for their
// invoices, then close at their last countersigned notes).
type Contracts interface {
	Propose(t contract.Terms) (*contract.Contract, error)
	Agree(id string, providerSig []byte) error
	Abandon(id, reason string) error
	End(deployment, reason string) error
}

// ReasonBudgetExhausted is the typed reason of a deployment stopped
// because a provider's note would take it above its budget
// (ensemble contract.budget); its message is MessageBudgetExhausted.
const (
	ReasonBudgetExhausted  = "budget-exhausted"
	MessageBudgetExhausted = "budget exhausted"
)

// terms are the terms of the contract of one placed node: the provider's
// price from its bid, the resources of the allocations committed,
// the ensemble's budget and interval (the node's default interval when
// the ensemble sets none).
func (r *run) terms(node string, pl Placement, specs []deployproto.AllocationSpec) (contract.Terms, error) {
	provider, err := identity.DIDFromPeerID(pl.Provider.Host)
	if err != nil {
		return contract.Terms{}, fmt.Errorf("provider %s: %w", pl.Provider.Host, err)
	}
	var reserved match.Resources
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		sum, err := reserved.Add(s.Resources)
		if err != nil {
			return contract.Terms{}, err
		}
		reserved = sum
		names = append(names, s.Name)
	}
	interval := r.spec.Contract.Interval
	if interval <= 0 {
		interval = r.s.cfg.ContractInterval
	}
	d := r.snapshot()
	return contract.Terms{
		Version: 1, Deployment: d.ID, Node: node, Reservation: pl.Reservation, Allocations: names,
		Requester: r.s.cfg.Key.DID(), User: d.Owner, Provider: provider,
		Price: pl.Price, Reserved: reserved, Interval: interval, Budget: r.spec.Contract.Budget,
		Settlement: contract.SettleLocal, Created: r.s.cfg.Now().UTC(),
	}, nil
}

// propose makes the contract of one placed node, and the delegation that
// lets its provider node send notes here (deployproto.BehaviorNote). It
// returns nil when this service runs no contracts.
func (r *run) propose(node string, pl Placement, specs []deployproto.AllocationSpec) (*contract.Contract, string, error) {
	if r.s.cfg.Contracts == nil || r.dryRun {
		return nil, "", nil
	}
	t, err := r.terms(node, pl, specs)
	if err != nil {
		return nil, "", err
	}
	chain, err := r.noteChainFor(t.Provider)
	if err != nil {
		return nil, "", err
	}
	c, err := r.s.cfg.Contracts.Propose(t)
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	if r.contracts == nil {
		r.contracts = map[string]string{}
	}
	r.contracts[pl.Provider.Host+" "+pl.Reservation] = c.ID
	r.mu.Unlock()
	return c, chain, nil
}

// noteChainFor delegates deployproto.BehaviorNote from the orchestrator's
// own chain to a provider node, as delegateTo does CmdDeployment to an
// allocation.
func (r *run) noteChainFor(provider identity.DID) (string, error) {
	for _, c := range r.chains {
		if !cap.Covers(c.Leaf().Command(), deployproto.BehaviorNote) {
			continue
		}
		nc, err := cap.Redelegate(r.key, c, cap.DelegationParams{Audience: provider, Command: deployproto.BehaviorNote, Expiry: c.Leaf().Expiry()}, r.s.cfg.Now())
		if err != nil {
			return "", err
		}
		return nc.Encode()
	}
	return "", fmt.Errorf("the orchestrator holds no delegation covering %s", deployproto.BehaviorNote)
}

// abandon closes the contract of a reservation reverted or replaced: the
// one this run proposed for it, else (a run resumed after a restart) the
// one its allocations record.
func (r *run) abandon(host, reservation, reason string) {
	r.mu.Lock()
	id, ok := r.contracts[host+" "+reservation]
	delete(r.contracts, host+" "+reservation)
	if !ok {
		for _, a := range r.d.Allocations {
			if a.Contract != "" && a.Handle.Host == host && r.d.Placement[a.Node].Reservation == reservation {
				id = a.Contract
				break
			}
		}
	}
	r.mu.Unlock()
	r.abandonID(id, reason)
}

// abandonID closes contract id ("" does nothing).
func (r *run) abandonID(id, reason string) {
	if id == "" || r.s.cfg.Contracts == nil {
		return
	}
	if err := r.s.cfg.Contracts.Abandon(id, reason); err != nil {
		r.s.log.Debug("abandon contract", "deployment_id", r.d.ID, "contract", id, "err", err)
	}
}

// endContracts tells Contracts that the deployment ended (run.loop, at
// its end and when a resumed run finds it ended: End is idempotent). A
// run that stepped down leaves the contracts to the orchestrator that
// took over.
func (r *run) endContracts() {
	if r.s.cfg.Contracts == nil || r.dryRun || r.resigned() {
		return
	}
	d := r.snapshot()
	if err := r.s.cfg.Contracts.End(d.ID, "deployment "+string(d.State)); err != nil {
		r.s.log.Error("end contracts", "deployment_id", d.ID, "err", err)
	}
}

// exhaust records that the deployment's budget is spent: the run loop
// fails it (ReasonBudgetExhausted) and stops its allocations.
func (r *run) exhaust(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exhausted != "" || r.d.State.Terminal() {
		return
	}
	r.exhausted = msg
	r.shutdown = true // the inner loops return to the run loop
	close(r.changed)
	r.changed = make(chan struct{})
}

// exhaustedMessage returns why the budget is spent, "" while it is not.
func (r *run) exhaustedMessage() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exhausted
}

// Exhausted is told by the notary that a deployment's budget is spent (a
// note refused with contract.ErrBudget): the deployment fails with reason
// ReasonBudgetExhausted and message reason, its allocations stopped. An
// unknown or ended deployment is left alone.
func (s *Service) Exhausted(deployment, reason string) {
	r, err := s.get(deployment)
	if err != nil {
		s.log.Debug("budget exhausted", "deployment_id", deployment, "err", err)
		return
	}
	if reason == "" {
		reason = MessageBudgetExhausted
	}
	s.log.Warn("budget exhausted", "deployment_id", deployment, "reason", reason)
	r.exhaust(reason)
}
