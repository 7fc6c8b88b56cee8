// Package notary runs contracts on a node (package contract): as a
// provider it meters each contract's allocations, signs a cumulative note
// every interval, sends it to the requester and stops the allocations when
// notes stay unsigned; as a requester it checks, countersigns and settles
// the notes of its deployments, and says when a deployment's budget is
// spent. Contracts, notes and their states are kept in the node's store,
// so both sides resume after a restart (kill -9 included). Note rows, the
// most frequent writes, are stored in a compact binary encoding (store.go,
// a codec of the store's kind); rows an older binary wrote as JSON are
// still read, while an older binary cannot read the binary rows.
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
// last countersigned note again. A countersigned note is stored, and
// settled in the ledger as Config.SettleEvery says. The provider verifies
// the requester's countersignature of the notes it settles (final ones
// included), not of the others: the answer comes over the authenticated
// link from the requester, each note is cumulative and chained to the
// one before, and the ledger verifies what it settles again. A
// countersignature that does not verify then (or is not 64 bytes, at
// any note) is a contract.ErrSignature failure: the note is neither
// accepted nor settled, it is sent again at the next interval, and the
// contract stops after two intervals without a countersignature. So a
// requester that forges countersignatures is caught at the next
// settlement, and none of its notes is paid.
//
// When no note was countersigned for two intervals (since the contract
// became active or since the tick of the last countersigned note), Run
// stops the reservation's allocations (Config.Stop) with the reason
// "budget exhausted" when the last refusal was deployproto.CodeBudget, and
// "notes not countersigned: <last error>" otherwise; the contract is then
// stopped, and a final note is sent, up to maxFinalTries times, one per
// interval; when none is countersigned the last countersigned note is
// settled in the ledger. When Meter says the allocations ended, the next note is the
// final one; once it is countersigned the contract is closed.
//
// # Requester
//
// Propose signs the terms; Agree adds the provider's signature from the
// commit reply, opens the contract in the ledger and makes it active.
// HandleNote checks a note (contract.CheckNote; the provider's signature
// verified beforehand in a batch with the notes that arrive meanwhile,
// see sigBatcher and contract.VerifyProviderSigs), then the deployment's
// budget: the latest countersigned amounts of all the deployment's
// contracts here, this note replacing its contract's, must not exceed
// Terms.Budget (0: no budget). A note within it is countersigned, stored
// and then settled (as Config.SettleEvery says); a note above it is
// refused with
// deployproto.CodeBudget and Config.Exhausted is told (once per
// deployment and run). Other refusals carry deployproto.CodeNoteRefused
// and the contract.RefusalError's text. A note identical to the last
// countersigned one is answered with its countersigned copy (a
// re-delivery); an older one is refused as replayed.
//
// Abandon closes a contract whose placement was reverted or replaced.
// What was countersigned stays owed; the provider still has two intervals
// (the grace) to invoice the usage up to the stop: notes are accepted
// until a final note or the end of the grace, then the contract is
// closed-no-invoice and the ledger closes it. End does the same for the
// active contracts of a deployment that ended, which stay active while
// they wait. An invoice (a final note) that comes later is still
// checked against the chain and the budget, countersigned and settled
// for what it adds: never twice. A spent budget is stored, so a
// restarted requester still refuses the deployment's notes (but
// invoices) and tells Exhausted again.
//
// # Persistence
//
// A note is stored before it is sent (provider) or answered (requester),
// with its contract's state. Store commits (their fsync) cost more CPU
// than a note's signatures, so both sides batch them: the provider's
// scheduler starts every contract due within a second together (a tick)
// and commits the tick's notes in one transaction, then their
// countersignatures in another (or with the next tick); the requester
// commits together the notes that arrive within 10 ms, and those that
// arrive during that commit in the next one (see batcher). Each side
// settles a contract's last countersigned note in its ledger at once when
// it is final, otherwise when the contract's last settlement is
// Config.SettleEvery old (the ledger pays the cumulative difference, so
// nothing is lost between settlements; the budget is checked against the
// countersigned notes, not the ledger). The requester settles in the
// commit that stores the note when its ledger can (ledger.Local: Prepare,
// then Settlement.Apply in the batch), so a settlement costs no commit of
// its own. A crash between a commit and a settlement is repaired when
// the notary is opened again: the last
// countersigned note of every open contract is settled again (the ledger
// pays it once). After a restart an active provider contract gets two
// fresh intervals before it is stopped, and a note that was sent but not
// answered is sent again (a requester that countersigned it answers with
// its copy).
//
// The store keeps three kinds: "contracts" (the signed contract, indexed
// on deployment and reservation), "contract-states" and
// "contract-notes" (the countersigned notes, keyed by contract, role and
// seq, and a provider's note while it is not countersigned: see
// store.go). The requester keeps all its contracts in memory, closed ones
// included (a deployment's budget sums them); planned: forget those of
// ended deployments.
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
	"sync/atomic"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
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
	// StateClosedNoInvoice (requester): the deployment ended (End), or
	// the placement was reverted or replaced (Abandon), and no invoice
	// came within two intervals; the contract was closed at its last
	// countersigned note. A late invoice still settles.
	StateClosedNoInvoice State = "closed-no-invoice"
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
	// SettleEvery is how often each side settles an open contract in the
	// ledger: the last countersigned note, when the previous settlement
	// is at least this old (0: DefaultSettleEvery). Final notes, and
	// every open contract at Open, settle at once. Budgets do not wait
	// for it: the requester checks them against the countersigned notes.
	SettleEvery time.Duration

	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultWorkers = 64
	// DefaultSettleEvery: a store commit with its fsync costs more CPU
	// than a note's signatures, so a note is settled when it is final
	// or when the contract's last settlement is this old.
	DefaultSettleEvery = 5 * time.Minute
)

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

	batch batcher    // the requester's writes
	sigs  sigBatcher // the requester's checks of the providers' signatures

	// commits and writes count the store transactions of notes and the
	// contract states they wrote.
	commits, writes atomic.Int64
	// issued and countersigned count the notes signed (stats.go).
	issued, countersigned atomic.Uint64

	mu sync.Mutex
	// Requester side, guarded by mu. Nothing waits for the store while
	// holding mu (the batcher's writes take it).
	req       map[string]*rentry   // by contract ID
	byDep     map[string][]*rentry // by deployment
	exhausted map[string]bool      // deployments Exhausted was told of in this run
	spent     map[string]bool      // deployments whose budget is spent (stored: rentry.r.Exhausted)
	// Hand-over to the scheduler, guarded by mu.
	added  []*pentry
	graces []graceItem
	wake   chan struct{}
}

