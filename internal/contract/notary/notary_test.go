package notary

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// wait lets d of virtual time pass, then waits for the bubble to settle.
func wait(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// checkAgree checks that both sides hold the same countersigned chain and
// that both ledgers moved its amount.
func checkAgree(t *testing.T, w *world, c *contract.Contract, wantSeq uint64) {
	t.Helper()
	pr, rr := w.prov.get(c.ID), w.req.get(c.ID)
	if seqOf(pr.Accepted) != wantSeq || seqOf(rr.Accepted) != wantSeq {
		t.Fatalf("accepted seq: provider %d, requester %d, want %d", seqOf(pr.Accepted), seqOf(rr.Accepted), wantSeq)
	}
	if pr.Accepted.Hash != rr.Accepted.Hash {
		t.Fatalf("provider accepted %s, requester %s", pr.Accepted.Hash, rr.Accepted.Hash)
	}
	for _, s := range []*side{w.prov, w.req} {
		ch, err := s.n.Chain(c.ID)
		if err != nil {
			t.Fatalf("%s: Chain: %v", s.name, err)
		}
		sum, err := contract.VerifyChain(ch)
		if err != nil {
			t.Fatalf("%s: VerifyChain: %v", s.name, err)
		}
		if sum.Accepted != int(wantSeq) || sum.Owed != amountOf(rr.Accepted) {
			t.Fatalf("%s: chain summary %+v, want %d accepted owing %s", s.name, sum, wantSeq, amountOf(rr.Accepted))
		}
	}
	owed := amountOf(rr.Accepted)
	if b := w.req.balance(w.req.key.DID()); b.Paid != owed {
		t.Errorf("requester's ledger: paid %s, want %s", b.Paid, owed)
	}
	if b := w.prov.balance(w.prov.key.DID()); b.Received != owed {
		t.Errorf("provider's ledger: received %s, want %s", b.Received, owed)
	}
}

func TestNotesFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		if r := w.req.get(c.ID); r.State != StateActive || r.Role != RoleRequester {
			t.Fatalf("requester record %s/%s, want active requester", r.State, r.Role)
		}
		wait(5*interval + interval/2)
		checkAgree(t, w, c, 5)
		if got := amountOf(w.req.get(c.ID).Accepted); got != 5_000_000 {
			t.Fatalf("amount after 5 notes = %s, want 5", got)
		}

		// The allocations end: the final note closes the contract on both
		// sides and in both ledgers.
		w.m.end(c.Terms().Reservation)
		wait(interval)
		checkAgree(t, w, c, 6)
		for _, s := range []*side{w.prov, w.req} {
			r := s.get(c.ID)
			if r.State != StateClosed || !r.Accepted.Note().Final {
				t.Fatalf("%s: state %s, final %v; want closed by the final note", s.name, r.State, r.Accepted.Note().Final)
			}
		}
		sent := w.sent
		wait(3 * interval)
		if w.sent != sent {
			t.Errorf("%d notes sent after the final one", w.sent-sent)
		}
		list, err := w.req.n.List("dep1")
		if err != nil || len(list) != 1 || list[0].Contract.ID != c.ID {
			t.Fatalf("List(dep1) = %d records, %v", len(list), err)
		}
	})
}

func TestUnchangedUsageIsNotNoted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		w.m.mu.Lock()
		w.m.frozen = true
		w.m.mu.Unlock()
		wait(5 * interval)
		if w.sent != 0 {
			t.Fatalf("%d notes sent for unchanged usage", w.sent)
		}
		if r := w.prov.get(c.ID); r.State != StateActive {
			t.Fatalf("state %s (%s), want active: nothing is owed, nothing to stop", r.State, r.Reason)
		}
	})
}

func TestBudgetExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		// Two contracts of one deployment share a budget of 3.5: each
		// note adds 1, so the second round takes them to 4.
		const budget = match.Money(3_500_000)
		c1 := w.place(w.terms("dep1", budget))
		c2 := w.place(w.terms("dep1", budget))
		wait(10 * interval)

		var total match.Money
		for _, c := range []*contract.Contract{c1, c2} {
			rr := w.req.get(c.ID)
			total += amountOf(rr.Accepted)
			pr := w.prov.get(c.ID)
			if pr.State != StateStopped || pr.Reason != ReasonBudget {
				t.Errorf("provider: contract %s is %s (%q), want stopped for %q", c.ID[:8], pr.State, pr.Reason, ReasonBudget)
			}
			reason, at, ok := w.m.stop(c.Terms().Reservation)
			if !ok || reason != ReasonBudget {
				t.Errorf("Stop(%s) = %q, %v; want %q", c.Terms().Reservation, reason, ok, ReasonBudget)
			}
			// The stop comes at most two intervals after the last
			// countersignature.
			if d := at.Sub(rr.Updated); d > 2*interval {
				t.Errorf("contract %s stopped %v after its last countersigned note, want ≤ %v", c.ID[:8], d, 2*interval)
			}
		}
		if total > budget || total < 3_000_000 {
			t.Errorf("countersigned total %s, want 3 ≤ total ≤ %s", total, budget)
		}
		if got := w.exhaustedCalls(); len(got) != 1 || got[0] != "dep1 "+ReasonBudget {
			t.Errorf("Exhausted calls %q, want one for dep1", got)
		}
		if b := w.req.balance(w.req.key.DID()); b.Paid != total {
			t.Errorf("requester paid %s, want the countersigned %s", b.Paid, total)
		}
		// A stopped contract sends a bounded number of final notes.
		sent := w.sent
		wait(2 * maxFinalTries * interval)
		if extra := w.sent - sent; extra > maxFinalTries*2 {
			t.Errorf("%d notes sent after the stop, want ≤ %d", extra, maxFinalTries*2)
		}
		sent = w.sent
		wait(3 * interval)
		if w.sent != sent {
			t.Errorf("still sending after %d final tries", maxFinalTries)
		}
	})
}

func TestRequesterSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		wait(2*interval + interval/2)
		checkAgree(t, w, c, 2)
		w.set(errors.New("unreachable: no route"), nil)
		silent := time.Now()
		wait(3 * interval)
		reason, at, ok := w.m.stop(c.Terms().Reservation)
		if !ok || !strings.HasPrefix(reason, "notes not countersigned: ") || !strings.Contains(reason, "no route") {
			t.Fatalf("Stop reason %q (%v), want notes not countersigned: … no route", reason, ok)
		}
		if d := at.Sub(silent); d > 2*interval {
			t.Errorf("stopped %v after the requester went silent, want ≤ %v", d, 2*interval)
		}
		if r := w.prov.get(c.ID); r.State != StateStopped || r.Reason != reason {
			t.Errorf("provider record %s %q, want stopped %q", r.State, r.Reason, reason)
		}
		// The requester comes back: the final note is delivered and
		// closes the contract.
		w.set(nil, nil)
		wait(2 * interval)
		for _, s := range []*side{w.prov, w.req} {
			r := s.get(c.ID)
			if r.Accepted == nil || !r.Accepted.Note().Final {
				t.Fatalf("%s: no final note countersigned (state %s)", s.name, r.State)
			}
		}
		if r := w.req.get(c.ID); r.State != StateClosed {
			t.Errorf("requester state %s, want closed", r.State)
		}
		checkAgree(t, w, c, seqOf(w.req.get(c.ID).Accepted))
	})
}

func TestLostReplyIsResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		wait(interval + interval/2)
		// The requester countersigns note 2 but the reply is lost: the
		// provider sends note 2 again and gets the same countersigned
		// copy; nothing is settled twice.
		w.set(nil, errors.New("stream reset"))
		wait(interval)
		if p, r := seqOf(w.prov.get(c.ID).Accepted), seqOf(w.req.get(c.ID).Accepted); p != 1 || r != 2 {
			t.Fatalf("accepted seq provider %d requester %d, want 1 and 2", p, r)
		}
		pending := w.prov.get(c.ID).Last
		w.set(nil, nil)
		wait(interval)
		pr := w.prov.get(c.ID)
		if seqOf(pr.Accepted) != 2 || pr.Accepted.Hash != pending.Hash {
			t.Fatalf("provider accepted seq %d %s, want the pending note 2 %s", seqOf(pr.Accepted), pr.Accepted.Hash, pending.Hash)
		}
		wait(interval)
		checkAgree(t, w, c, 3)
	})
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		who    string
		settle time.Duration // 1 h: the states are not written with the notes
	}{{"provider", time.Nanosecond}, {"requester", time.Nanosecond}, {"both", time.Nanosecond},
		{"provider", time.Hour}, {"requester", time.Hour}, {"both", time.Hour}} {
		who := tc.who
		t.Run(fmt.Sprintf("%s settling every %v", who, tc.settle), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorldSettling(t, tc.settle)
				defer w.close()
				c := w.place(w.terms("dep1", 0))
				wait(3*interval + interval/2)
				if r := w.req.get(c.ID); seqOf(r.Accepted) != 3 {
					t.Fatalf("accepted seq %d before the restart, want 3", seqOf(r.Accepted))
				}
				if who != "requester" {
					w.prov.close()
				}
				if who != "provider" {
					w.req.close()
					w.set(errors.New("unreachable"), nil)
				}
				wait(interval) // down for a tick
				if who != "provider" {
					w.req.open()
					w.set(nil, nil)
				}
				if who != "requester" {
					w.prov.open()
				}
				wait(3 * interval)
				r := w.req.get(c.ID)
				if r.State != StateActive || seqOf(r.Accepted) < 5 {
					t.Fatalf("after the restart: requester %s, accepted seq %d; want active and ≥ 5", r.State, seqOf(r.Accepted))
				}
				synctest.Wait()
				if tc.settle == time.Nanosecond {
					checkAgree(t, w, c, seqOf(r.Accepted))
				} else if p := w.prov.get(c.ID); seqOf(p.Accepted) != seqOf(r.Accepted) || p.Accepted.Hash != r.Accepted.Hash {
					t.Fatalf("provider accepted seq %d, requester %d", seqOf(p.Accepted), seqOf(r.Accepted))
				}
			})
		})
	}
}

// failingLedger fails Settle while fail is set.
type failingLedger struct {
	contract.Ledger
	fail bool
}

func (l *failingLedger) Settle(ctx context.Context, n *contract.SignedNote) (match.Money, error) {
	if l.fail {
		return 0, errors.New("disk full")
	}
	return l.Ledger.Settle(ctx, n)
}

// A crash between storing a countersigned note and settling it is
// repaired when the requester opens again.
func TestSettleRepairedAtOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		w.req.close()
		w.req.wrap = func(l contract.Ledger) contract.Ledger { return &failingLedger{Ledger: l, fail: true} }
		w.req.open()
		c := w.place(w.terms("dep1", 0))
		wait(2*interval + interval/2)
		if r := w.req.get(c.ID); seqOf(r.Accepted) != 2 {
			t.Fatalf("accepted seq %d, want 2", seqOf(r.Accepted))
		}
		if b := w.req.balance(w.req.key.DID()); b.Paid != 0 {
			t.Fatalf("paid %s with a failing ledger", b.Paid)
		}
		w.prov.close() // no more notes
		w.req.close()
		w.req.wrap = nil
		w.req.open()
		if b := w.req.balance(w.req.key.DID()); b.Paid != 2_000_000 {
			t.Fatalf("after Open: paid %s, want the countersigned 2", b.Paid)
		}
		w.prov.open()
	})
}

