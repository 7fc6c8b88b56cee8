package orchestrator

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// TestCloneSharesAppendOnly: a copy shares the elements of the slices the
// package only appends to (events, candidates), and neither side's appends
// show in the other.
func TestCloneSharesAppendOnly(t *testing.T) {
	now := time.Now()
	d := &Deployment{ID: "d1", Candidates: []placement.Reason{{Peer: "p1"}}}
	for range 3 {
		d.addEvent(now, Event{Kind: EventPlaced, Message: "placed"})
	}
	c := d.clone()
	if &c.Events[0] != &d.Events[0] {
		t.Error("the copy's events were copied: they can be shared")
	}
	d.addEvent(now, Event{Kind: EventPlaced, Message: "in the original"})
	d.Candidates = append(d.Candidates, placement.Reason{Peer: "p2"})
	if len(c.Events) != 3 || len(c.Candidates) != 1 {
		t.Fatalf("the copy has %d events and %d candidates, want 3 and 1", len(c.Events), len(c.Candidates))
	}
	c.addEvent(now, Event{Kind: EventPlaced, Message: "in the copy"})
	c.Candidates = append(c.Candidates, placement.Reason{Peer: "p3"})
	if d.Events[3].Message != "in the original" || d.Candidates[1].Peer != "p2" {
		t.Errorf("an append to the copy changed the original: %q, %q", d.Events[3].Message, d.Candidates[1].Peer)
	}
	if c.Events[3].Message != "in the copy" || c.Candidates[1].Peer != "p3" {
		t.Errorf("the copy's appends: %q, %q", c.Events[3].Message, c.Candidates[1].Peer)
	}
}

// TestViewIsPersistedCopy: after a persisted change the readers' view is
// the copy given to the store, not another copy of the deployment.
func TestViewIsPersistedCopy(t *testing.T) {
	st := &lastStore{}
	r := &run{s: &Service{cfg: Config{Store: st, Now: time.Now}}, d: &Deployment{ID: "d1", State: Queued}, changed: make(chan struct{})}
	r.update(true, func(d *Deployment) { d.State = Bidding })
	v := r.view()
	if v != st.last() {
		t.Error("the view after a persisted change is another copy than the one persisted")
	}
	if v.State != Bidding || v == r.d {
		t.Errorf("view state %s (want %s), shared with the run's own: %v", v.State, Bidding, v == r.d)
	}
	r.update(false, func(d *Deployment) { d.Round++ })
	if v2 := r.view(); v2 == v || v2.Round != 1 || v.Round != 0 {
		t.Errorf("after an unpersisted change the view is %p round %d (was %p round %d)", v2, v2.Round, v, v.Round)
	}
}

type lastStore struct {
	Store
	mu sync.Mutex
	d  *Deployment
}

func (s *lastStore) PutDeployment(d *Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = d
	return nil
}

func (s *lastStore) last() *Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d
}

// TestClonePlacementShared: a copy shares the placement map, and
// setPlacement (a redeploy) changes the original's without the copy's.
func TestClonePlacementShared(t *testing.T) {
	d := &Deployment{ID: "d1", Placement: map[string]Placement{"web": {Reservation: "r1"}}}
	c := d.clone()
	if reflect.ValueOf(c.Placement).UnsafePointer() != reflect.ValueOf(d.Placement).UnsafePointer() {
		t.Error("the copy's placement was copied: it can be shared")
	}
	d.setPlacement("web", Placement{Reservation: "r2"})
	d.setPlacement("db", Placement{Reservation: "r3"})
	if got := c.Placement["web"].Reservation; got != "r1" || len(c.Placement) != 1 {
		t.Errorf("the copy's placement changed with the original's: web %q, %d nodes; want r1, 1", got, len(c.Placement))
	}
	if d.Placement["web"].Reservation != "r2" || d.Placement["db"].Reservation != "r3" {
		t.Errorf("the original's placement = %v, want web r2 and db r3", d.Placement)
	}
}

// TestWaitReturnsView: Wait returns the readers' copy of the version it
// waited for (no copy of its own), never the run's deployment, and a
// version it returned does not change with the run.
func TestWaitReturnsView(t *testing.T) {
	st := &lastStore{}
	s := &Service{cfg: Config{Store: st, Now: time.Now}, deps: map[string]*run{}}
	r := &run{s: s, d: &Deployment{ID: "d1", State: Queued}, changed: make(chan struct{})}
	s.deps["d1"] = r
	for _, tc := range []struct {
		name    string
		persist bool
		change  func(d *Deployment)
	}{
		{"persisted", true, func(d *Deployment) { d.State = Bidding }},
		{"not persisted", false, func(d *Deployment) { d.Round++ }},
		{"terminal", true, func(d *Deployment) { d.State = Completed }},
	} {
		after := r.view().Version
		r.update(tc.persist, tc.change)
		got, err := s.Wait(t.Context(), "d1", after)
		if err != nil {
			t.Fatal(err)
		}
		want := r.snapshot()
		if got == r.d || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Wait = %+v (the run's own: %v), want %+v", tc.name, got, got == r.d, want)
		}
		if tc.persist && got != st.last() {
			t.Errorf("%s: Wait made a copy of its own, not the persisted one", tc.name)
		}
		if again, _ := s.Wait(t.Context(), "d1", after); again != got {
			t.Errorf("%s: a second Wait for the same version made another copy", tc.name)
		}
		version, state := got.Version, got.State
		r.update(false, func(d *Deployment) { d.Round++ })
		if got.Version != version || got.State != state {
			t.Errorf("%s: what Wait returned changed with the run", tc.name)
		}
	}
}