// rentry is a requester contract in memory, guarded by Notary.mu.
type rentry struct {
	r         row
	c         *contract.Contract
	acc       *contract.SignedNote // r.Accepted decoded
	accWrite  *write               // the store write of acc (nil: loaded)
	settled   uint64               // seq of the last note settled in this run
	settledAt time.Time            // when, or when agreed or loaded
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
	if cfg.SettleEvery <= 0 {
		cfg.SettleEvery = DefaultSettleEvery
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
		spent:     map[string]bool{},
		wake:      make(chan struct{}, 1),
	}
	n.batch.db, n.batch.stats = cfg.DB, n
	var all []row
	if err := cfg.DB.View(func(tx *store.Tx) error {
		var err error
		cs, err := contracts.List(tx, "")
		if err != nil {
			return err
		}
		all, err = loadRows(tx, cs)
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
			e := &rentry{r: r, c: c, acc: acc, settledAt: now}
			n.req[r.ID] = e
			n.byDep[r.Deployment] = append(n.byDep[r.Deployment], e)
			if r.Exhausted {
				n.spent[r.Deployment] = true
			}
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

// now is the configured clock.
func (n *Notary) now() time.Time { return n.cfg.Now() }

func (n *Notary) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Get returns the record of contract id (store.ErrNotFound when unknown).
// When this node is both sides of the contract, the requester's record.
func (n *Notary) Get(id string) (Record, error) {
	var r row
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		c, err := contracts.Get(tx, rowKey(id, RoleRequester))
		if errors.Is(err, store.ErrNotFound) {
			c, err = contracts.Get(tx, rowKey(id, RoleProvider))
		}
		if err != nil {
			return err
		}
		r, err = loadRow(tx, c)
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
		var (
			cs  []contractRow
			err error
		)
		if deployment == "" {
			cs, err = contracts.List(tx, "")
		} else {
			cs, err = contracts.Find(tx, "deployment", deployment)
		}
		if err != nil {
			return err
		}
		rs, err = loadRows(tx, cs)
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
		ns, err = notes.List(tx, id+"/"+string(rec.Role)+"/")
		return err
	}); err != nil {
		return nil, fmt.Errorf("notary: notes of contract %s: %w", id, err)
	}
	ch := &contract.Chain{Contract: rec.Contract, Notes: make([]contract.SignedNote, 0, len(ns)+1)}
	for i := range ns {
		if len(ns[i].Note.RequesterSig) == 0 {
			continue // the provider's note not countersigned yet: rec.Last
		}
		sn, err := ns[i].Note.open()
		if err != nil {
			return nil, err
		}
		ch.Notes = append(ch.Notes, *sn)
	}
	if rec.Last != nil && (rec.Accepted == nil || rec.Last.Hash != rec.Accepted.Hash) {
		ch.Notes = append(ch.Notes, *rec.Last)
	}
	return ch, nil
}
