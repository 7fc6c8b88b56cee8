package notary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// saveLatest is a write of e's state as it is when the batch commits
// (with its contract when withContract, and the countersigned notes
// also): a later state supersedes an earlier one, so concurrent changes
// of one contract never leave an older state on disk.
func (n *Notary) saveLatest(e *rentry, withContract bool, also ...*contract.SignedNote) *write {
	return n.save(e, withContract, true, also...)
}

// save is saveLatest, without the state when !withState (a countersigned
// note alone).
func (n *Notary) save(e *rentry, withContract, withState bool, also ...*contract.SignedNote) *write {
	return n.saveSettling(e, withContract, withState, nil, also...)
}

// txLedger is a ledger that settles within the notary's store commits
// (ledger.Local): a countersigned note and its settlement then share
// one commit.
type txLedger interface {
	Prepare(ctx context.Context, n *contract.SignedNote) (*ledger.Settlement, error)
}

// settling is a settlement that goes with a write (saveSettling): st is
// set before the write is committed; applied and err say how it went
// once it is.
type settling struct {
	st      *ledger.Settlement
	applied bool
	err     error // a refusal of the ledger's (the write goes on without it)
}

// saveSettling is save, with the settlement of sl (when sl and sl.st
// are set) in the same transaction.
func (n *Notary) saveSettling(e *rentry, withContract, withState bool, sl *settling, also ...*contract.SignedNote) *write {
	return newWrite(func(tx *store.Tx) error {
		n.mu.Lock()
		r := e.r
		n.mu.Unlock()
		if withContract {
			if err := putContract(tx, &r); err != nil {
				return err
			}
		}
		if withState {
			if err := putState(tx, &r); err != nil {
				return err
			}
		}
		for _, sn := range also {
			if err := putAccepted(tx, RoleRequester, sn); err != nil {
				return err
			}
		}
		if sl != nil && sl.st != nil {
			_, err := sl.st.Apply(tx)
			var refusal *contract.RefusalError
			switch {
			case errors.As(err, &refusal): // it wrote nothing
				sl.err = err
			case err != nil:
				return err
			default:
				sl.applied = true
			}
		}
		return nil
	})
}

