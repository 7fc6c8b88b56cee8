// Package ledger is the local settlement ledger: it implements
// contract.Ledger on the node's store, keeping an account per DID (what it
// paid, received and holds in escrow) and the settlement state of every
// contract it opened.
//
// Usage:
//
//	l, err := ledger.Open(db)                  // runs the "ledger" migrations
//	err = l.Open(ctx, c)                       // a contract both parties signed
//	moved, err := l.Settle(ctx, note)          // a countersigned note, any order
//	err = l.Close(ctx, c.ID)                   // releases the escrow left
//	b, err := l.Balance(ctx, did)
//	s, err := l.Contract(ctx, c.ID)            // paid, last note
//	e, err := l.Escrow(ctx, requester, deployment) // the deployment's escrow
//	ps, err := l.Payments(ctx, c.ID)           // the notes that moved funds
//	err = l.Audit(ctx)                         // the invariants below hold
//
// # Rules
//
// Open records a contract signed by both parties. A deployment's budget
// (Terms.Budget: what all its contracts together may cost) is held in
// escrow from the requester once, shared by the deployment's contracts:
// while any of them is open, the escrow holds the budget less what they
// paid (no budget: no escrow); when the last one closes, it is released.
// The budget is the one of the deployment's contract opened last. Opening
// twice does nothing.
//
// Settle pays for a note that carries both the provider's and the
// requester's signatures under its contract: the note's cumulative amount
// minus what the contract has paid so far, when that is above zero. So a
// duplicated, late or reordered note moves nothing, and the contract's
// total paid is the largest amount among the countersigned notes settled,
// whatever order they came in. The payment moves from the requester
// (Paid) to the provider (Received) and is taken from the deployment's
// escrow as far as the escrow goes. The contract's state, both accounts
// and the payment's journal entry change in one store transaction: a
// crash (kill -9) never leaves half a payment.
//
// Close marks the contract closed, and releases the deployment's escrow
// when no other contract of it is open; it does not forbid payment. A countersigned note that arrives after Close still
// pays what its amount adds: it is a debt the requester signed, and a final
// invoice must not be lost because the contract was closed before it
// arrived. For the same reason a note both parties signed after the final
// one (which contract.CheckNote keeps the requester from countersigning)
// pays like any other: a ledger cannot take a payment back, so refusing
// notes after the invoice would make the outcome depend on the order of
// arrival, and the requester's and the provider's ledgers could end
// differently. The rule is one: a contract pays the largest amount among
// its countersigned notes, once.
//
// Refusals are *contract.RefusalError wrapping contract.ErrMalformed (a
// note or contract that does not decode), contract.ErrSignature (a
// contract not signed by both parties), contract.ErrUnknown (a note of a
// contract never opened here), contract.ErrNotAccepted (a note without
// both valid signatures, forged or not countersigned),
// contract.ErrTerms (a contract of another settlement method) or
// ErrOverflow. A refused call changes nothing.
//
// # Concurrency
//
// A Local is safe for concurrent use: every change is one store
// transaction, and the store runs one writing transaction at a time.
// Settle checks the signatures before it takes the write lock. Prepare
// and Settlement.Apply split Settle so that a caller settles within a
// store transaction of its own (the notary, in the commit that stores
// the note).
package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// ErrOverflow is wrapped by the refusal of a payment or an escrow that
// would take an account's total above match.MaxMoney.
var ErrOverflow = errors.New("account would overflow")

// errUnchanged rolls back a settlement that changes nothing.
var errUnchanged = errors.New("unchanged")

// State is what the ledger knows of one contract.
type State struct {
	ID         string       `json:"id"`
	Deployment string       `json:"deployment"`
	Requester  identity.DID `json:"requester"`
	Provider   identity.DID `json:"provider"`
	Budget     match.Money  `json:"budget,omitempty"`
	// Paid is what the contract has paid: the largest amount among the
	// notes settled.
	Paid match.Money `json:"paid"`
	// Seq and Hash are those of the highest note settled (0, "" before
	// the first).
	Seq  uint64 `json:"seq,omitempty"`
	Hash string `json:"hash,omitempty"`
	// FinalSeq is the seq of the final note settled (0: none yet). It
	// informs; it does not stop later notes from paying (see the package
	// doc).
	FinalSeq uint64    `json:"final_seq,omitempty"`
	Closed   bool      `json:"closed,omitempty"`
	Opened   time.Time `json:"opened"`
}

