// Package notary runs contracts on a node (package contract): as a
// provider it meters each contract's allocations, signs a cumulative note
// every interval, sends it to the requester and stops the allocations when
// notes stay unsigned; as a requester it checks, countersigns and settles
// the notes of its deployments, and says when a deployment's budget is
// spent. Contracts, notes and their states are kept in the node's store,
// so both sides resume after a restart (kill -9 included).
//
// Usage:
//
//	n, err := notary.Open(notary.Config{DB: db, Key: key, Ledger: l, Meter: …, Send: …, Stop: …, Exhausted: …})
//	go n.Run(ctx)                          // the provider's scheduler
//	c, err := n.Propose(terms)             // requester: in the commit request
//	sig, err := n.Sign(c, notary.Expect{…}) // provider: in the commit reply
//	err = n.Agree(c.ID, sig)               // requester: the reply came back
//	reply, err := n.HandleNote(ctx, from, note) // requester: BehaviorNote
//
// # Provider
//
// Sign checks the contract against what was bid, signs it, opens it in
// the ledger and makes it active. Every interval after that, Run meters
// the reservation (Config.Meter), issues the next note chained to the last
// countersigned one, stores it, and sends it (Config.Send). A note whose
// usage did not change since the last countersigned note is not issued
// (nothing is owed; the allocations have not started or are paused). A
// note that could not be delivered is sent again, the same note, at the
// next interval; a refused note is dropped, and the next one follows the
// last countersigned note again. A countersigned note is stored and
// settled in the ledger.
//
// When no note was countersigned for two intervals (since the contract
// became active or since the tick of the last countersigned note), Run
// stops the reservation's allocations (Config.Stop) with the reason
// "budget exhausted" when the last refusal was deployproto.CodeBudget, and
// "notes not countersigned: <last error>" otherwise; the contract is then
// stopped, and a final note is sent, up to maxFinalTries times, one per
// interval. When Meter says the allocations ended, the next note is the
// final one; once it is countersigned the contract is closed.
//
// # Requester
//
// Propose signs the terms; Agree adds the provider's signature from the
// commit reply, opens the contract in the ledger and makes it active.
// HandleNote checks a note (contract.CheckNote), then the deployment's
// budget: the latest countersigned amounts of all the deployment's
// contracts here, this note replacing its contract's, must not exceed
// Terms.Budget (0: no budget). A note within it is countersigned, stored
// and then settled; a note above it is refused with
// deployproto.CodeBudget and Config.Exhausted is told (once per
// deployment and run). Other refusals carry deployproto.CodeNoteRefused
// and the contract.RefusalError's text. A note identical to the last
// countersigned one is answered with its countersigned copy (a
// re-delivery); an older one is refused as replayed.
//
// Abandon closes a contract whose placement was reverted or replaced.
// What was countersigned stays owed; the provider still has two intervals
// (the grace) to invoice the usage up to the stop: notes are accepted
// until a final note or the end of the grace, then the ledger closes the
// contract (releasing its escrow).
//
// # Persistence
//
// Each note is stored before it is sent (provider) or answered
// (requester), in one store transaction with its contract's state; the
// scheduler writes all the notes of one tick in one transaction. Settling
// follows the store: a crash between them is repaired when the notary is
// opened again (the last countersigned note of every open contract is
// settled again; the ledger pays it once). After a restart an active
// provider contract gets two fresh intervals before it is stopped, and a
// note that was sent but not answered is sent again.
//
// # Concurrency
//
// A Notary is safe for concurrent use. Run has one scheduler goroutine
// (a heap of due times) and a bounded pool of workers that meter, sign,
// send and settle.
package notary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// Role is this node's side of a contract.
type Role string

// Roles.
const (
	RoleProvider  Role = "provider"
	RoleRequester Role = "requester"
)

// State is where a contract is in its life.
type State string

// States.
const (
	StateProposed State = "proposed" // requester: signed by us, not yet by the provider
	StateActive   State = "active"   // both signed; notes flow
	StateClosed   State = "closed"   // the final note (invoice) is countersigned, or the placement was reverted
	StateStopped  State = "stopped"  // provider: allocations stopped for want of countersignatures (Reason says why)
)

// Record is the stored state of one contract on this node.
type Record struct {
	Contract *contract.Contract `json:"contract"`
	Role     Role               `json:"role"`
	State    State              `json:"state"`
	Reason   string             `json:"reason,omitempty"`
	// Last is the last note issued (provider) or received and accepted
	// (requester); Accepted the last countersigned one.
	Last     *contract.SignedNote `json:"last,omitempty"`
	Accepted *contract.SignedNote `json:"accepted,omitempty"`
	// Refusal is the provider's last refusal or failed delivery of a
	// note, empty once one is countersigned.
	Refusal string    `json:"refusal,omitempty"`
	Updated time.Time `json:"updated"`
}