func TestAbandon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 5_000_000))
		wait(interval + interval/2)
		if err := w.req.n.Abandon(c.ID, "reverted"); err != nil {
			t.Fatalf("Abandon: %v", err)
		}
		if r := w.req.get(c.ID); r.State != StateClosed || r.Reason != "reverted" {
			t.Fatalf("after Abandon: %s %q", r.State, r.Reason)
		}
		// The provider's invoice still comes in within the grace.
		w.m.end(c.Terms().Reservation)
		wait(interval)
		r := w.req.get(c.ID)
		if seqOf(r.Accepted) != 2 || !r.Accepted.Note().Final {
			t.Fatalf("after the grace note: accepted seq %d, want the final note 2", seqOf(r.Accepted))
		}
		checkAgree(t, w, c, 2)
		if b := w.req.balance(w.req.key.DID()); b.Escrowed != 0 {
			t.Errorf("escrow %s left after the final note", b.Escrowed)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 5_000_000))
		wait(interval + interval/2)
		w.prov.close() // the provider never invoices
		if err := w.req.n.Abandon(c.ID, "reverted"); err != nil {
			t.Fatalf("Abandon: %v", err)
		}
		if b := w.req.balance(w.req.key.DID()); b.Escrowed != 4_000_000 {
			t.Errorf("escrow during the grace %s, want 4", b.Escrowed)
		}
		wait(3 * interval)
		if b := w.req.balance(w.req.key.DID()); b.Escrowed != 0 || b.Paid != 1_000_000 {
			t.Errorf("after the grace: escrow %s paid %s, want 0 and 1", b.Escrowed, b.Paid)
		}
		if r := w.req.get(c.ID); r.State != StateClosedNoInvoice || r.Reason != "no invoice within two intervals: reverted" {
			t.Errorf("after the grace: %s %q, want closed-no-invoice", r.State, r.Reason)
		}
		// A note after the grace is refused.
		pr := w.prov
		pr.open()
		wait(interval + interval/2)
		if r := pr.get(c.ID); !strings.Contains(r.Refusal, contract.ErrClosed.Error()) {
			t.Errorf("provider's note after the grace not refused")
		}
	})
}

func TestSignRefuses(t *testing.T) {
	w := newWorld(t)
	defer w.close()
	base := w.terms("dep1", 0)
	c, err := w.req.n.Propose(base)
	if err != nil {
		t.Fatal(err)
	}
	ok := Expect{Deployment: base.Deployment, Reservation: base.Reservation, Requester: w.req.key.DID()}
	other := seedKey(t, "other")
	for _, tc := range []struct {
		name string
		c    func() *contract.Contract
		want Expect
		err  error
	}{
		{"other deployment", func() *contract.Contract { return c }, Expect{Deployment: "dep2", Reservation: ok.Reservation, Requester: ok.Requester}, contract.ErrTerms},
		{"other reservation", func() *contract.Contract { return c }, Expect{Deployment: ok.Deployment, Reservation: "r2", Requester: ok.Requester}, contract.ErrTerms},
		{"other requester", func() *contract.Contract { return c }, Expect{Deployment: ok.Deployment, Reservation: ok.Reservation, Requester: other.DID()}, contract.ErrWrongParty},
		{"terms refused", func() *contract.Contract { return c }, Expect{Deployment: ok.Deployment, Reservation: ok.Reservation, Requester: ok.Requester,
			Terms: func(*contract.Terms) error { return errors.New("price above the bid") }}, contract.ErrTerms},
		{"not our contract", func() *contract.Contract {
			t := base
			t.Provider = other.DID()
			oc, err := contract.New(t, w.req.key)
			if err != nil {
				panic(err)
			}
			return oc
		}, ok, contract.ErrWrongParty},
		{"forged requester signature", func() *contract.Contract {
			f := *c
			f.RequesterSig = other.Sign([]byte("dms-contract|" + c.ID))
			return &f
		}, ok, contract.ErrSignature},
		{"tampered body", func() *contract.Contract {
			f := *c
			f.Body = append([]byte(nil), c.Body...)
			f.Body[len(f.Body)-2] ^= 1
			return &f
		}, ok, contract.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.prov.n.Sign(tc.c(), tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Sign = %v, want %v", err, tc.err)
			}
		})
	}
	sig, err := w.prov.n.Sign(c, ok)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	again, err := w.prov.n.Sign(c, ok)
	if err != nil || string(again) != string(sig) {
		t.Fatalf("Sign again = %x, %v; want the same signature", again, err)
	}
	if err := w.req.n.Agree(c.ID, other.Sign([]byte("dms-contract|"+c.ID))); !errors.Is(err, contract.ErrSignature) {
		t.Fatalf("Agree with a forged signature = %v, want ErrSignature", err)
	}
	if err := w.req.n.Agree(c.ID, sig); err != nil {
		t.Fatalf("Agree: %v", err)
	}
	if err := w.req.n.Agree(c.ID, sig); err != nil {
		t.Fatalf("Agree again: %v", err)
	}
}

