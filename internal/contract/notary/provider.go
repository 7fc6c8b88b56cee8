package notary

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/store"
)

// pentry is a provider contract. After Sign or Open hand it over, only
// the scheduler goroutine touches it.
type pentry struct {
	r    row
	c    *contract.Contract
	last *contract.SignedNote // r.Last decoded
	acc  *contract.SignedNote // r.Accepted decoded
	busy bool                 // a job is out
	tick time.Time            // the due time of the current attempt
	done bool                 // nothing more to do: leave the heap
	// settledAt is the tick of the last note settled in the ledger, or
	// when the contract became active or was loaded: notes settle
	// Config.SettleEvery after it.
	settledAt time.Time
}

// Batching of the provider's store writes: a tick starts every contract
// due within tickWindow, and the scheduler commits what the workers
// returned flushWindow after the first issued note not committed, or
// lazyFlushWindow after the first countersignature or refusal (a
// countersigned note lost in a crash is sent again, and the requester
// answers with its countersigned copy).
const (
	tickWindow      = time.Second
	flushWindow     = 100 * time.Millisecond
	lazyFlushWindow = time.Second
)

func (p *pentry) interval() time.Duration { return p.c.Terms().Interval }

// pending reports whether the last note was issued but neither
// countersigned nor refused: it is sent again, not replaced.
func (p *pentry) pending() bool {
	return p.last != nil && !p.r.Refused && (p.acc == nil || p.last.Hash != p.acc.Hash)
}

// Sign is the provider's side of a commit: it checks the contract against
// what was bid, signs it, opens it in the ledger, keeps it and starts
// noting it. It returns the provider's signature. Signing a contract
// again returns the signature given before. c is not modified.
func (n *Notary) Sign(c *contract.Contract, want Expect) ([]byte, error) {
	if c == nil {
		return nil, &contract.RefusalError{Err: contract.ErrMalformed, Detail: "no contract"}
	}
	cc := &contract.Contract{ID: c.ID, Body: clone(c.Body), RequesterSig: clone(c.RequesterSig)}
	if err := cc.Open(); err != nil {
		return nil, err
	}
	t := cc.Terms()
	switch {
	case t.Provider != n.cfg.Key.DID():
		return nil, &contract.RefusalError{Err: contract.ErrWrongParty, Detail: fmt.Sprintf("contract %s names provider %s, this node is %s", cc.ID, t.Provider.Short(), n.cfg.Key.DID().Short())}
	case t.Requester != want.Requester:
		return nil, &contract.RefusalError{Err: contract.ErrWrongParty, Detail: fmt.Sprintf("contract %s names requester %s, the commit came from %s", cc.ID, t.Requester.Short(), want.Requester.Short())}
	case t.Deployment != want.Deployment:
		return nil, &contract.RefusalError{Err: contract.ErrTerms, Detail: fmt.Sprintf("contract %s is for deployment %q, the commit for %q", cc.ID, t.Deployment, want.Deployment)}
	case t.Reservation != want.Reservation:
		return nil, &contract.RefusalError{Err: contract.ErrTerms, Detail: fmt.Sprintf("contract %s is for reservation %q, the commit for %q", cc.ID, t.Reservation, want.Reservation)}
	}
	if want.Terms != nil {
		if err := want.Terms(t); err != nil {
			var re *contract.RefusalError
			if errors.As(err, &re) {
				return nil, err
			}
			return nil, &contract.RefusalError{Err: contract.ErrTerms, Detail: err.Error()}
		}
	}
	key := rowKey(cc.ID, RoleProvider)
	var old row
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		c, err := contracts.Get(tx, key)
		if err != nil {
			return err
		}
		old, err = loadRow(tx, c)
		return err
	})
	switch {
	case err == nil:
		return clone(old.Contract.ProviderSig), nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("notary: contract %s: %w", cc.ID, err)
	}
	if err := cc.SignAsProvider(n.cfg.Key); err != nil {
		return nil, err
	}
	if err := n.cfg.Ledger.Open(context.Background(), cc); err != nil {
		return nil, fmt.Errorf("notary: open contract %s in the ledger: %w", cc.ID, err)
	}
	now := n.now()
	p := &pentry{c: cc, r: row{
		ID: cc.ID, Role: RoleProvider, Deployment: t.Deployment, Reservation: t.Reservation,
		State: StateActive, Contract: storeContract(cc), Updated: now, Quiet: now,
	}, tick: now, settledAt: now}
	if err := n.cfg.DB.Update(func(tx *store.Tx) error {
		if err := putContract(tx, &p.r); err != nil {
			return err
		}
		return putState(tx, &p.r)
	}); err != nil {
		return nil, fmt.Errorf("notary: store contract %s: %w", cc.ID, err)
	}
	n.mu.Lock()
	n.added = append(n.added, p)
	n.mu.Unlock()
	n.signal()
	return clone(cc.ProviderSig), nil
}