// Expect is what a provider agreed to in its bid: Sign refuses terms
// that differ.
type Expect struct {
	Deployment  string
	Reservation string
	Requester   identity.DID                  // the commit sender's node
	Terms       func(t *contract.Terms) error // further checks (price, reserved), nil: none
}

// Config is what a Notary needs. DB, Key and Ledger are required.
type Config struct {
	DB     *store.DB
	Key    *identity.Key // this node's key: signs notes and countersignatures
	Ledger contract.Ledger

	// Provider side. Meter returns the cumulative usage of a
	// reservation's allocations, and whether they have all ended (then the
	// note is the final one). Send delivers a note to the requester
	// (deployproto.BehaviorNote) and returns it countersigned; a refusal
	// is an error (*actor.Error with deployproto.CodeBudget or
	// CodeNoteRefused). Stop stops a reservation's allocations with a
	// reason (the allocations' message).
	Meter func(ctx context.Context, reservation string) (u contract.Usage, ended bool, err error)
	Send  func(ctx context.Context, c *contract.Contract, n *contract.SignedNote) (*contract.SignedNote, error)
	Stop  func(ctx context.Context, reservation, reason string) error

	// Requester side. Exhausted is told when a deployment's budget is
	// spent (a note refused with contract.ErrBudget): the orchestrator
	// shuts it down with the reason. It is called without locks held.
	Exhausted func(deployment, reason string)

	// Workers bounds the provider's concurrent meter, send, stop and
	// settle calls (0: DefaultWorkers).
	Workers int

	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultWorkers is the provider's default pool size.
const DefaultWorkers = 8

// maxFinalTries bounds the final notes a stopped contract sends.
const maxFinalTries = 5

// ReasonBudget is the stop reason (and the Exhausted reason) when the
// deployment's budget is spent.
const ReasonBudget = "budget exhausted"

// ErrConfig is wrapped by Open's refusal of an incomplete Config.
var ErrConfig = errors.New("notary: incomplete config")

// Notary runs this node's contracts.
type Notary struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// Requester side, guarded by mu.
	req       map[string]*rentry   // by contract ID
	byDep     map[string][]*rentry // by deployment
	exhausted map[string]bool      // deployments Exhausted was told of
	// Hand-over to the scheduler, guarded by mu.
	added  []*pentry
	graces []graceItem
	wake   chan struct{}
}

// rentry is a requester contract in memory.
type rentry struct {
	r       row
	c       *contract.Contract
	acc     *contract.SignedNote // r.Accepted decoded
	settled uint64               // seq of the last note settled in this run
}

// graceItem is an abandoned contract whose grace ends at due.
type graceItem struct {
	id  string
	due time.Time
}

// Open loads the contracts of an earlier run; Run resumes them. It
// settles again the last countersigned note of every open contract, and
// closes in the ledger the contracts closed before it could.
func Open(cfg Config) (*Notary, error) {
	var missing []string
	if cfg.DB == nil {
		missing = append(missing, "DB")
	}
	if cfg.Key == nil {
		missing = append(missing, "Key")
	}
	if cfg.Ledger == nil {
		missing = append(missing, "Ledger")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: no %s", ErrConfig, strings.Join(missing, ", "))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notary{
		cfg:       cfg,
		log:       log.With("component", "notary"),
		req:       map[string]*rentry{},
		byDep:     map[string][]*rentry{},
		exhausted: map[string]bool{},
		wake:      make(chan struct{}, 1),
	}
	var all []row
	if err := cfg.DB.View(func(tx *store.Tx) error {
		var err error
		all, err = rows.List(tx, "")
		return err
	}); err != nil {
		return nil, fmt.Errorf("notary: load contracts: %w", err)
	}
	ctx := context.Background()
	now := n.now()
	for _, r := range all {
		c, err := r.Contract.open()
		if err != nil {
			n.log.Error("contract not resumed", "contract_id", r.ID, "err", err)
			continue
		}
		acc, err := r.Accepted.open()
		if err != nil {
			n.log.Error("contract not resumed", "contract_id", r.ID, "err", err)
			continue
		}
		switch r.Role {
		case RoleRequester:
			e := &rentry{r: r, c: c, acc: acc}
			n.req[r.ID] = e
			n.byDep[r.Deployment] = append(n.byDep[r.Deployment], e)
			n.repairRequester(ctx, e, now)
		case RoleProvider:
			last, err := r.Last.open()
			if err != nil {
				n.log.Error("contract not resumed", "contract_id", r.ID, "err", err)
				continue
			}
			p := &pentry{r: r, c: c, acc: acc, last: last}
			n.repairProvider(ctx, p, now)
		}
	}
	return n, nil
}

