package orchestrator

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// maxKnownProviders bounds the known-providers table.
const maxKnownProviders = 1024

// KnownProvider is a provider this node has heard from: what it offered
// in the last bid (or plan) round it answered, and when.
type KnownProvider struct {
	Peer     string      // peer ID
	Offer    match.Offer // what it had free then, where it is, its price
	LastSeen time.Time
}

// knownProviders is the table behind dms nodes: every provider whose
// offer a bid round of this node saw, the latest offer each, at most max
// of them; when full, the one seen least recently goes. Unlike the offer
// cache it forgets nobody for being silent: it says when each was last
// seen.
type knownProviders struct {
	mu  sync.Mutex
	max int
	m   map[string]KnownProvider // by peer ID; guarded by mu
}

func newKnownProviders(max int) *knownProviders {
	return &knownProviders{max: max, m: map[string]KnownProvider{}}
}

// put records an offer seen at now (an older sighting than the one kept
// changes nothing).
func (k *knownProviders) put(peer string, o match.Offer, now time.Time) {
	if o.Validate() != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.m[peer]; ok && old.LastSeen.After(now) {
		return
	}
	k.m[peer] = KnownProvider{Peer: peer, Offer: o, LastSeen: now}
	for len(k.m) > k.max {
		oldest := ""
		for p, e := range k.m {
			if oldest == "" || e.LastSeen.Before(k.m[oldest].LastSeen) || e.LastSeen.Equal(k.m[oldest].LastSeen) && p < oldest {
				oldest = p
			}
		}
		delete(k.m, oldest)
	}
}

// putAll records the offers of one round, seen at now, as put does for
// each, and then forgets the providers seen least recently beyond max in
// one sort: a round across 10,000 providers made put scan the whole table
// once per provider beyond max (12 % of the round's CPU).
func (k *knownProviders) putAll(offers map[string]match.Offer, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for peer, o := range offers {
		if o.Validate() != nil {
			continue
		}
		if old, ok := k.m[peer]; ok && old.LastSeen.After(now) {
			continue
		}
		k.m[peer] = KnownProvider{Peer: peer, Offer: o, LastSeen: now}
	}
	if len(k.m) <= k.max {
		return
	}
	// Sorted by reference, not by value: an entry holds a whole offer.
	type seen struct {
		peer string
		at   time.Time
	}
	all := make([]seen, 0, len(k.m))
	for p, e := range k.m {
		all = append(all, seen{p, e.LastSeen})
	}
	slices.SortFunc(all, func(a, b seen) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.peer, b.peer)
	})
	for _, e := range all[:len(all)-k.max] {
		delete(k.m, e.peer)
	}
}

// list returns the table, most recently seen first (ties by peer ID).
func (k *knownProviders) list() []KnownProvider {
	k.mu.Lock()
	out := make([]KnownProvider, 0, len(k.m))
	for _, e := range k.m {
		out = append(out, e)
	}
	k.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Peer < out[j].Peer
	})
	return out
}

// Providers lists the providers this node knows from the bid and plan
// rounds it ran, most recently seen first.
func (s *Service) Providers() []KnownProvider { return s.known.list() }