// Escrow is what a deployment's budget holds in escrow from its
// requester, shared by the deployment's contracts in this ledger.
type Escrow struct {
	Requester  identity.DID `json:"requester"`
	Deployment string       `json:"deployment"`
	// Budget is the deployment's budget (of its contract opened last).
	Budget match.Money `json:"budget"`
	// Held is Budget less Paid while Open > 0, zero otherwise.
	Held match.Money `json:"held"`
	// Paid is what the deployment's contracts paid; Open how many of
	// them are open.
	Paid match.Money `json:"paid"`
	Open int         `json:"open"`
}

func escrowKey(req identity.DID, deployment string) string { return string(req) + " " + deployment }

// target is what e should hold.
func (e *Escrow) target() match.Money {
	if e.Open <= 0 {
		return 0
	}
	return max(0, e.Budget-e.Paid)
}

// Payment is one entry of a contract's journal: a settled note that moved
// funds.
type Payment struct {
	Contract string       `json:"contract"`
	Seq      uint64       `json:"seq"`
	Hash     string       `json:"hash"`
	From     identity.DID `json:"from"`   // the requester
	To       identity.DID `json:"to"`     // the provider
	Amount   match.Money  `json:"amount"` // the note's cumulative amount
	Moved    match.Money  `json:"moved"`  // what this note added
	At       time.Time    `json:"at"`
}

// record is a contract as stored: its State and the signed contract,
// byte for byte ([]byte, not json.RawMessage: the store's JSON encoding
// would compact raw bytes and change the hash).
type record struct {
	State
	Body         []byte `json:"body"`
	RequesterSig []byte `json:"requester_sig"`
	ProviderSig  []byte `json:"provider_sig"`
}

func (r *record) contract() *contract.Contract {
	return &contract.Contract{ID: r.ID, Body: r.Body, RequesterSig: r.RequesterSig, ProviderSig: r.ProviderSig}
}

var (
	contracts = store.NewKind("ledger-contracts", func(r record) string { return r.ID },
		store.Index[record]{Name: "party", Values: func(r record) []string {
			return []string{string(r.Requester), string(r.Provider)}
		}})
	accounts = store.NewKind("ledger-accounts", func(b contract.Balance) string { return string(b.DID) })
	journal  = store.NewKind("ledger-payments", paymentKey)
	escrows  = store.NewKind("ledger-escrows", func(e Escrow) string { return escrowKey(e.Requester, e.Deployment) })
)

// paymentKey orders a contract's payments by seq.
func paymentKey(p Payment) string { return fmt.Sprintf("%s/%020d/%s", p.Contract, p.Seq, p.Hash) }

// migrations of the "ledger" component.
var migrations = []store.Migration{
	{Component: "ledger", Version: 1, Name: "create kinds", Up: func(*store.Tx) error { return nil }},
	{Component: "ledger", Version: 2, Name: "one escrow per deployment", Up: migrateEscrows},
}