// repairProvider resumes a provider contract loaded by Open.
func (n *Notary) repairProvider(ctx context.Context, p *pentry, now time.Time) {
	if p.acc != nil && !p.r.LedgerClosed {
		if _, err := n.cfg.Ledger.Settle(ctx, p.acc); err != nil {
			n.log.Error("settle again", "contract_id", p.r.ID, "err", err)
		}
	}
	finalAccepted := p.acc != nil && p.acc.Note().Final
	switch {
	case finalAccepted:
		if !p.r.LedgerClosed {
			if err := n.cfg.Ledger.Close(ctx, p.r.ID); err != nil {
				n.log.Error("close in the ledger", "contract_id", p.r.ID, "err", err)
			}
		}
		return
	case p.r.State == StateActive:
		p.r.Quiet = now // two fresh intervals after a restart
	case p.r.State == StateStopped && p.r.FinalTries < maxFinalTries:
	default:
		return
	}
	p.tick, p.settledAt = now, now
	n.added = append(n.added, p)
}

// jobKind is what a worker does.
type jobKind int

const (
	jobNote   jobKind = iota // meter, issue
	jobStop                  // stop the allocations, then meter and issue the final note
	jobSend                  // send the note, check the countersignature
	jobSettle                // settle the countersigned note (close when final)
	jobGrace                 // end a requester contract's grace
)

type job struct {
	kind   jobKind
	p      *pentry
	final  bool   // jobNote: the final note
	reason string // jobStop
	note   *contract.SignedNote
	id     string // jobGrace
	// verify (jobSend): verify the countersignature, and settle the note
	// once it is stored (see sendJob).
	verify bool
}

type result struct {
	job
	issued  *contract.SignedNote // jobNote, jobStop
	skip    bool                 // jobNote: usage unchanged, nothing issued
	answer  *contract.SignedNote // jobSend: countersigned
	stopped bool                 // jobStop: Stop succeeded
	closed  bool                 // jobSettle: the ledger closed the contract
	err     error
}

// item is a due time in the heap: a provider contract's next tick or a
// requester contract's end of grace.
type item struct {
	due   time.Time
	p     *pentry
	grace string
}

type dueHeap []item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = item{}
	*h = old[:len(old)-1]
	return x
}

// sched is Run's state, owned by its goroutine.
type sched struct {
	n     *Notary
	heap  dueHeap
	queue []job
	// written by the last batch: to persist (states, and the notes issued
	// or countersigned), and the jobs to start once persisted.
	dirty map[*pentry]bool
	notes []*contract.SignedNote
	after []job
	// inflight counts the jobs the workers hold.
	inflight int
	// flushing: the flush timer is armed, to fire at flushAt.
	flushing bool
	flushAt  time.Time
	// sends counts the sends in after (issued notes waiting for the
	// commit).
	sends int
}