// TestHandleNoteRefuses sends forged, out of order and replayed notes
// straight to the requester: each is refused with its code and nothing is
// settled.
func TestHandleNoteRefuses(t *testing.T) {
	w := newWorld(t)
	defer w.close()
	c := w.place(w.terms("dep1", 0))
	w.prov.close() // notes are made by hand here
	pk, other := w.prov.key, seedKey(t, "other")
	ctx := context.Background()
	now := time.Now()
	issue := func(prev *contract.SignedNote, cpu uint64, final bool) *contract.SignedNote {
		t.Helper()
		n, err := c.Issue(pk, prev, now, contract.Usage{CPUMicros: cpu}, final)
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		return n
	}
	n1 := issue(nil, 1_000_000, false)
	n2 := issue(n1, 2_000_000, false)
	n3 := issue(n2, 3_000_000, false)
	accept := func(n *contract.SignedNote) contract.SignedNote {
		t.Helper()
		cs, err := w.req.n.HandleNote(ctx, pk.DID(), wire(n))
		if err != nil {
			t.Fatalf("HandleNote(%d): %v", n.Note().Seq, err)
		}
		return cs
	}
	if _, err := w.req.n.HandleNote(ctx, pk.DID(), wire(n2)); codeOf(err) != deployproto.CodeNoteRefused || !strings.Contains(err.Error(), contract.ErrOutOfOrder.Error()) {
		t.Fatalf("note 2 first = %v, want refused out of order", err)
	}
	accept(n1)
	cs2 := accept(n2)
	paid := w.req.balance(w.req.key.DID()).Paid
	if paid != 2_000_000 {
		t.Fatalf("paid %s, want 2", paid)
	}

	forged := *n3
	forged.ProviderSig = other.Sign([]byte("dms-note|" + n3.Hash))
	tampered := wire(n3)
	tampered.Body = append([]byte(nil), n3.Body...)
	tampered.Body[len(tampered.Body)-2] ^= 1
	badAmount := issueRaw(t, pk, contract.Note{Contract: c.ID, Seq: 3, Prev: n2.Hash, Time: now, Usage: contract.Usage{CPUMicros: 3_000_000}, Amount: 9_000_000})
	regress := issueRaw(t, pk, contract.Note{Contract: c.ID, Seq: 3, Prev: n2.Hash, Time: now, Usage: contract.Usage{CPUMicros: 1_000_000}, Amount: 1_000_000})
	skip := issue(n3, 4_000_000, false)
	unknownBody := issueRaw(t, pk, contract.Note{Contract: strings.Repeat("ab", 32), Seq: 1, Time: now, Usage: contract.Usage{CPUMicros: 1}, Amount: 1})
	for _, tc := range []struct {
		name string
		from *contract.SignedNote
		by   bool // sent by another node than the provider
		want error
	}{
		{"forged provider signature", &forged, false, contract.ErrSignature},
		{"tampered body", &tampered, false, contract.ErrMalformed},
		{"amount not the price of the usage", badAmount, false, contract.ErrAmount},
		{"usage goes back", regress, false, contract.ErrRegress},
		{"a seq skipped", skip, false, contract.ErrOutOfOrder},
		{"replayed older note", n1, false, contract.ErrReplay},
		{"sent by another node", n3, true, contract.ErrWrongParty},
		{"unknown contract", unknownBody, false, contract.ErrUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := pk.DID()
			if tc.by {
				from = other.DID()
			}
			_, err := w.req.n.HandleNote(ctx, from, wire(tc.from))
			if codeOf(err) != deployproto.CodeNoteRefused || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Fatalf("HandleNote = %v, want %s: %v", err, deployproto.CodeNoteRefused, tc.want)
			}
			if got := w.req.balance(w.req.key.DID()).Paid; got != paid {
				t.Fatalf("paid %s after a refused note, want %s", got, paid)
			}
			if r := w.req.get(c.ID); seqOf(r.Accepted) != 2 {
				t.Fatalf("accepted seq %d after a refused note, want 2", seqOf(r.Accepted))
			}
		})
	}
	// The last note again: its countersigned copy, nothing settled twice.
	again, err := w.req.n.HandleNote(ctx, pk.DID(), wire(n2))
	if err != nil || again.Hash != cs2.Hash || string(again.RequesterSig) != string(cs2.RequesterSig) {
		t.Fatalf("note 2 again = %v; want its countersigned copy", err)
	}
	if got := w.req.balance(w.req.key.DID()).Paid; got != paid {
		t.Fatalf("paid %s after a re-delivery, want %s", got, paid)
	}
	// The final note closes the contract; nothing after it.
	fin := issue(n2, 3_000_000, true)
	accept(fin)
	after := issueRaw(t, pk, contract.Note{Contract: c.ID, Seq: 4, Prev: fin.Hash, Time: now, Usage: contract.Usage{CPUMicros: 4_000_000}, Amount: 4_000_000})
	if _, err := w.req.n.HandleNote(ctx, pk.DID(), wire(after)); codeOf(err) != deployproto.CodeNoteRefused || !strings.Contains(err.Error(), contract.ErrClosed.Error()) {
		t.Fatalf("a note after the final one = %v, want refused closed", err)
	}
	if got := w.req.balance(w.req.key.DID()).Paid; got != 3_000_000 {
		t.Fatalf("paid %s, want 3", got)
	}
}

