package allocation

import (
	"context"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

// TestStopReservation: the notary's stop ends every allocation of one
// reservation, running or pending, in state stopped with its reason as
// the message, and leaves other reservations alone.
func TestStopReservation(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		run := h.create(h.m, "a1", "r1", task("sleep=1h"))
		h.create(h.m, "a2", "r1", task("sleep=1h"))
		other := h.create(h.m, "b1", "r2", task("sleep=1h"))
		h.mustStart(run)
		h.mustStart(other)
		h.awaitState("a1", deployproto.AllocRunning)
		h.awaitState("b1", deployproto.AllocRunning)
		if err := h.m.StopReservation(context.Background(), "r1", "budget exhausted", time.Second); err != nil {
			t.Fatal(err)
		}
		for _, hd := range []struct {
			id   string
			want deployproto.AllocationState
		}{{"a1", deployproto.AllocStopped}, {"a2", deployproto.AllocStopped}} {
			r := h.awaitState(hd.id, hd.want)
			if r.Message != "budget exhausted" {
				t.Errorf("%s stopped with message %q, want the reason", hd.id, r.Message)
			}
		}
		if st := h.status(other); st.State != deployproto.AllocRunning {
			t.Errorf("the other reservation's allocation is %s", st.State)
		}
		if n := h.ledger.releases("r1"); n != 1 {
			t.Errorf("r1 released %d times, want 1", n)
		}
		// Again: nothing more happens; no reservation is an error.
		if err := h.m.StopReservation(context.Background(), "r1", "again", time.Second); err != nil {
			t.Errorf("second stop: %v", err)
		}
		if st := h.status(run); st.Message != "budget exhausted" {
			t.Errorf("message after a second stop %q", st.Message)
		}
		if err := h.m.StopReservation(context.Background(), "", "x", 0); err == nil {
			t.Error("stop of an empty reservation accepted")
		}
	})
}