// repairRequester settles again what a crash may have left unsettled and
// schedules the end of a grace.
func (n *Notary) repairRequester(ctx context.Context, e *rentry, now time.Time) {
	if e.r.LedgerClosed || e.r.State == StateProposed {
		return
	}
	if e.acc != nil {
		if _, err := n.cfg.Ledger.Settle(ctx, e.acc); err != nil {
			n.log.Error("settle again", "contract_id", e.r.ID, "err", err)
		} else {
			e.settled = e.acc.Note().Seq
		}
	}
	if e.r.State != StateClosed {
		return
	}
	if e.r.Grace.After(now) && !e.finalAccepted() {
		n.graces = append(n.graces, graceItem{id: e.r.ID, due: e.r.Grace})
		return
	}
	n.closeLedger(ctx, e, e.r.ID)
}

// now is the configured clock.
func (n *Notary) now() time.Time { return n.cfg.Now() }

func (n *Notary) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (e *rentry) finalAccepted() bool { return e.acc != nil && e.acc.Note().Final }

// Propose is the requester's side of a commit: it signs terms as the
// requester (t.Requester is this node) and keeps the contract proposed.
func (n *Notary) Propose(t contract.Terms) (*contract.Contract, error) {
	c, err := contract.New(t, n.cfg.Key)
	if err != nil {
		return nil, err
	}
	tt := c.Terms()
	e := &rentry{c: c, r: row{
		ID: c.ID, Role: RoleRequester, Deployment: tt.Deployment, Reservation: tt.Reservation,
		State: StateProposed, Contract: storeContract(c), Updated: n.now(),
	}}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.req[c.ID]; old != nil { // the same terms proposed again
		return old.c, nil
	}
	if err := n.cfg.DB.Update(func(tx *store.Tx) error { return rows.Put(tx, e.r) }); err != nil {
		return nil, fmt.Errorf("notary: store contract %s: %w", c.ID, err)
	}
	n.req[c.ID] = e
	n.byDep[tt.Deployment] = append(n.byDep[tt.Deployment], e)
	return c, nil
}

// Agree completes a proposed contract with the provider's signature from
// the commit reply, checks it, opens it in the ledger and makes it active.
// Agreeing again with the same signature does nothing.
func (n *Notary) Agree(id string, providerSig []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.req[id]
	if e == nil {
		return &contract.RefusalError{Err: contract.ErrUnknown, Detail: "no contract " + id + " proposed here"}
	}
	if e.r.State != StateProposed {
		if string(e.c.ProviderSig) == string(providerSig) {
			return nil
		}
		return &contract.RefusalError{Err: contract.ErrClosed, Detail: fmt.Sprintf("contract %s is %s", id, e.r.State)}
	}
	c := *e.c
	c.ProviderSig = clone(providerSig)
	if err := c.Open(); err != nil || !c.Signed() { // Open keeps the verified signatures: notes do not verify them again
		return &contract.RefusalError{Err: contract.ErrSignature, Detail: "the provider's signature of contract " + id + " does not verify"}
	}
	if err := n.cfg.Ledger.Open(context.Background(), &c); err != nil {
		return fmt.Errorf("notary: open contract %s in the ledger: %w", id, err)
	}
	r := e.r
	r.State, r.Contract, r.Updated = StateActive, storeContract(&c), n.now()
	if err := n.cfg.DB.Update(func(tx *store.Tx) error { return rows.Put(tx, r) }); err != nil {
		return fmt.Errorf("notary: store contract %s: %w", id, err)
	}
	e.r, e.c = r, &c
	return nil
}

// Abandon closes a proposed or active requester contract whose placement
// was reverted or replaced (what was countersigned stays owed). An active
// one accepts notes for two more intervals (the provider's invoice);
// then, or at its final note, the ledger closes it. Abandoning a closed
// contract does nothing.
func (n *Notary) Abandon(id, reason string) error {
	n.mu.Lock()
	e := n.req[id]
	if e == nil {
		n.mu.Unlock()
		return &contract.RefusalError{Err: contract.ErrUnknown, Detail: "no requester contract " + id + " here"}
	}
	if e.r.State == StateClosed {
		n.mu.Unlock()
		return nil
	}
	now := n.now()
	r := e.r
	if r.State == StateActive && !e.finalAccepted() {
		r.Grace = now.Add(2 * e.c.Terms().Interval)
	}
	r.State, r.Reason, r.Updated = StateClosed, reason, now
	if err := n.cfg.DB.Update(func(tx *store.Tx) error { return rows.Put(tx, r) }); err != nil {
		n.mu.Unlock()
		return fmt.Errorf("notary: store contract %s: %w", id, err)
	}
	e.r = r
	if !r.Grace.IsZero() {
		n.graces = append(n.graces, graceItem{id: id, due: r.Grace})
		n.mu.Unlock()
		n.signal()
		return nil
	}
	n.mu.Unlock()
	return nil
}

