package orchestrator

import "sync/atomic"

// Stats are the service's counters since it started (for the node's
// metrics); dry runs (dms plan) are not counted.
type Stats struct {
	Rounds     uint64 // bid rounds, placements and redeploys
	Placements uint64 // nodes of ensembles placed and committed, first placements and redeploys
}

type serviceStats struct {
	rounds, placements atomic.Uint64
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{Rounds: s.stats.rounds.Load(), Placements: s.stats.placements.Load()}
}
