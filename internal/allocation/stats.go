package allocation

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dmsnet/dms/internal/deployproto"
)

// Counters for the node's metrics (package telemetry/metrics reads them at
// scrape time).

// MeterReading is one allocation's usage so far, as of its last sample.
type MeterReading struct {
	Deployment string
	ID         string // the allocation's ID on this node
	CPUMicros  uint64 // CPU time of all its runs
	Memory     uint64 // bytes in use at the last sample of the current run (0: none running)
}

// Meters returns the usage of every allocation on this node as its meter
// last saw it (the sampler reads the running ones every second), by ID.
// Removed allocations are not listed.
func (m *Manager) Meters() []MeterReading {
	m.mu.Lock()
	all := make([]*alloc, 0, len(m.allocs))
	for _, a := range m.allocs {
		all = append(all, a)
	}
	m.mu.Unlock()
	out := make([]MeterReading, 0, len(all))
	for _, a := range all {
		a.mu.Lock()
		r := MeterReading{Deployment: a.rec.Deployment, ID: a.rec.ID, CPUMicros: a.rec.Meter.Usage().CPUMicros}
		if a.rec.Meter.Instance != "" {
			r.Memory = a.rec.Meter.Memory
		}
		a.mu.Unlock()
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b MeterReading) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ProviderStats are a provider's counters since it started.
type ProviderStats struct {
	Bids   uint64            // bids sent (one per request with a node it could serve)
	Won    uint64            // commits of its bids it accepted
	NoBids map[string]uint64 // nodes it could not serve, by deployproto.NoBid's Kind
}

// providerStats counts bids; dry runs (dms plan) are not counted.
type providerStats struct {
	bids, won atomic.Uint64
	mu        sync.Mutex
	noBids    map[string]uint64 // guarded by mu
}

// count counts the answer to one bid request.
func (s *providerStats) count(r deployproto.BidReply) {
	if r.Bid != nil {
		s.bids.Add(1)
	}
	if len(r.NoBids) == 0 {
		return
	}
	s.mu.Lock()
	if s.noBids == nil {
		s.noBids = map[string]uint64{}
	}
	for _, nb := range r.NoBids {
		s.noBids[nb.Kind]++
	}
	s.mu.Unlock()
}

// Stats returns the provider's counters.
func (p *Provider) Stats() ProviderStats {
	p.stats.mu.Lock()
	nb := maps.Clone(p.stats.noBids)
	p.stats.mu.Unlock()
	return ProviderStats{Bids: p.stats.bids.Load(), Won: p.stats.won.Load(), NoBids: nb}
}