// repairRequester settles again what a crash may have left unsettled and
// schedules the end of a grace (Open).
func (n *Notary) repairRequester(ctx context.Context, e *rentry, now time.Time) {
	if e.r.LedgerClosed || e.r.State == StateProposed {
		return
	}
	if e.acc != nil {
		n.settle(ctx, e, e.r.ID, e.acc, now)
	}
	waiting := !e.r.Grace.IsZero() && !e.finalAccepted() // abandoned, or its deployment ended
	switch {
	case waiting && e.r.Grace.After(now):
		n.graces = append(n.graces, graceItem{id: e.r.ID, due: e.r.Grace})
	case waiting:
		n.expireGrace(ctx, e.r.ID) // the grace ended while the node was down
	case e.r.State == StateClosed || e.r.State == StateClosedNoInvoice:
		n.closeLedger(ctx, e, e.r.ID)
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
	if old := n.req[c.ID]; old != nil { // the same terms proposed again
		n.mu.Unlock()
		return old.c, nil
	}
	n.req[c.ID] = e
	n.byDep[tt.Deployment] = append(n.byDep[tt.Deployment], e)
	n.mu.Unlock()
	if err := n.batch.do(n.saveLatest(e, true), false); err != nil {
		n.mu.Lock()
		delete(n.req, c.ID)
		dep := n.byDep[tt.Deployment]
		for i, o := range dep {
			if o == e {
				n.byDep[tt.Deployment] = append(dep[:i:i], dep[i+1:]...)
				break
			}
		}
		n.mu.Unlock()
		return nil, fmt.Errorf("notary: store contract %s: %w", c.ID, err)
	}
	return c, nil
}

// Agree completes a proposed contract with the provider's signature from
// the commit reply, checks it, opens it in the ledger and makes it active.
// Agreeing again with the same signature does nothing.
func (n *Notary) Agree(id string, providerSig []byte) error {
	n.mu.Lock()
	e := n.req[id]
	if e == nil {
		n.mu.Unlock()
		return &contract.RefusalError{Err: contract.ErrUnknown, Detail: "no contract " + id + " proposed here"}
	}
	if e.r.State != StateProposed {
		same := string(e.c.ProviderSig) == string(providerSig)
		state := e.r.State
		n.mu.Unlock()
		if same {
			return nil
		}
		return &contract.RefusalError{Err: contract.ErrClosed, Detail: fmt.Sprintf("contract %s is %s", id, state)}
	}
	c := *e.c
	n.mu.Unlock()
	c.ProviderSig = clone(providerSig)
	if err := c.Open(); err != nil || !c.Signed() { // Open keeps the verified signatures: notes do not verify them again
		return &contract.RefusalError{Err: contract.ErrSignature, Detail: "the provider's signature of contract " + id + " does not verify"}
	}
	if err := n.cfg.Ledger.Open(context.Background(), &c); err != nil {
		return fmt.Errorf("notary: open contract %s in the ledger: %w", id, err)
	}
	n.mu.Lock()
	if e.r.State != StateProposed { // agreed, abandoned or ended meanwhile
		closed := e.r.State == StateClosed && e.r.Grace.IsZero()
		n.mu.Unlock()
		if closed { // opened in the ledger just now: close it again
			n.closeLedger(context.Background(), e, id)
		}
		return nil
	}
	old := e.r
	e.c = &c
	e.r.State, e.r.Contract, e.r.Updated = StateActive, storeContract(&c), n.now()
	e.settledAt = e.r.Updated
	n.mu.Unlock()
	if err := n.batch.do(n.saveLatest(e, true), false); err != nil {
		n.mu.Lock()
		if e.r.State == StateActive {
			e.r = old
		}
		n.mu.Unlock()
		return fmt.Errorf("notary: store contract %s: %w", id, err)
	}
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
	if e.r.State == StateActive && !e.finalAccepted() {
		e.r.Grace = now.Add(2 * e.c.Terms().Interval)
		n.graces = append(n.graces, graceItem{id: id, due: e.r.Grace})
	}
	e.r.State, e.r.Reason, e.r.Updated = StateClosed, reason, now
	n.mu.Unlock()
	n.signal()
	if err := n.batch.do(n.saveLatest(e, false), false); err != nil {
		return fmt.Errorf("notary: store contract %s: %w", id, err)
	}
	return nil
}

// End is told that a deployment ended (shut down, completed, failed;
// reason says how): each of its active requester contracts without an
// invoice waits for one two intervals more, then is closed at its last
// countersigned note (StateClosedNoInvoice: settled, and closed in the
// ledger). A proposed contract is closed at once. Ending a deployment
// again, or one with no contracts here, does nothing.
//
// An invoice that comes after the close is still accepted: it must
// follow the countersigned chain (contract.CheckNote) and keep the
// deployment within its budget; the ledger then pays its amount less
// what the contract paid, so it is never paid twice.
func (n *Notary) End(deployment, reason string) error {
	now := n.now()
	var changed []*rentry
	n.mu.Lock()
	for _, e := range n.byDep[deployment] {
		switch {
		case e.r.State == StateProposed:
			e.r.State, e.r.Reason = StateClosed, "deployment ended before the provider signed ("+reason+")"
		case e.r.State == StateActive && e.r.Grace.IsZero() && !e.finalAccepted():
			e.r.Grace, e.r.Reason = now.Add(2*e.c.Terms().Interval), "deployment ended ("+reason+"), awaiting the invoice"
			n.graces = append(n.graces, graceItem{id: e.r.ID, due: e.r.Grace})
		default:
			continue
		}
		e.r.Updated = now
		changed = append(changed, e)
	}
	n.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	n.signal()
	w := newWrite(func(tx *store.Tx) error {
		for _, e := range changed {
			n.mu.Lock()
			r := e.r
			n.mu.Unlock()
			if err := putState(tx, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err := n.batch.do(w, false); err != nil {
		return fmt.Errorf("notary: store the end of deployment %s: %w", deployment, err)
	}
	return nil
}

// expireGrace ends the grace of an abandoned contract, or the wait for
// the invoice of a contract whose deployment ended (End): the contract
// is closed-no-invoice, its last countersigned note settled and the
// contract closed in the ledger.
func (n *Notary) expireGrace(ctx context.Context, id string) {
	n.mu.Lock()
	e := n.req[id]
	if e == nil || e.r.LedgerClosed || e.r.Grace.IsZero() || e.r.Grace.After(n.now()) || e.finalAccepted() {
		n.mu.Unlock()
		return
	}
	switch e.r.State {
	case StateClosed, StateActive: // abandoned, or its deployment ended: no invoice came
		e.r.State, e.r.Updated = StateClosedNoInvoice, n.now()
		e.r.Reason = "no invoice within two intervals: " + strings.TrimSuffix(e.r.Reason, ", awaiting the invoice")
	default:
		n.mu.Unlock()
		return
	}
	var last *contract.SignedNote
	if e.acc != nil && e.settled < e.acc.Note().Seq {
		last = e.acc
	}
	n.mu.Unlock()
	if last != nil {
		n.settle(ctx, e, id, last, n.now())
	}
	n.closeLedger(ctx, e, id)
}

// closeLedger closes e in the ledger and stores its state (whatever the
// ledger says). A contract the ledger never opened (closed while
// proposed) counts as closed there. Callers hold no lock.
func (n *Notary) closeLedger(ctx context.Context, e *rentry, id string) {
	err := n.cfg.Ledger.Close(ctx, id)
	if err != nil && !errors.Is(err, contract.ErrUnknown) {
		n.log.Error("close in the ledger", "contract_id", id, "err", err)
	}
	n.mu.Lock()
	if err == nil || errors.Is(err, contract.ErrUnknown) {
		e.r.LedgerClosed = true
	}
	n.mu.Unlock()
	if err := n.batch.do(n.saveLatest(e, false), false); err != nil {
		n.log.Error("store contract", "contract_id", id, "err", err)
	}
}

// settle settles a countersigned note in the ledger; a failure is logged
// (a later note or the next Open settles it). Callers hold no lock.
func (n *Notary) settle(ctx context.Context, e *rentry, id string, cs *contract.SignedNote, at time.Time) {
	if _, err := n.cfg.Ledger.Settle(ctx, cs); err != nil {
		n.log.Error("settle", "contract_id", id, "seq", cs.Note().Seq, "err", err)
		return
	}
	n.settled(e, cs.Note().Seq, at)
}

// settled records that e's note seq was settled at at.
func (n *Notary) settled(e *rentry, seq uint64, at time.Time) {
	n.mu.Lock()
	if seq > e.settled {
		e.settled, e.settledAt = seq, at
	}
	n.mu.Unlock()
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
	id, t := e.r.ID, e.c.Terms()
	if from != t.Provider {
		n.mu.Unlock()
		return contract.SignedNote{}, refusef(contract.ErrWrongParty, "note of contract %s sent by %s, not its provider %s", id, from.Short(), t.Provider.Short())
	}
	accSeq := seqOfNote(e.acc)
	redelivery := e.acc != nil && sn.Hash == e.acc.Hash
	n.mu.Unlock()
	// An older note this node countersigned: a replay.
	if note.Seq < accSeq && n.wasAccepted(sn) {
		return contract.SignedNote{}, refusef(contract.ErrReplay, "note %d of contract %s was countersigned before", note.Seq, id)
	}
	// The provider's signature, verified with the other notes that
	// arrive meanwhile, outside the lock (CheckNote below then does not
	// verify it again); a re-delivery is answered with its copy.
	if !redelivery && !n.sigs.verify(t.Provider, &sn) {
		return contract.SignedNote{}, refusef(contract.ErrSignature, "note %d of contract %s is not signed by its provider %s", note.Seq, id, t.Provider.Short())
	}

	n.mu.Lock()
	if e.acc != nil && sn.Hash == e.acc.Hash {
		// A re-delivery of the last countersigned note: its copy again,
		// once it is stored.
		cp, w := *e.acc, e.accWrite
		n.mu.Unlock()
		if w != nil {
			if err := w.wait(); err != nil {
				return contract.SignedNote{}, fmt.Errorf("notary: store note %d of contract %s: %w", note.Seq, id, err)
			}
		}
		return cp, nil
	}
	now := n.now()
	switch e.r.State {
	case StateProposed:
		n.mu.Unlock()
		return contract.SignedNote{}, refusef(contract.ErrTerms, "contract %s is not signed by its provider yet", id)
	case StateClosed, StateClosedNoInvoice:
		// Within the grace of an abandoned contract, any note; after it,
		// only a late invoice (checked against the chain like any note;
		// the ledger pays what it adds, once).
		inGrace := !e.r.Grace.IsZero() && now.Before(e.r.Grace)
		if e.finalAccepted() || !inGrace && !note.Final {
			reason := e.r.Reason
			n.mu.Unlock()
			return contract.SignedNote{}, refusef(contract.ErrClosed, "contract %s is closed (%s)", id, reason)
		}
	}
	if err := contract.CheckNote(e.c, e.acc, &sn); err != nil {
		n.mu.Unlock()
		return contract.SignedNote{}, refuse(err)
	}
	if n.spent[t.Deployment] && !note.Final {
		// The budget was spent (in this run or before a restart): no
		// more notes but invoices, which the budget check below bounds.
		tell := !n.exhausted[t.Deployment]
		n.exhausted[t.Deployment] = true
		n.mu.Unlock()
		if tell && n.cfg.Exhausted != nil {
			n.cfg.Exhausted(t.Deployment, ReasonBudget)
		}
		return contract.SignedNote{}, refusef(contract.ErrBudget, "the budget of deployment %s is spent", t.Deployment)
	}
	var others match.Money
	for _, o := range n.byDep[t.Deployment] {
		if o != e && o.acc != nil {
			others = addMoney(others, o.acc.Note().Amount)
		}
	}
	if err := contract.CheckBudget(t, others, note.Amount); err != nil {
		var tell, persist bool
		if errors.Is(err, contract.ErrBudget) {
			tell = !n.exhausted[t.Deployment]
			n.exhausted[t.Deployment] = true
			persist = !n.spent[t.Deployment]
			n.spent[t.Deployment] = true
			e.r.Exhausted = e.r.Exhausted || persist
		}
		n.mu.Unlock()
		if persist {
			// Stored before the refusal is answered: a restarted
			// requester still refuses (and says so again).
			if serr := n.batch.do(n.saveLatest(e, false), false); serr != nil {
				n.log.Error("store the budget's exhaustion", "deployment_id", t.Deployment, "err", serr)
			}
		}
		if tell && n.cfg.Exhausted != nil {
			n.cfg.Exhausted(t.Deployment, ReasonBudget)
		}
		return contract.SignedNote{}, refuse(err)
	}
	// Accept: in memory now (the budget of the next notes counts it),
	// stored before the answer.
	cs := sn
	cs.Countersign(n.cfg.Key)
	oldR, oldAcc, oldWrite := e.r, e.acc, e.accWrite
	e.r.Accepted, e.r.AcceptedSeq, e.r.Updated = storeNote(&cs), note.Seq, now
	e.r.Last = e.r.Accepted
	if note.Final {
		switch e.r.State {
		case StateActive:
			e.r.State = StateClosed
			if !e.r.Grace.IsZero() { // End: the invoice it awaited
				e.r.Reason = ""
			}
		case StateClosedNoInvoice:
			e.r.State, e.r.Reason = StateClosed, "invoice after the close"
		}
	}
	settle := note.Final || now.Sub(e.settledAt) >= n.cfg.SettleEvery
	// The state goes with the note when it changed (closed) and when the
	// contract settles; otherwise the note alone. A ledger that can
	// settles in the same commit.
	var sl *settling
	txl, inTx := n.cfg.Ledger.(txLedger)
	if settle && inTx {
		sl = &settling{}
	}
	w := n.saveSettling(e, false, settle || e.r.State != oldR.State, sl, &cs)
	e.acc, e.accWrite = &cs, w
	n.mu.Unlock()

	if sl != nil {
		st, err := txl.Prepare(ctx, &cs)
		if err != nil {
			n.log.Error("settle", "contract_id", id, "seq", note.Seq, "err", err)
		}
		sl.st = st
	}
	if err := n.batch.do(w, true); err != nil {
		n.mu.Lock()
		if e.accWrite == w {
			e.r, e.acc, e.accWrite = oldR, oldAcc, oldWrite
		}
		n.mu.Unlock()
		return contract.SignedNote{}, fmt.Errorf("notary: store note %d of contract %s: %w", note.Seq, id, err)
	}
	n.countersigned.Add(1)
	switch {
	case sl != nil && sl.applied:
		n.settled(e, note.Seq, now)
	case sl != nil && sl.err != nil:
		n.log.Error("settle", "contract_id", id, "seq", note.Seq, "err", sl.err)
	case settle && !inTx:
		n.settle(ctx, e, id, &cs, now)
	}
	if note.Final {
		n.closeLedger(ctx, e, id)
	}
	return cs, nil
}

func seqOfNote(n *contract.SignedNote) uint64 {
	if n == nil {
		return 0
	}
	return n.Note().Seq
}

// wasAccepted reports whether sn is a note this node countersigned
// before.
func (n *Notary) wasAccepted(sn contract.SignedNote) bool {
	var nr noteRow
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		nr, err = notes.Get(tx, noteKey(sn.Note().Contract, RoleRequester, sn.Note().Seq))
		return err
	})
	return err == nil && nr.Note.Hash == sn.Hash && len(nr.Note.RequesterSig) > 0
}

// addMoney adds without overflowing.
func addMoney(a, b match.Money) match.Money {
	if a > match.MaxMoney-b {
		return match.MaxMoney
	}
	return a + b
}
