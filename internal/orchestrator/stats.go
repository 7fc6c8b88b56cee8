package orchestrator

import "sync/atomic"

// Stats are the service's counters since it started (for the node's
// metrics); dry runs (dms plan) are not counted.
type Stats struct {
	Rounds     uint64 // bid rounds, placements and redeploys
	Broadcasts uint64 // those of Rounds sent to every provider (no shortlist from the offer cache)
	Placements uint64 // nodes of ensembles placed and committed, first placements and redeploys
}

type serviceStats struct {
	rounds, broadcasts, placements atomic.Uint64
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{Rounds: s.stats.rounds.Load(), Broadcasts: s.stats.broadcasts.Load(), Placements: s.stats.placements.Load()}
}