// Run meters and notes the provider-side contracts, and ends the graces
// of abandoned requester contracts, until ctx is done. Call it once.
func (n *Notary) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job)
	results := make(chan result, n.cfg.Workers)
	var wg sync.WaitGroup
	for range n.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-jobs:
					r := n.work(ctx, j)
					select {
					case results <- r:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	defer wg.Wait()

	s := &sched{n: n, dirty: map[*pentry]bool{}}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	for {
		// A tick: when the first item is due, every item due within
		// tickWindow starts with it.
		s.adopt()
		if now := n.now(); len(s.heap) > 0 && !s.heap[0].due.After(now) {
			s.popDue(now.Add(tickWindow))
		}
		if len(s.heap) > 0 {
			timer.Reset(max(s.heap[0].due.Sub(n.now()), 0))
		} else {
			timer.Reset(time.Hour)
		}
		var out chan job
		var head job
		if len(s.queue) > 0 {
			out, head = jobs, s.queue[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-timer.C:
		case <-flush.C:
			s.flushing = false
			s.persist()
		case out <- head:
			s.queue[0] = job{}
			s.queue = s.queue[1:]
			s.inflight++
		case r := <-results:
			s.inflight--
			s.handle(r)
			for more := true; more; {
				select {
				case r := <-results:
					s.inflight--
					s.handle(r)
				default:
					more = false
				}
			}
			if len(s.dirty) > 0 || len(s.notes) > 0 || len(s.after) > 0 {
				// Issued notes wait for the commit to be sent; the
				// rest (countersignatures, refusals) can wait longer.
				d := lazyFlushWindow
				if s.sends > 0 {
					d = flushWindow
				}
				if at := n.now().Add(d); !s.flushing || at.Before(s.flushAt) {
					flush.Reset(d)
					s.flushing, s.flushAt = true, at
				}
			}
		}
	}
}

// adopt takes the contracts handed over by Sign, Open and Abandon.
func (s *sched) adopt() {
	n := s.n
	n.mu.Lock()
	added, graces := n.added, n.graces
	n.added, n.graces = nil, nil
	n.mu.Unlock()
	for _, p := range added {
		heap.Push(&s.heap, item{due: p.tick.Add(p.interval()), p: p})
	}
	for _, g := range graces {
		heap.Push(&s.heap, item{due: g.due, grace: g.id})
	}
}

// popDue starts the work of every item due by now.
func (s *sched) popDue(now time.Time) {
	real := s.n.now()
	for len(s.heap) > 0 && !s.heap[0].due.After(now) {
		it := heap.Pop(&s.heap).(item)
		if it.grace != "" {
			s.queue = append(s.queue, job{kind: jobGrace, id: it.grace})
			continue
		}
		p := it.p
		if p.done {
			continue
		}
		iv := p.interval()
		next := it.due.Add(iv)
		if !next.After(real) { // behind: skip the missed ticks
			next = it.due.Add(iv * (real.Sub(it.due)/iv + 1))
		}
		heap.Push(&s.heap, item{due: next, p: p})
		if p.busy {
			continue
		}
		p.tick = it.due
		switch p.r.State {
		case StateActive:
			if p.pending() {
				s.start(s.sendJob(p, p.last))
			} else {
				s.start(job{kind: jobNote, p: p})
			}
		case StateStopped:
			if p.r.FinalTries >= maxFinalTries {
				s.n.log.Warn("final note not countersigned, giving up", "contract_id", p.r.ID, "tries", p.r.FinalTries)
				p.done = true
				// What was countersigned is owed: settle it now, as the
				// requester does, rather than at the next restart.
				if p.acc != nil && !p.r.LedgerClosed {
					s.start(job{kind: jobSettle, p: p, note: p.acc})
				}
				continue
			}
			p.r.FinalTries++
			s.dirty[p] = true
			if p.pending() && p.last.Note().Final {
				s.start(s.sendJob(p, p.last))
			} else {
				s.start(job{kind: jobNote, p: p, final: true})
			}
		default:
			p.done = true
		}
	}
}

// sendJob sends note sn of p. Its countersignature is verified when the
// note is to be settled: when it is final, or when p's last settlement
// is Config.SettleEvery old (in ticks: due times). The others are taken as they come: the
// answer comes over the authenticated link from the requester, the
// notes are cumulative (the settled one covers those before it), and the
// ledger verifies what it settles again. A countersignature that does
// not verify when it is checked is a failure like an undelivered note:
// the note is not accepted, nor settled (nothing is paid for it), it is
// sent again at the next tick, and the contract stops after two
// intervals without a countersignature.
func (s *sched) sendJob(p *pentry, sn *contract.SignedNote) job {
	verify := sn.Note().Final || p.tick.Sub(p.settledAt) >= s.n.cfg.SettleEvery
	return job{kind: jobSend, p: p, note: sn, verify: verify}
}

func (s *sched) start(j job) {
	if j.p != nil {
		j.p.busy = true
	}
	s.queue = append(s.queue, j)
}

// handle applies a worker's result.
func (s *sched) handle(r result) {
	p := r.p
	log := s.n.log
	switch r.kind {
	case jobGrace:
		return
	case jobSettle:
		if r.err != nil {
			log.Error("settle", "contract_id", p.r.ID, "err", r.err)
		}
		if r.closed {
			p.r.LedgerClosed = true
			s.dirty[p] = true
		}
		return
	case jobStop:
		if !r.stopped {
			log.Error("stop allocations", "contract_id", p.r.ID, "reservation", p.r.Reservation, "err", r.err)
			p.busy = false // tried again after the next note fails
			return
		}
		log.Warn("allocations stopped", "contract_id", p.r.ID, "reservation", p.r.Reservation, "reason", r.reason)
		p.r.State, p.r.Reason, p.r.FinalTries = StateStopped, r.reason, 1
		s.dirty[p] = true
		fallthrough
	case jobNote:
		switch {
		case r.err != nil:
			log.Warn("note not issued", "contract_id", p.r.ID, "err", r.err)
			p.r.Refusal, p.r.BudgetRefused = r.err.Error(), false
			p.busy = false
			s.checkQuiet(p)
		case r.skip:
			p.r.Quiet = p.tick // nothing owed
			p.busy = false
		default:
			// The note is stored under its seq until countersigned; the
			// state with it only when it said the last note was refused.
			if p.r.Refused {
				s.dirty[p] = true
			}
			p.last = r.issued
			p.r.Last, p.r.Refused = storeNote(r.issued), false
			s.notes = append(s.notes, r.issued)
			s.after = append(s.after, s.sendJob(p, r.issued))
			s.sends++
		}
	case jobSend:
		p.busy = false
		var ae *actor.Error
		switch {
		case r.err == nil:
			// The countersigned note is stored; the state with it only
			// when more than the note changed, or when it settles (the
			// state's seq is caught up at load, see stateRow).
			changed := p.r.Refusal != "" || p.r.BudgetRefused || r.answer.Note().Final
			p.last, p.acc = r.answer, r.answer
			p.r.Accepted, p.r.AcceptedSeq = storeNote(r.answer), r.answer.Note().Seq
			p.r.Last = p.r.Accepted
			p.r.Quiet, p.r.Refusal, p.r.BudgetRefused = p.tick, "", false
			if r.answer.Note().Final {
				p.r.State, p.done = StateClosed, true
			}
			s.notes = append(s.notes, r.answer)
			if r.verify { // a note to settle: its countersignature verified
				p.settledAt = p.tick
				s.after = append(s.after, job{kind: jobSettle, p: p, note: r.answer})
				changed = true
			}
			if changed {
				s.dirty[p] = true
			}
		case errors.As(r.err, &ae) && (ae.Code == deployproto.CodeBudget || ae.Code == deployproto.CodeNoteRefused):
			log.Warn("note refused", "contract_id", p.r.ID, "seq", r.note.Note().Seq, "err", r.err)
			p.r.Refused, p.r.Refusal, p.r.BudgetRefused = true, ae.Msg, ae.Code == deployproto.CodeBudget
			s.dirty[p] = true
			s.checkQuiet(p)
		case errors.Is(r.err, contract.ErrSignature):
			// Not accepted, not settled: sent again at the next tick.
			log.Warn("countersignature refused", "contract_id", p.r.ID, "seq", r.note.Note().Seq, "err", r.err)
			p.r.Refusal, p.r.BudgetRefused = r.err.Error(), false
			s.dirty[p] = true
			s.checkQuiet(p)
		default:
			log.Debug("note not delivered", "contract_id", p.r.ID, "seq", r.note.Note().Seq, "err", r.err)
			p.r.Refusal, p.r.BudgetRefused = r.err.Error(), false
			s.checkQuiet(p)
		}
	}
}

// checkQuiet stops an active contract whose notes were not countersigned
// for two intervals.
func (s *sched) checkQuiet(p *pentry) {
	if p.r.State != StateActive || p.busy || p.tick.Before(p.r.Quiet.Add(2*p.interval())) {
		return
	}
	reason := ReasonBudget
	if !p.r.BudgetRefused {
		reason = "notes not countersigned: " + p.r.Refusal
	}
	s.start(job{kind: jobStop, p: p, reason: reason})
}

// persist writes what the last results changed in one transaction, then
// starts the jobs that wait for it.
func (s *sched) persist() {
	if len(s.dirty) == 0 && len(s.notes) == 0 {
		s.queue = append(s.queue, s.after...)
		s.after, s.sends = s.after[:0], 0
		return
	}
	now := s.n.now()
	s.n.commits.Add(1)
	s.n.writes.Add(int64(len(s.dirty)))
	err := s.n.cfg.DB.Update(func(tx *store.Tx) error {
		for p := range s.dirty {
			p.r.Updated = now
			if err := putState(tx, &p.r); err != nil {
				return err
			}
		}
		for _, sn := range s.notes {
			if err := putAccepted(tx, RoleProvider, sn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Nothing unstored is sent: the issued notes are dropped (the
		// next tick issues new ones); countersigned ones stay in memory
		// and are written with the next batch.
		s.n.log.Error("store notes", "err", err)
		for _, j := range s.after {
			if j.kind == jobSend {
				j.p.r.Refused = true
				j.p.busy = false
			}
		}
		s.after, s.sends = s.after[:0], 0
		kept := s.notes[:0]
		for _, sn := range s.notes {
			if len(sn.RequesterSig) > 0 {
				kept = append(kept, sn)
			}
		}
		s.notes = kept
		return
	}
	clear(s.dirty)
	s.notes = s.notes[:0]
	s.queue = append(s.queue, s.after...)
	s.after, s.sends = s.after[:0], 0
}

// work runs one job in a worker.
func (n *Notary) work(ctx context.Context, j job) result {
	r := result{job: j}
	switch j.kind {
	case jobGrace:
		n.expireGrace(ctx, j.id)
	case jobStop:
		if n.cfg.Stop == nil {
			r.err = errors.New("no Stop configured")
			return r
		}
		sctx, cancel := context.WithTimeout(ctx, callTimeout(j.p.interval()))
		err := n.cfg.Stop(sctx, j.p.r.Reservation, j.reason)
		cancel()
		if err != nil {
			r.err = err
			return r
		}
		r.stopped = true
		r.issued, r.err = n.issue(ctx, j.p, true)
	case jobNote:
		r.issued, r.err = n.issue(ctx, j.p, j.final)
		r.skip = r.err == nil && r.issued == nil
	case jobSend:
		if n.cfg.Send == nil {
			r.err = errors.New("no Send configured")
			return r
		}
		sctx, cancel := context.WithTimeout(ctx, callTimeout(j.p.interval()))
		ans, err := n.cfg.Send(sctx, j.p.c, j.note)
		cancel()
		switch {
		case err != nil:
			r.err = err
		case ans == nil || ans.Hash != j.note.Hash:
			r.err = fmt.Errorf("the requester answered note %d with another note", j.note.Note().Seq)
		default:
			// A copy of the note as issued (its own signature is not
			// verified again) with the requester's signature, verified
			// when the note is to be settled (see sendJob).
			cp := *j.note
			cs := &cp
			cs.RequesterSig = clone(ans.RequesterSig)
			if len(cs.RequesterSig) != ed25519.SignatureSize || (j.verify && !cs.Accepted(j.p.c)) {
				r.err = &contract.RefusalError{Err: contract.ErrSignature, Detail: fmt.Sprintf("the requester's countersignature of note %d of contract %s does not verify", j.note.Note().Seq, j.p.r.ID)}
				return r
			}
			r.answer = cs
		}
	case jobSettle:
		if _, err := n.cfg.Ledger.Settle(ctx, j.note); err != nil {
			r.err = err
			return r
		}
		if j.note.Note().Final {
			if err := n.cfg.Ledger.Close(ctx, j.p.r.ID); err != nil {
				r.err = err
				return r
			}
			r.closed = true
		}
	}
	return r
}

// callTimeout bounds one Send or Stop call.
func callTimeout(iv time.Duration) time.Duration { return min(max(iv, time.Second), 30*time.Second) }

// issue meters p's reservation and signs its next note, chained to the
// last countersigned one; nil when the usage did not change (and the
// note is not final). A stopped contract's final note falls back to the
// last countersigned usage when metering fails.
func (n *Notary) issue(ctx context.Context, p *pentry, final bool) (*contract.SignedNote, error) {
	var base contract.Usage
	if p.acc != nil {
		base = p.acc.Note().Usage
	}
	var (
		u     contract.Usage
		ended bool
		err   error
	)
	if n.cfg.Meter == nil {
		err = errors.New("no Meter configured")
	} else {
		u, ended, err = n.cfg.Meter(ctx, p.r.Reservation)
	}
	if err != nil {
		if !final {
			return nil, fmt.Errorf("meter: %w", err)
		}
		n.log.Warn("final note with the last countersigned usage", "contract_id", p.r.ID, "err", err)
		u = base
	}
	// Counters never go back, even if the meter lost some.
	u.CPUMicros = max(u.CPUMicros, base.CPUMicros)
	u.MemoryByteSeconds = max(u.MemoryByteSeconds, base.MemoryByteSeconds)
	u.WallMillis = max(u.WallMillis, base.WallMillis)
	u.NetBytes = max(u.NetBytes, base.NetBytes)
	final = final || ended
	if !final && u == base {
		return nil, nil
	}
	sn, err := p.c.Issue(n.cfg.Key, p.acc, n.now(), u, final)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	n.issued.Add(1)
	return sn, nil
}