// migrateEscrows replaces the escrow each contract held (its whole
// budget) by one escrow per deployment, and the accounts' escrowed sums
// with them.
func migrateEscrows(tx *store.Tx) error {
	recs, err := contracts.List(tx, "")
	if err != nil {
		return err
	}
	byDep := map[string]*Escrow{}
	latest := map[string]time.Time{}
	for _, r := range recs {
		k := escrowKey(r.Requester, r.Deployment)
		e := byDep[k]
		if e == nil {
			e = &Escrow{Requester: r.Requester, Deployment: r.Deployment}
			byDep[k] = e
		}
		if !r.Opened.Before(latest[k]) {
			e.Budget, latest[k] = r.Budget, r.Opened
		}
		if e.Paid, err = add(e.Paid, r.Paid); err != nil {
			return err
		}
		if !r.Closed {
			e.Open++
		}
	}
	held := map[identity.DID]match.Money{}
	for _, e := range byDep {
		e.Held = e.target()
		held[e.Requester] += e.Held
		if err := escrows.Put(tx, *e); err != nil {
			return err
		}
	}
	accs, err := accounts.List(tx, "")
	if err != nil {
		return err
	}
	for _, a := range accs {
		if a.Escrowed != held[a.DID] {
			a.Escrowed = held[a.DID]
			if err := accounts.Put(tx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// Local is the ledger in one node's store.
type Local struct {
	db    *store.DB
	now   func() time.Time
	cache sync.Map // contract ID → *contract.Contract opened here, signatures verified
}

var _ contract.Ledger = (*Local)(nil)

// Open runs the ledger's migrations on db and returns the ledger.
func Open(db *store.DB) (*Local, error) {
	if db == nil {
		return nil, errors.New("ledger: no store")
	}
	if err := db.Migrate(migrations...); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &Local{db: db, now: func() time.Time { return time.Now().UTC() }}, nil
}

func refuse(err error, format string, args ...any) error {
	return &contract.RefusalError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// Open records c, which both parties must have signed, and holds its
// budget in escrow from the requester. Opening a contract twice does
// nothing.
func (l *Local) Open(ctx context.Context, c *contract.Contract) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c == nil {
		return refuse(contract.ErrMalformed, "no contract")
	}
	// Check a copy from its bytes: what is stored is what was verified.
	cp := &contract.Contract{ID: c.ID, Body: bytes.Clone(c.Body), RequesterSig: bytes.Clone(c.RequesterSig), ProviderSig: bytes.Clone(c.ProviderSig)}
	if err := cp.Open(); err != nil {
		return err
	}
	if !cp.Signed() {
		return refuse(contract.ErrSignature, "contract %s is not signed by both parties", cp.ID)
	}
	t := cp.Terms()
	if t == nil {
		return refuse(contract.ErrMalformed, "contract %s has no terms", cp.ID)
	}
	if t.Settlement != contract.SettleLocal {
		return refuse(contract.ErrTerms, "contract %s settles by %q, this ledger by %q", cp.ID, t.Settlement, contract.SettleLocal)
	}
	if t.Budget < 0 {
		return refuse(contract.ErrMalformed, "contract %s has a negative budget", cp.ID)
	}
	rec := record{
		State: State{
			ID: cp.ID, Deployment: t.Deployment, Requester: t.Requester, Provider: t.Provider,
			Budget: t.Budget, Opened: l.now(),
		},
		Body:         append([]byte(nil), cp.Body...),
		RequesterSig: append([]byte(nil), cp.RequesterSig...),
		ProviderSig:  append([]byte(nil), cp.ProviderSig...),
	}
	err := l.db.Update(func(tx *store.Tx) error {
		switch _, err := contracts.Get(tx, rec.ID); {
		case err == nil:
			return nil // opened before
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		e, err := escrowOf(tx, rec.Requester, rec.Deployment)
		if err != nil {
			return err
		}
		e.Budget = rec.Budget
		e.Open++
		if err := hold(tx, &e); err != nil {
			return err
		}
		return contracts.Put(tx, rec)
	})
	if err == nil {
		l.cache.Store(cp.ID, cp) // its settlements need not verify it again
	}
	return wrap("open", rec.ID, err)
}

// Settle pays what the countersigned note n adds to what its contract has
// paid, and returns that amount (0 for a note already covered).
func (l *Local) Settle(ctx context.Context, n *contract.SignedNote) (match.Money, error) {
	st, err := l.Prepare(ctx, n)
	if err != nil {
		return 0, err
	}
	var moved match.Money
	err = l.db.Update(func(tx *store.Tx) error {
		var changed bool
		var err error
		moved, changed, err = st.apply(tx)
		if err == nil && !changed {
			return errUnchanged // roll back: no commit, no fsync
		}
		return err
	})
	if errors.Is(err, errUnchanged) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("settle", st.note.Contract, err)
	}
	return moved, nil
}

// Settlement is a countersigned note checked for settlement (Prepare),
// to be paid in a store transaction of the caller's (Apply): a node that
// stores the note can settle it in the same commit.
type Settlement struct {
	l    *Local
	sn   *contract.SignedNote // a copy decoded from its bytes
	note *contract.Note
}

// Prepare makes the checks of Settle that need no transaction: the note
// decodes, names a contract opened here, and carries both valid
// signatures under it (a signature this process verified or made on the
// same bytes counts: SignedNote.Clone). They are made before the store's
// write lock is taken; a contract's signed part never changes once
// opened.
func (l *Local) Prepare(ctx context.Context, n *contract.SignedNote) (*Settlement, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n == nil {
		return nil, refuse(contract.ErrMalformed, "no note")
	}
	// A copy: what n holds decoded or verified counts only for the same
	// bytes (SignedNote.Clone).
	cp := n.Clone()
	if err := cp.Open(); err != nil {
		return nil, err
	}
	note := cp.Note()
	if note == nil {
		return nil, refuse(contract.ErrMalformed, "note %s does not decode", cp.Hash)
	}
	if note.Amount < 0 {
		return nil, refuse(contract.ErrMalformed, "note %s has a negative amount", cp.Hash)
	}
	if !validID(note.Contract) {
		return nil, refuse(contract.ErrMalformed, "note %s names contract %q, not a contract ID", cp.Hash, note.Contract)
	}
	c, err := l.opened(note.Contract)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(contract.ErrUnknown, "note %s is of contract %s, never opened here", cp.Hash, note.Contract)
	}
	if err != nil {
		return nil, wrap("settle", note.Contract, err)
	}
	if !cp.Accepted(c) {
		return nil, refuse(contract.ErrNotAccepted, "note %d (%s) of contract %s lacks a valid provider's or requester's signature", note.Seq, cp.Hash, c.ID)
	}
	return &Settlement{l: l, sn: cp, note: note}, nil
}

// opened returns the contract id opened here, its signatures verified,
// from a cache (the signed part of an opened contract never changes).
func (l *Local) opened(id string) (*contract.Contract, error) {
	if c, ok := l.cache.Load(id); ok {
		return c.(*contract.Contract), nil
	}
	var signed record
	err := l.db.View(func(tx *store.Tx) error {
		var err error
		signed, err = contracts.Get(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := signed.contract()
	if err := c.Open(); err != nil {
		return nil, fmt.Errorf("%w: stored contract: %v", store.ErrCorrupt, err)
	}
	l.cache.Store(id, c)
	return c, nil
}

// Apply pays, in tx, what the note adds to what its contract has paid,
// and returns that amount. A refusal (*contract.RefusalError: an
// overflow) or a store error leaves tx unchanged by it, so a caller may
// apply settlements beside writes of its own and drop a refused one.
func (s *Settlement) Apply(tx *store.Tx) (match.Money, error) {
	moved, _, err := s.apply(tx)
	return moved, err
}

// apply is Apply, and whether it changed anything. Everything is read
// and checked before the first write.
func (s *Settlement) apply(tx *store.Tx) (match.Money, bool, error) {
	note, l := s.note, s.l
	rec, err := contracts.Get(tx, note.Contract)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, refuse(contract.ErrUnknown, "note %s is of contract %s, never opened here", s.sn.Hash, note.Contract)
	}
	if err != nil {
		return 0, false, err
	}
	changed := false
	if note.Final && (rec.FinalSeq == 0 || note.Seq < rec.FinalSeq) {
		rec.FinalSeq, changed = note.Seq, true
	}
	if note.Seq > rec.Seq {
		rec.Seq, rec.Hash, changed = note.Seq, s.sn.Hash, true
	}
	if note.Amount <= rec.Paid {
		if !changed {
			return 0, false, nil
		}
		return 0, true, contracts.Put(tx, rec)
	}
	delta := note.Amount - rec.Paid
	p, err := l.payment(tx, &rec, delta)
	if err != nil {
		return 0, false, err
	}
	rec.Paid = note.Amount
	if err := p.write(tx); err != nil {
		return 0, false, err
	}
	j := Payment{Contract: rec.ID, Seq: note.Seq, Hash: s.sn.Hash, From: rec.Requester, To: rec.Provider,
		Amount: note.Amount, Moved: delta, At: l.now()}
	if err := journal.Put(tx, j); err != nil {
		return 0, false, err
	}
	return delta, true, contracts.Put(tx, rec)
}

// escrowOf reads the escrow of a deployment, empty when absent.
func escrowOf(tx *store.Tx, req identity.DID, deployment string) (Escrow, error) {
	e, err := escrows.Get(tx, escrowKey(req, deployment))
	if errors.Is(err, store.ErrNotFound) {
		return Escrow{Requester: req, Deployment: deployment}, nil
	}
	return e, err
}

// hold makes e hold its target (e.target) and moves the difference into
// or out of its requester's account; it stores both.
func hold(tx *store.Tx, e *Escrow) error {
	want := e.target()
	if want == e.Held {
		return escrows.Put(tx, *e)
	}
	req, err := account(tx, e.Requester)
	if err != nil {
		return err
	}
	if want > e.Held {
		if req.Escrowed, err = add(req.Escrowed, want-e.Held); err != nil {
			return refuse(ErrOverflow, "escrow of %s for deployment %s", e.Requester, e.Deployment)
		}
	} else {
		req.Escrowed -= e.Held - want
		if req.Escrowed < 0 { // a corrupt account: never hold less than nothing
			return fmt.Errorf("%w: %s escrows less than deployment %s holds", store.ErrCorrupt, req.DID, e.Deployment)
		}
	}
	e.Held = want
	if err := accounts.Put(tx, req); err != nil {
		return err
	}
	return escrows.Put(tx, *e)
}

// payment is a payment computed and checked, not written yet.
type payment struct {
	escrow    Escrow
	req, prov contract.Balance
	self      bool // the provider is the requester: one account
}

// payment computes moving delta from rec's requester to its provider,
// from the deployment's escrow as far as it goes; it writes nothing.
func (l *Local) payment(tx *store.Tx, rec *record, delta match.Money) (*payment, error) {
	p := &payment{self: rec.Provider == rec.Requester}
	var err error
	if p.escrow, err = escrowOf(tx, rec.Requester, rec.Deployment); err != nil {
		return nil, err
	}
	if p.req, err = account(tx, rec.Requester); err != nil {
		return nil, err
	}
	if p.escrow.Paid, err = add(p.escrow.Paid, delta); err != nil {
		return nil, refuse(ErrOverflow, "paid by deployment %s", rec.Deployment)
	}
	if p.req.Paid, err = add(p.req.Paid, delta); err != nil {
		return nil, refuse(ErrOverflow, "paid by %s", rec.Requester)
	}
	release := p.escrow.Held - p.escrow.target() // a payment only lowers the target
	p.escrow.Held -= release
	p.req.Escrowed -= release
	if release < 0 || p.req.Escrowed < 0 { // a corrupt account: never hold less than nothing
		return nil, fmt.Errorf("%w: %s escrows less than deployment %s holds", store.ErrCorrupt, p.req.DID, rec.Deployment)
	}
	if p.self {
		if p.req.Received, err = add(p.req.Received, delta); err != nil {
			return nil, refuse(ErrOverflow, "received by %s", rec.Provider)
		}
		return p, nil
	}
	if p.prov, err = account(tx, rec.Provider); err != nil {
		return nil, err
	}
	if p.prov.Received, err = add(p.prov.Received, delta); err != nil {
		return nil, refuse(ErrOverflow, "received by %s", rec.Provider)
	}
	return p, nil
}

// write stores the payment's escrow and accounts.
func (p *payment) write(tx *store.Tx) error {
	if err := escrows.Put(tx, p.escrow); err != nil {
		return err
	}
	if err := accounts.Put(tx, p.req); err != nil {
		return err
	}
	if p.self {
		return nil
	}
	return accounts.Put(tx, p.prov)
}

// Close releases the escrow left of a contract and marks it closed.
// Closing twice does nothing. Notes may still settle (see the package
// doc).
func (l *Local) Close(ctx context.Context, contractID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validID(contractID) {
		return refuse(contract.ErrUnknown, "%q is not a contract ID", contractID)
	}
	err := l.db.Update(func(tx *store.Tx) error {
		rec, err := contracts.Get(tx, contractID)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(contract.ErrUnknown, "contract %q was never opened here", contractID)
		}
		if err != nil {
			return err
		}
		if rec.Closed {
			return nil
		}
		e, err := escrowOf(tx, rec.Requester, rec.Deployment)
		if err != nil {
			return err
		}
		e.Open--
		if err := hold(tx, &e); err != nil {
			return err
		}
		rec.Closed = true
		return contracts.Put(tx, rec)
	})
	return wrap("close", contractID, err)
}

// Balance returns did's account (all zero for a DID the ledger never saw).
func (l *Local) Balance(ctx context.Context, did identity.DID) (contract.Balance, error) {
	if err := ctx.Err(); err != nil {
		return contract.Balance{}, err
	}
	var b contract.Balance
	err := l.db.View(func(tx *store.Tx) error {
		var err error
		b, err = account(tx, did)
		return err
	})
	if err != nil {
		return contract.Balance{}, fmt.Errorf("ledger: balance of %s: %w", did, err)
	}
	return b, nil
}

// Contract returns the state of a contract; the error wraps
// contract.ErrUnknown when it was never opened here.
func (l *Local) Contract(ctx context.Context, id string) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if !validID(id) {
		return State{}, refuse(contract.ErrUnknown, "%q is not a contract ID", id)
	}
	var s State
	err := l.db.View(func(tx *store.Tx) error {
		rec, err := contracts.Get(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(contract.ErrUnknown, "contract %q was never opened here", id)
		}
		s = rec.State
		return err
	})
	return s, wrap("contract", id, err)
}

// Escrow returns the escrow of a deployment's budget (all zero when none
// of its contracts was opened here).
func (l *Local) Escrow(ctx context.Context, requester identity.DID, deployment string) (Escrow, error) {
	if err := ctx.Err(); err != nil {
		return Escrow{}, err
	}
	var e Escrow
	err := l.db.View(func(tx *store.Tx) error {
		var err error
		e, err = escrowOf(tx, requester, deployment)
		return err
	})
	if err != nil {
		return Escrow{}, fmt.Errorf("ledger: escrow of deployment %s: %w", deployment, err)
	}
	return e, nil
}

// Contracts returns the state of the contracts did is a party of (all
// contracts when did is empty), in ID order.
func (l *Local) Contracts(ctx context.Context, did identity.DID) ([]State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []State
	err := l.db.View(func(tx *store.Tx) error {
		var recs []record
		var err error
		if did == "" {
			recs, err = contracts.List(tx, "")
		} else {
			recs, err = contracts.Find(tx, "party", string(did))
		}
		for _, r := range recs {
			out = append(out, r.State)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: contracts of %s: %w", did, err)
	}
	return out, nil
}

// Payments returns a contract's journal: the notes that moved funds, in
// seq order.
func (l *Local) Payments(ctx context.Context, contractID string) ([]Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ps []Payment
	err := l.db.View(func(tx *store.Tx) error {
		var err error
		ps, err = journal.List(tx, contractID+"/")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: payments of %s: %w", contractID, err)
	}
	return ps, nil
}

// Audit checks the ledger's invariants: what all accounts paid equals
// what they received and what the contracts paid; each contract's paid
// equals the sum of its journal's moves and the largest amount in it; each
// deployment's escrow counts its contracts, open ones and what they paid,
// and holds its budget less that while one is open, nothing otherwise;
// each account's escrow equals what its deployments hold.
// An error names the first broken one.
func (l *Local) Audit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.db.View(func(tx *store.Tx) error {
		accs, err := accounts.List(tx, "")
		if err != nil {
			return err
		}
		recs, err := contracts.List(tx, "")
		if err != nil {
			return err
		}
		var paid, received match.Money
		for _, a := range accs {
			if paid, err = add(paid, a.Paid); err != nil {
				return fmt.Errorf("ledger audit: %w", ErrOverflow)
			}
			if received, err = add(received, a.Received); err != nil {
				return fmt.Errorf("ledger audit: %w", ErrOverflow)
			}
		}
		if paid != received {
			return fmt.Errorf("ledger audit: accounts paid %s but received %s", paid, received)
		}
		type depSum struct {
			paid match.Money
			open int
		}
		deps := map[string]*depSum{}
		var total match.Money
		for _, r := range recs {
			ps, err := journal.List(tx, r.ID+"/")
			if err != nil {
				return err
			}
			var sum, top match.Money
			for _, p := range ps {
				if p.Moved <= 0 || p.Amount > r.Paid {
					return fmt.Errorf("ledger audit: contract %s: payment of note %d moved %s for an amount of %s, the contract paid %s", r.ID, p.Seq, p.Moved, p.Amount, r.Paid)
				}
				if sum, err = add(sum, p.Moved); err != nil {
					return fmt.Errorf("ledger audit: contract %s: journal: %w", r.ID, err)
				}
				top = max(top, p.Amount)
			}
			if sum != r.Paid || top != r.Paid {
				return fmt.Errorf("ledger audit: contract %s paid %s but its journal sums to %s, its largest amount %s", r.ID, r.Paid, sum, top)
			}
			k := escrowKey(r.Requester, r.Deployment)
			if deps[k] == nil {
				deps[k] = &depSum{}
			}
			deps[k].paid += r.Paid
			if !r.Closed {
				deps[k].open++
			}
			if total, err = add(total, r.Paid); err != nil {
				return fmt.Errorf("ledger audit: %w", err)
			}
		}
		if total != paid {
			return fmt.Errorf("ledger audit: contracts paid %s, accounts %s", total, paid)
		}
		es, err := escrows.List(tx, "")
		if err != nil {
			return err
		}
		escrow := map[identity.DID]match.Money{}
		for _, e := range es {
			k := escrowKey(e.Requester, e.Deployment)
			d := deps[k]
			if d == nil {
				d = &depSum{}
			}
			delete(deps, k)
			if e.Paid != d.paid || e.Open != d.open {
				return fmt.Errorf("ledger audit: deployment %s: escrow counts %s paid by %d open contracts, the contracts %s by %d", e.Deployment, e.Paid, e.Open, d.paid, d.open)
			}
			if e.Held != e.target() {
				return fmt.Errorf("ledger audit: deployment %s holds %s in escrow, want %s", e.Deployment, e.Held, e.target())
			}
			escrow[e.Requester] += e.Held
		}
		for k := range deps {
			return fmt.Errorf("ledger audit: contracts of %q have no escrow record", k)
		}
		for _, a := range accs {
			if a.Escrowed != escrow[a.DID] {
				return fmt.Errorf("ledger audit: %s escrows %s, its deployments hold %s", a.DID, a.Escrowed, escrow[a.DID])
			}
		}
		return nil
	})
}

// validID reports whether id looks like a contract ID: the lower-case hex
// SHA-256 of the terms.
func validID(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// account reads did's account, zero when absent.
func account(tx *store.Tx, did identity.DID) (contract.Balance, error) {
	b, err := accounts.Get(tx, string(did))
	if errors.Is(err, store.ErrNotFound) {
		return contract.Balance{DID: did}, nil
	}
	return b, err
}

// add adds two amounts, failing above MaxMoney.
func add(a, b match.Money) (match.Money, error) {
	if b > 0 && a > math.MaxInt64-b {
		return a, ErrOverflow
	}
	return a + b, nil
}

// wrap adds context to a store error; refusals pass through unchanged.
func wrap(op, id string, err error) error {
	if err == nil {
		return nil
	}
	var r *contract.RefusalError
	if errors.As(err, &r) {
		return err
	}
	return fmt.Errorf("ledger: %s %s: %w", op, id, err)
}