// wire is what a note looks like after the network: its fields only.
func wire(n *contract.SignedNote) contract.SignedNote {
	return contract.SignedNote{Hash: n.Hash, Body: append([]byte(nil), n.Body...), ProviderSig: append([]byte(nil), n.ProviderSig...)}
}

// issueRaw signs any note as key, as a dishonest provider could.
func issueRaw(t *testing.T, key *identity.Key, n contract.Note) *contract.SignedNote {
	t.Helper()
	body, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(body)
	h := hex.EncodeToString(d[:])
	return &contract.SignedNote{Hash: h, Body: body, ProviderSig: key.Sign([]byte("dms-note|" + h))}
}

// With SettleEvery, a contract settles its last note once per
// SettleEvery from its activation, and its final note at once.
func TestSettleEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorldSettling(t, 3*interval)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		paid := func() (match.Money, match.Money) {
			return w.req.balance(w.req.key.DID()).Paid, w.prov.balance(w.prov.key.DID()).Received
		}
		for _, step := range []struct {
			notes int
			want  match.Money
		}{{2, 0}, {3, 3_000_000}, {5, 3_000_000}, {6, 6_000_000}} {
			time.Sleep(time.Until(w.startOf(c).Add(time.Duration(step.notes)*interval + interval/2)))
			synctest.Wait()
			if p, r := paid(); p != step.want || r != step.want {
				t.Fatalf("after note %d: paid %s received %s, want %s", step.notes, p, r, step.want)
			}
		}
		w.m.end(c.Terms().Reservation)
		wait(interval)
		checkAgree(t, w, c, 7)
	})
}

