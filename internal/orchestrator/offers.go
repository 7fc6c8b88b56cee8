package orchestrator

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

// offerCache remembers what providers offered in recent bid rounds, so that
// the next deployment asks a shortlist of likely providers directly instead
// of every provider on the network. A shortlist round that does not place
// the ensemble falls back to a broadcast round; stale entries only cost
// that fallback.
//
// It also counts the shortlist rounds in flight that asked each provider:
// each may hold a reservation there until its round is settled, and a
// provider bounds the live reservations of one peer
// (allocation.DefaultReservationsPerPeer), so a provider asked by
// maxPendingAsks rounds already is left out of further shortlists. Without
// it, deployments submitted together all shortlist the same best offers,
// most of their rounds are refused at the providers' bound, and each falls
// back to a broadcast (2.1 rounds per placement in BenchmarkPlacements).
type offerCache struct {
	mu      sync.Mutex
	offers  map[string]cachedOffer // by provider host; guarded by mu
	pending map[string]int         // shortlist rounds in flight that asked the host; guarded by mu
}

// maxPendingAsks is how many shortlist rounds in flight may ask one
// provider: half of allocation.DefaultReservationsPerPeer, leaving room
// for broadcast rounds.
const maxPendingAsks = 4

type cachedOffer struct {
	offer match.Offer
	at    time.Time
}

// offerTTL is how long a cached offer is trusted.
const offerTTL = 30 * time.Second

func newOfferCache() *offerCache {
	return &offerCache{offers: map[string]cachedOffer{}, pending: map[string]int{}}
}

// release ends the shortlist round that asked hosts (from shortlist).
func (c *offerCache) release(hosts []string) {
	if len(hosts) == 0 {
		return
	}
	c.mu.Lock()
	for _, h := range hosts {
		if c.pending[h] <= 1 {
			delete(c.pending, h)
		} else {
			c.pending[h]--
		}
	}
	c.mu.Unlock()
}

func (c *offerCache) put(host string, o match.Offer, now time.Time) {
	if o.Validate() != nil {
		return
	}
	c.mu.Lock()
	c.offers[host] = cachedOffer{offer: o, at: now}
	c.mu.Unlock()
}

func (c *offerCache) drop(host string) {
	c.mu.Lock()
	delete(c.offers, host)
	c.mu.Unlock()
}

// shortlist returns the providers to ask for a deployment: for every node,
// the best few fresh offers that fit it. It returns nil when the cache
// cannot find enough candidates for every node (then broadcast). Providers
// that maxPendingAsks rounds in flight asked already are left out; the
// hosts returned count as asked until release.
func (c *offerCache) shortlist(reqs []deployproto.NodeRequest, now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	perNode := 2 + len(reqs) // spares for distinct placement and stale offers
	chosen := map[string]bool{}
	for _, nr := range reqs {
		if nr.Peer != "" {
			continue // pinned: asked directly anyway
		}
		// The best perNode offers that fit, by value then host: kept in
		// order as they are found (a sort of every fitting offer cost a
		// third of the shortlist at 10,000 providers).
		type scored struct {
			host  string
			value float64
		}
		better := func(a, b scored) bool { return a.value > b.value || a.value == b.value && a.host < b.host }
		best := make([]scored, 0, perNode+1)
		fits := 0
		for host, co := range c.offers {
			if now.Sub(co.at) > offerTTL || c.pending[host] >= maxPendingAsks {
				continue
			}
			r := match.Score(co.offer, nr.Request)
			if !r.Eligible {
				continue
			}
			fits++
			f := scored{host, r.Value}
			if len(best) == perNode && !better(f, best[perNode-1]) {
				continue
			}
			i := sort.Search(len(best), func(i int) bool { return better(f, best[i]) })
			best = slices.Insert(best, i, f)
			if len(best) > perNode {
				best = best[:perNode]
			}
		}
		if fits < len(reqs) {
			return nil
		}
		for _, f := range best {
			chosen[f.host] = true
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	out := make([]string, 0, len(chosen))
	for h := range chosen {
		out = append(out, h)
	}
	sort.Strings(out)
	for _, h := range out {
		c.pending[h]++
	}
	return out
}
