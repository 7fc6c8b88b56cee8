package notary

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/match"
)

// The deployment ends while its provider is down: the requester waits
// two intervals for the invoice, then closes the contract at its last
// countersigned note; the invoice that comes later is paid for what it
// adds, once.
func TestEndWithoutInvoice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 10_000_000))
		wait(2*interval + interval/2)
		checkAgree(t, w, c, 2)
		w.prov.close() // the provider dies before its invoice
		w.m.end(c.Terms().Reservation)
		if err := w.req.n.End("dep1", "shut down"); err != nil {
			t.Fatalf("End: %v", err)
		}
		if err := w.req.n.End("dep1", "shut down"); err != nil { // again: nothing changes
			t.Fatalf("End again: %v", err)
		}
		wait(interval)
		if r := w.req.get(c.ID); r.State != StateActive || !strings.Contains(r.Reason, "awaiting the invoice") {
			t.Fatalf("within the wait: %s %q, want active, awaiting the invoice", r.State, r.Reason)
		}
		wait(interval + interval/2)
		r := w.req.get(c.ID)
		if r.State != StateClosedNoInvoice || !strings.Contains(r.Reason, "shut down") || seqOf(r.Accepted) != 2 {
			t.Fatalf("after two intervals: %s %q at seq %d, want closed-no-invoice at seq 2", r.State, r.Reason, seqOf(r.Accepted))
		}
		if b := w.req.balance(w.req.key.DID()); b.Paid != 2_000_000 || b.Escrowed != 0 {
			t.Fatalf("requester's ledger: paid %s escrowed %s, want 2 and 0", b.Paid, b.Escrowed)
		}
		// A restart keeps it so.
		w.req.close()
		w.req.open()
		if r := w.req.get(c.ID); r.State != StateClosedNoInvoice {
			t.Fatalf("after a restart: %s", r.State)
		}
		// The provider comes back with its invoice: checked against the
		// chain, paid for what it adds.
		w.prov.open()
		wait(3 * interval)
		r = w.req.get(c.ID)
		if r.State != StateClosed || r.Accepted == nil || !r.Accepted.Note().Final || r.Reason != "invoice after the close" {
			t.Fatalf("after the late invoice: %s %q, final %v", r.State, r.Reason, r.Accepted != nil && r.Accepted.Note().Final)
		}
		checkAgree(t, w, c, seqOf(r.Accepted))
		if b := w.req.balance(w.req.key.DID()); b.Paid != r.Accepted.Note().Amount || b.Escrowed != 0 {
			t.Fatalf("requester's ledger: paid %s escrowed %s, want the invoice's %s and 0", b.Paid, b.Escrowed, r.Accepted.Note().Amount)
		}
		if err := w.req.ledger.Audit(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// The invoice comes within the wait: the contract closes as usual.
func TestEndWithInvoice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		wait(interval + interval/2)
		if err := w.req.n.End("dep1", "completed"); err != nil {
			t.Fatalf("End: %v", err)
		}
		w.m.end(c.Terms().Reservation)
		wait(interval)
		r := w.req.get(c.ID)
		if r.State != StateClosed || r.Reason != "" || !r.Accepted.Note().Final {
			t.Fatalf("after the invoice: %s %q", r.State, r.Reason)
		}
		wait(3 * interval) // the end of the wait changes nothing
		if r := w.req.get(c.ID); r.State != StateClosed {
			t.Fatalf("after the wait: %s", r.State)
		}
		checkAgree(t, w, c, 2)
	})
}

// The requester restarts during the wait and after its end: the wait
// goes on, or ends at once.
func TestEndAcrossRestart(t *testing.T) {
	for _, down := range []int{1, 3} {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			defer w.close()
			c := w.place(w.terms("dep1", 0))
			wait(interval + interval/2)
			w.prov.close()
			if err := w.req.n.End("dep1", "failed"); err != nil {
				t.Fatalf("End: %v", err)
			}
			w.req.close()
			wait(interval * 1) // down
			if down > 1 {
				wait(interval * 2)
			}
			w.req.open()
			wait(2 * interval)
			if r := w.req.get(c.ID); r.State != StateClosedNoInvoice || seqOf(r.Accepted) != 1 {
				t.Fatalf("down %d intervals: %s at seq %d, want closed-no-invoice at 1", down, r.State, seqOf(r.Accepted))
			}
			if b := w.req.balance(w.req.key.DID()); b.Paid != 1_000_000 {
				t.Fatalf("paid %s, want 1", b.Paid)
			}
		})
	}
}

// A spent budget is stored: a requester restarted before the deployment
// stopped still refuses its notes, and tells the orchestrator again.
func TestExhaustedSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		const budget = match.Money(2_500_000)
		c1 := w.place(w.terms("dep1", budget))
		// A second contract whose notes cost nothing, noted rarely: its
		// first note comes after the first one's stop and final notes.
		free := w.terms("dep1", budget)
		free.Price, free.Interval = match.Price{}, 15*interval
		c2 := w.place(free)
		wait(3*interval + interval/2)
		if got := w.exhaustedCalls(); len(got) != 1 {
			t.Fatalf("Exhausted calls %q, want one", got)
		}
		wait(9 * interval) // the first contract stops, its final notes are refused
		if got := w.exhaustedCalls(); len(got) != 1 {
			t.Fatalf("Exhausted calls %q, want one", got)
		}
		w.set(errors.New("unreachable"), nil) // the harness's Send reads w.req.n
		w.req.close()
		w.req.open()
		w.set(nil, nil)
		wait(3 * interval) // the free contract's first note
		if got := w.exhaustedCalls(); len(got) != 2 || got[1] != "dep1 "+ReasonBudget {
			t.Fatalf("after a restart: Exhausted calls %q, want a second one", got)
		}
		if r := w.req.get(c2.ID); r.Accepted != nil {
			t.Fatalf("after a restart: the free contract's note %d countersigned", seqOf(r.Accepted))
		}
		if r := w.prov.get(c2.ID); !strings.Contains(r.Refusal, contract.ErrBudget.Error()) {
			t.Errorf("the free contract's last refusal %q, want the budget", r.Refusal)
		}
		if a := amountOf(w.req.get(c1.ID).Accepted); a > budget {
			t.Errorf("countersigned %s above the budget %s", a, budget)
		}
	})
}

func TestNoteKey(t *testing.T) {
	for _, seq := range []uint64{0, 1, 42, 1 << 32, 1<<64 - 1} {
		want := fmt.Sprintf("%s/%s/%020d", "c0ffee", RoleRequester, seq)
		if got := noteKey("c0ffee", RoleRequester, seq); got != want {
			t.Errorf("noteKey(%d) = %q, want %q", seq, got, want)
		}
	}
}
