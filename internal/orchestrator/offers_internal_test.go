package orchestrator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

// TestShortlistPending: deployments shortlisted together spread over the
// cached providers instead of all asking the same best offers (whose
// per-peer reservation bound would refuse most of them); a provider asked
// by maxPendingAsks rounds in flight is left out until one is released,
// and when too few are left the shortlist gives up (broadcast).
func TestShortlistPending(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reqs := []deployproto.NodeRequest{{Name: "n", Request: match.Request{Resources: match.Resources{CPU: 10, RAM: 1 << 20}, Executors: []string{"wasm"}}}}
	perRound := 2 + len(reqs)
	tests := []struct {
		name      string
		providers int
		rounds    int // shortlists taken without release
		wantNil   int // how many of them give up
	}{
		{"one round", 3, 1, 0},
		{"rounds spread over providers", 30, 30 * maxPendingAsks / perRound, 0},
		{"too few providers left", 3, maxPendingAsks + 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOfferCache()
			for i := range tt.providers {
				c.put(fmt.Sprintf("p%02d", i), match.Offer{Free: match.Resources{CPU: match.MilliCPU(4000 + i), RAM: 1 << 30}, Executors: []string{"wasm"}}, now)
			}
			var lists [][]string
			gaveUp := 0
			for range tt.rounds {
				l := c.shortlist(reqs, now)
				if l == nil {
					gaveUp++
					continue
				}
				lists = append(lists, l)
			}
			if gaveUp != tt.wantNil {
				t.Fatalf("%d shortlists gave up, want %d", gaveUp, tt.wantNil)
			}
			asked := map[string]int{}
			for _, l := range lists {
				if len(l) != min(perRound, tt.providers) {
					t.Errorf("shortlist %v, want %d providers", l, perRound)
				}
				for _, h := range l {
					asked[h]++
				}
			}
			for h, n := range asked {
				if n > maxPendingAsks {
					t.Errorf("%s asked by %d rounds in flight, at most %d", h, n, maxPendingAsks)
				}
			}
			for _, l := range lists {
				c.release(l)
			}
			if len(c.pending) != 0 {
				t.Errorf("pending after release: %v", c.pending)
			}
			if l := c.shortlist(reqs, now); !slices.Equal(l, lists[0]) {
				t.Errorf("after release: %v, want the best offers again %v", l, lists[0])
			}
		})
	}
}