// The provider verifies a countersignature when it settles the note
// (its final notes, one note per SettleEvery): a bad one is caught then,
// the note is neither accepted nor paid, and the contract stops two
// intervals after the last note it accepted. A countersignature of the
// wrong length is caught at once.
func TestBadCountersignature(t *testing.T) {
	mallory := seedKey(t, "mallory")
	for _, tc := range []struct {
		name      string
		forgeFrom uint64
		forge     func(*contract.SignedNote) []byte
		accepted  uint64      // the provider's last accepted note
		received  match.Money // what the provider's ledger received
	}{{
		name: "forged from note 1, caught at the settlement of note 3", forgeFrom: 1,
		forge:    func(n *contract.SignedNote) []byte { return mallory.Sign([]byte("dms-note-accept|" + n.Hash)) },
		accepted: 2, received: 0,
	}, {
		name: "forged from note 4, caught at the settlement of note 6", forgeFrom: 4,
		forge:    func(n *contract.SignedNote) []byte { return mallory.Sign([]byte("dms-note-accept|" + n.Hash)) },
		accepted: 5, received: 3_000_000,
	}, {
		name: "flipped bit from note 2", forgeFrom: 2,
		forge: func(n *contract.SignedNote) []byte {
			sig := append([]byte(nil), n.RequesterSig...)
			sig[0] ^= 1
			return sig
		},
		accepted: 2, received: 0,
	}, {
		name: "cut short from note 1, caught at once", forgeFrom: 1,
		forge:    func(n *contract.SignedNote) []byte { return n.RequesterSig[:63] },
		accepted: 0, received: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorldSettling(t, 3*interval)
				defer w.close()
				w.mu.Lock()
				w.forgeFrom, w.forgeSig = tc.forgeFrom, tc.forge
				w.mu.Unlock()
				c := w.place(w.terms("dep1", 0))
				wait(10*interval + interval/2)
				reason, _, stopped := w.m.stop(c.Terms().Reservation)
				if !stopped || !strings.HasPrefix(reason, "notes not countersigned: ") || !strings.Contains(reason, "does not verify") {
					t.Fatalf("Stop = %q, %v; want notes not countersigned: … does not verify", reason, stopped)
				}
				r := w.prov.get(c.ID)
				if r.State != StateStopped || seqOf(r.Accepted) != tc.accepted {
					t.Errorf("provider: state %s, accepted note %d; want stopped, %d", r.State, seqOf(r.Accepted), tc.accepted)
				}
				if !strings.Contains(r.Reason, "does not verify") {
					t.Errorf("provider: reason %q, want the countersignature's", r.Reason)
				}
				if got := w.prov.balance(w.prov.key.DID()).Received; got != tc.received {
					t.Errorf("provider's ledger received %s, want %s (no forged note paid)", got, tc.received)
				}
			})
		})
	}
}

// A node placing a deployment on itself is both sides of its contract:
// one notary, one store, one ledger.
func TestBothSidesOnOneNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter()
		var self *side
		send := func(ctx context.Context, c *contract.Contract, n *contract.SignedNote) (*contract.SignedNote, error) {
			out, err := self.n.HandleNote(ctx, self.key.DID(), wire(n))
			return &out, err
		}
		self = newSide(t, "self", Config{Meter: m.Meter, Stop: m.Stop, Send: send, SettleEvery: time.Nanosecond})
		defer self.close()
		tm := contract.Terms{
			Version: 1, Deployment: "dep1", Node: "node-a", Reservation: "res-a", Allocations: []string{"a"},
			Requester: self.key.DID(), Provider: self.key.DID(), Price: testPrice, Interval: interval,
			Settlement: contract.SettleLocal, Created: time.Now().UTC(),
		}
		c, err := self.n.Propose(tm)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := self.n.Sign(c, Expect{Deployment: "dep1", Reservation: "res-a", Requester: self.key.DID()})
		if err != nil {
			t.Fatal(err)
		}
		if err := self.n.Agree(c.ID, sig); err != nil {
			t.Fatal(err)
		}
		wait(3*interval + interval/2)
		m.end("res-a")
		wait(interval)
		r := self.get(c.ID)
		if r.Role != RoleRequester || r.State != StateClosed || seqOf(r.Accepted) != 4 || !r.Accepted.Note().Final {
			t.Fatalf("record %s %s, accepted seq %d; want the requester's, closed by final note 4", r.Role, r.State, seqOf(r.Accepted))
		}
		ch, err := self.n.Chain(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sum, err := contract.VerifyChain(ch); err != nil || sum.Accepted != 4 || !sum.Final {
			t.Fatalf("VerifyChain = %+v, %v", sum, err)
		}
		list, err := self.n.List("dep1")
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %d records, %v; want both sides", len(list), err)
		}
		// The final note repeats note 3's usage (the allocations ended).
		if b := self.balance(self.key.DID()); b.Paid != 3_000_000 || b.Received != 3_000_000 {
			t.Errorf("ledger paid %s received %s, want 3 and 3", b.Paid, b.Received)
		}
	})
}