// expireGrace closes an abandoned contract in the ledger once its grace
// is over.
func (n *Notary) expireGrace(ctx context.Context, id string) {
	n.mu.Lock()
	e := n.req[id]
	if e == nil || e.r.State != StateClosed || e.r.LedgerClosed || e.r.Grace.After(n.now()) {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	n.closeLedger(ctx, e, id)
}

// closeLedger closes e in the ledger and records it. Callers do not hold
// mu.
func (n *Notary) closeLedger(ctx context.Context, e *rentry, id string) {
	if err := n.cfg.Ledger.Close(ctx, id); err != nil {
		n.log.Error("close in the ledger", "contract_id", id, "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	r := e.r
	r.LedgerClosed = true
	if err := n.cfg.DB.Update(func(tx *store.Tx) error { return rows.Put(tx, r) }); err != nil {
		n.log.Error("store contract", "contract_id", e.r.ID, "err", err)
		return
	}
	e.r = r
}

// refuse is the *actor.Error a refused note is answered with.
func refuse(err error) error {
	code := deployproto.CodeNoteRefused
	if errors.Is(err, contract.ErrBudget) {
		code = deployproto.CodeBudget
	}
	return &actor.Error{Code: code, Msg: err.Error()}
}

func refusef(sentinel error, format string, args ...any) error {
	return refuse(&contract.RefusalError{Err: sentinel, Detail: fmt.Sprintf(format, args...)})
}

// HandleNote is the requester's answer to a provider's note (from is the
// sending node's DID): checked, within the budget, countersigned, stored
// and settled; or refused with an *actor.Error (deployproto.CodeBudget,
// CodeNoteRefused).
func (n *Notary) HandleNote(ctx context.Context, from identity.DID, sn contract.SignedNote) (contract.SignedNote, error) {
	sn.RequesterSig = nil
	if err := sn.Open(); err != nil {
		return contract.SignedNote{}, refuse(err)
	}
	note := sn.Note()
	if note == nil {
		return contract.SignedNote{}, refusef(contract.ErrMalformed, "note %s does not decode", sn.Hash)
	}
	n.mu.Lock()
	e := n.req[note.Contract]
	if e == nil {
		n.mu.Unlock()
		return contract.SignedNote{}, refusef(contract.ErrUnknown, "no contract %q requested by this node", note.Contract)
	}
	t := e.c.Terms()
	if from != t.Provider {
		n.mu.Unlock()
		return contract.SignedNote{}, refusef(contract.ErrWrongParty, "note of contract %s sent by %s, not its provider %s", e.r.ID, from.Short(), t.Provider.Short())
	}
	if e.acc != nil && sn.Hash == e.acc.Hash {
		// A re-delivery of the last countersigned note: its copy again.
		cp := *e.acc
		resettle, id := e.settled < note.Seq, e.r.ID
		n.mu.Unlock()
		if resettle {
			n.settle(ctx, e, id, &cp)
		}
		return cp, nil
	}
	if e.acc != nil && note.Seq <= e.acc.Note().Seq {
		if n.wasAccepted(sn) {
			n.mu.Unlock()
			return contract.SignedNote{}, refusef(contract.ErrReplay, "note %d of contract %s was countersigned before", note.Seq, e.r.ID)
		}
	}
	now := n.now()
	switch e.r.State {
	case StateProposed:
		n.mu.Unlock()
		return contract.SignedNote{}, refusef(contract.ErrTerms, "contract %s is not signed by its provider yet", e.r.ID)
	case StateClosed:
		if e.r.Grace.IsZero() || !now.Before(e.r.Grace) || e.finalAccepted() {
			n.mu.Unlock()
			return contract.SignedNote{}, refusef(contract.ErrClosed, "contract %s is closed (%s)", e.r.ID, e.r.Reason)
		}
	}
	if err := contract.CheckNote(e.c, e.acc, &sn); err != nil {
		n.mu.Unlock()
		return contract.SignedNote{}, refuse(err)
	}
	if t.Budget > 0 {
		total := note.Amount
		for _, o := range n.byDep[t.Deployment] {
			if o != e && o.acc != nil {
				total = addMoney(total, o.acc.Note().Amount)
			}
		}
		if total > t.Budget {
			first := !n.exhausted[t.Deployment]
			n.exhausted[t.Deployment] = true
			n.mu.Unlock()
			if first && n.cfg.Exhausted != nil {
				n.cfg.Exhausted(t.Deployment, ReasonBudget)
			}
			return contract.SignedNote{}, refusef(contract.ErrBudget, "note %d of contract %s takes deployment %s to %s, above its budget %s",
				note.Seq, e.r.ID, t.Deployment, total, t.Budget)
		}
	}
	cs := sn
	cs.Countersign(n.cfg.Key)
	r := e.r
	r.Last, r.Accepted, r.Updated = storeNote(&cs), storeNote(&cs), now
	if note.Final && r.State == StateActive {
		r.State = StateClosed
	}
	if err := n.cfg.DB.Update(func(tx *store.Tx) error {
		if err := rows.Put(tx, r); err != nil {
			return err
		}
		return putNote(tx, &cs)
	}); err != nil {
		n.mu.Unlock()
		return contract.SignedNote{}, fmt.Errorf("notary: store note %d of contract %s: %w", note.Seq, r.ID, err)
	}
	e.r, e.acc = r, &cs
	n.mu.Unlock()
	n.settle(ctx, e, r.ID, &cs)
	if note.Final {
		n.closeLedger(ctx, e, r.ID)
	}
	return cs, nil
}

// wasAccepted reports whether sn is a note this node countersigned
// before. Callers hold mu.
func (n *Notary) wasAccepted(sn contract.SignedNote) bool {
	var nr noteRow
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		nr, err = notes.Get(tx, noteKey(sn.Note().Contract, sn.Note().Seq))
		return err
	})
	return err == nil && nr.Note.Hash == sn.Hash && len(nr.Note.RequesterSig) > 0
}

// settle settles a countersigned note in the ledger; a failure is logged
// (the next note or the next Open settles it).
func (n *Notary) settle(ctx context.Context, e *rentry, id string, cs *contract.SignedNote) {
	if _, err := n.cfg.Ledger.Settle(ctx, cs); err != nil {
		n.log.Error("settle", "contract_id", id, "seq", cs.Note().Seq, "err", err)
		return
	}
	n.mu.Lock()
	e.settled = max(e.settled, cs.Note().Seq)
	n.mu.Unlock()
}

// addMoney adds without overflowing.
func addMoney(a, b match.Money) match.Money {
	if a > match.MaxMoney-b {
		return match.MaxMoney
	}
	return a + b
}

// Get returns the record of contract id (store.ErrNotFound when unknown).
// When this node is both sides of the contract, the requester's record.
func (n *Notary) Get(id string) (Record, error) {
	var r row
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		r, err = rows.Get(tx, rowKey(id, RoleRequester))
		if errors.Is(err, store.ErrNotFound) {
			r, err = rows.Get(tx, rowKey(id, RoleProvider))
		}
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("notary: contract %s: %w", id, err)
	}
	return r.record()
}

