package orchestrator

import (
	"context"
	"sync"
	"time"
)

// haState is a run's part in standby orchestration (standby.go): the
// primary's lease, a standby's last word from its primary, and whether the
// run has been retired (it stepped down, or a standby replica was taken
// over): a retired run persists and decides nothing more.
type haState struct {
	kick     chan struct{} // a persisted change to replicate; buffered 1
	standbys []string      // the run's standbys (they change only with a new run)

	mu        sync.Mutex
	cancel    context.CancelFunc  // ends the run's loop and replication; nil for a standby replica; guarded by mu
	retired   bool                // guarded by mu
	leaseFrom time.Time           // when the latest replicate a standby acknowledged was sent; guarded by mu
	acked     map[string]bool     // standbys (peer IDs) that acknowledged this run; guarded by mu
	former    string              // the primary this run took over from (peer ID); guarded by mu
	chains    map[string][]string // token files for each standby, made once; guarded by mu
	heard     time.Time           // standby: when the primary was last heard from; guarded by mu
	heardCh   chan struct{}       // standby: closed at every word from the primary; guarded by mu
	lease     time.Duration       // standby: the primary's lease, as its last replicate said; guarded by mu
	missing   map[string]int      // how many artifacts each standby (peer ID) lacks, as it last said; guarded by mu
}

func newHAState(now time.Time, standbys []string) *haState {
	return &haState{kick: make(chan struct{}, 1), standbys: standbys, acked: map[string]bool{}, missing: map[string]int{}, chains: map[string][]string{}, heard: now, heardCh: make(chan struct{})}
}

// replicateSoon asks the replication loop for a round (coalesced).
func (r *run) replicateSoon() {
	if r.ha == nil {
		return
	}
	select {
	case r.ha.kick <- struct{}{}:
	default:
	}
}

// resigned reports whether the run stepped down or was taken over.
func (r *run) resigned() bool {
	if r.ha == nil {
		return false
	}
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	return r.ha.retired
}

// resign ends the run's part: its loop and replication stop, and it
// persists nothing more. It reports false when it was retired already.
func (r *run) resign() bool {
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	if r.ha.retired {
		return false
	}
	r.ha.retired = true
	if r.ha.cancel != nil {
		r.ha.cancel()
	}
	return true
}

// holdsLease reports whether this primary may make supervision decisions
// now. It may when the deployment has no standbys; when a standby
// acknowledged a replicate sent less than a lease ago (a standby takes
// over only after 1.5 leases without word, counted from when it received
// it, so that the two never decide at once); and right after a takeover
// while the only other orchestrator is the one it replaced, which was
// never its standby and so cannot take over from it (otherwise the last
// orchestrator of two could never redeploy anything).
func (r *run) holdsLease() bool {
	if r.ha == nil {
		return true
	}
	standbys := r.ha.standbys
	now := r.s.cfg.Now()
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	switch {
	case r.ha.retired:
		return false
	case len(standbys) == 0:
		return true
	case !r.ha.leaseFrom.IsZero() && now.Sub(r.ha.leaseFrom) < r.s.cfg.Lease:
		return true
	}
	if r.ha.former == "" || r.ha.acked[r.ha.former] {
		return false
	}
	for _, p := range standbys {
		if p != r.ha.former {
			return false
		}
	}
	return true
}

// acknowledged records a standby's acknowledgement of a replicate sent at
// sent, and reports whether it is the first of the primary this run took
// over from.
func (r *run) acknowledged(peer string, sent time.Time) (formerBack bool) {
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	if sent.After(r.ha.leaseFrom) {
		r.ha.leaseFrom = sent
	}
	formerBack = peer == r.ha.former && !r.ha.acked[peer]
	r.ha.acked[peer] = true
	return formerBack
}

// heardFrom records a word from the primary (a standby replica) and the
// lease it holds.
func (r *run) heardFrom(now time.Time, lease time.Duration) {
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	r.ha.heard, r.ha.lease = now, lease
	close(r.ha.heardCh)
	r.ha.heardCh = make(chan struct{})
}

// lastHeard returns when the primary was last heard from, a channel
// closed at the next word, and the lease to wait out: the primary's, or
// this node's when longer (or unknown, after a restart).
func (r *run) lastHeard() (time.Time, <-chan struct{}, time.Duration) {
	r.ha.mu.Lock()
	defer r.ha.mu.Unlock()
	return r.ha.heard, r.ha.heardCh, max(r.ha.lease, r.s.cfg.Lease)
}

// LeaseHeld reports whether this node may make supervision decisions for
// a deployment now: it orchestrates it and holds its lease (always, for a
// deployment without standbys). A standby replica holds none.
func (s *Service) LeaseHeld(id string) (bool, error) {
	r, err := s.get(id)
	if err != nil {
		return false, err
	}
	if r.snapshot().IsStandby() {
		return false, nil
	}
	return r.holdsLease(), nil
}

// stopAfter is the StopAfter of this deployment's commits: the configured
// one, but with standby orchestrators at least two leases, so that the
// providers do not stop their copies before a standby (which takes over
// after 1.5 leases of silence) could adopt them.
func (r *run) stopAfter() time.Duration {
	if r.ha == nil || len(r.ha.standbys) == 0 {
		return r.s.cfg.StopAfter
	}
	return max(r.s.cfg.StopAfter, 2*r.s.cfg.Lease)
}