// A requester down longer than two intervals right after the provider
// restarts: the provider's contracts get two fresh intervals from the
// restart, then stop.
func TestRestartGivesTwoIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		wait(interval + interval/2)
		w.prov.close()
		w.set(errors.New("unreachable"), nil)
		wait(5 * interval) // longer than two intervals since the last countersignature
		w.prov.open()
		restarted := time.Now()
		wait(interval + interval/2)
		if _, _, stopped := w.m.stop(c.Terms().Reservation); stopped {
			t.Fatalf("stopped %v after the restart, want two intervals", time.Since(restarted))
		}
		wait(2 * interval)
		reason, at, stopped := w.m.stop(c.Terms().Reservation)
		if !stopped || !strings.Contains(reason, "unreachable") {
			t.Fatalf("Stop = %q, %v; want notes not countersigned: unreachable", reason, stopped)
		}
		if d := at.Sub(restarted); d > 3*interval {
			t.Errorf("stopped %v after the restart", d)
		}
	})
}

// A requester that stays away past the provider's final tries: the
// provider gives up its invoice and settles what was countersigned (the
// ledger of a provider that settles rarely, SettleEvery, was left behind
// the requester's until its next restart).
func TestGivingUpSettles(t *testing.T) {
	tests := []struct {
		name        string
		settleEvery time.Duration
	}{
		{name: "settling rarely", settleEvery: time.Hour},
		{name: "settling every note", settleEvery: time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorldSettling(t, tc.settleEvery)
				defer w.close()
				c := w.place(w.terms("dep1", 0))
				wait(3*interval + interval/2)
				w.set(errors.New("unreachable: no route"), nil)
				owed := amountOf(w.prov.get(c.ID).Accepted)
				if owed <= 0 {
					t.Fatalf("nothing countersigned before the requester went away")
				}
				wait((2 + maxFinalTries + 2) * interval)
				if r := w.prov.get(c.ID); r.State != StateStopped || r.Accepted == nil || r.Accepted.Note().Final {
					t.Fatalf("provider: contract %s, accepted %+v; want stopped without an invoice", r.State, r.Accepted)
				}
				if got := w.prov.balance(w.prov.key.DID()).Received; got != owed {
					t.Errorf("provider received %s after giving up its invoice, want the countersigned %s", got, owed)
				}
			})
		})
	}
}

// TestForgedNotesInABatch sends good and forged notes of several
// contracts to the requester at once, so that their provider signatures
// are verified in batches: the forged ones are refused with
// ErrSignature and nothing is countersigned or paid for them; the good
// ones are countersigned and paid.
func TestForgedNotesInABatch(t *testing.T) {
	w := newWorld(t)
	defer w.close()
	const k = 12
	var cs []*contract.Contract
	for i := range k {
		cs = append(cs, w.place(w.terms(fmt.Sprintf("dep%d", i), 0)))
	}
	w.prov.close() // notes are made by hand here
	pk, other := w.prov.key, seedKey(t, "other")
	now := time.Now()
	notes := make([]*contract.SignedNote, k)
	forged := func(i int) bool { return i%3 == 1 }
	var want match.Money
	for i, c := range cs {
		n, err := c.Issue(pk, nil, now, contract.Usage{CPUMicros: uint64(i+1) * 1_000_000}, false)
		if err != nil {
			t.Fatal(err)
		}
		if forged(i) {
			n.ProviderSig = other.Sign([]byte("dms-note|" + n.Hash))
		} else {
			want += n.Note().Amount
		}
		notes[i] = n
	}
	b0 := w.req.n.sigs.batches.Load()
	errs := make([]error, k)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, n := range notes {
		wg.Go(func() {
			<-start
			_, errs[i] = w.req.n.HandleNote(context.Background(), pk.DID(), wire(n))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if forged(i) {
			if codeOf(err) != deployproto.CodeNoteRefused || !strings.Contains(err.Error(), contract.ErrSignature.Error()) {
				t.Errorf("forged note %d: %v, want refused: %v", i, err, contract.ErrSignature)
			}
			if r := w.req.get(cs[i].ID); r.Accepted != nil {
				t.Errorf("forged note %d countersigned", i)
			}
			continue
		}
		if err != nil {
			t.Errorf("note %d: %v", i, err)
		}
	}
	if got := w.req.balance(w.req.key.DID()).Paid; got != want {
		t.Errorf("paid %s, want %s (the good notes only)", got, want)
	}
	t.Logf("%d notes in %d signature batches", k, w.req.n.sigs.batches.Load()-b0)
}