// List returns the records of a deployment's contracts ("": all), newest
// first.
func (n *Notary) List(deployment string) ([]Record, error) {
	var rs []row
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		if deployment == "" {
			rs, err = rows.List(tx, "")
		} else {
			rs, err = rows.Find(tx, "deployment", deployment)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notary: list contracts: %w", err)
	}
	out := make([]Record, 0, len(rs))
	for i := range rs {
		rec, err := rs[i].record()
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := b.Contract.Terms().Created.Compare(a.Contract.Terms().Created); c != 0 {
			return c
		}
		return strings.Compare(a.Contract.ID, b.Contract.ID)
	})
	return out, nil
}

// Chain returns a contract with all its notes, for export and
// verification: the countersigned ones, then the provider's note not
// countersigned yet, if any.
func (n *Notary) Chain(id string) (*contract.Chain, error) {
	rec, err := n.Get(id)
	if err != nil {
		return nil, err
	}
	var ns []noteRow
	if err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		ns, err = notes.List(tx, id+"/")
		return err
	}); err != nil {
		return nil, fmt.Errorf("notary: notes of contract %s: %w", id, err)
	}
	ch := &contract.Chain{Contract: rec.Contract, Notes: make([]contract.SignedNote, 0, len(ns))}
	for i := range ns {
		sn, err := ns[i].Note.open()
		if err != nil {
			return nil, err
		}
		ch.Notes = append(ch.Notes, *sn)
	}
	return ch, nil
}
