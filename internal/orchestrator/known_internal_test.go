package orchestrator

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// TestKnownProviders: the table keeps the latest offer per provider, most
// recently seen first, ignores an older sighting and invalid offers, and
// when full forgets the provider seen least recently.
func TestKnownProviders(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	offer := func(cpu match.MilliCPU) match.Offer {
		return match.Offer{Free: match.Resources{CPU: cpu, RAM: 1 << 30}, Executors: []string{"wasm"}}
	}
	type put struct {
		peer string
		cpu  match.MilliCPU
		at   int // seconds after t0
	}
	tests := []struct {
		name string
		max  int
		puts []put
		want string // peer:cpu, most recent first
	}{
		{"latest offer wins", 4, []put{{"a", 1000, 1}, {"a", 2000, 2}}, "a:2"},
		{"older sighting ignored", 4, []put{{"a", 2000, 5}, {"a", 1000, 3}}, "a:2"},
		{"most recent first", 4, []put{{"a", 1000, 1}, {"b", 1000, 3}, {"c", 1000, 2}}, "b:1 c:1 a:1"},
		{"full: least recently seen goes", 2, []put{{"a", 1000, 1}, {"b", 1000, 2}, {"a", 1000, 3}, {"c", 1000, 4}}, "c:1 a:1"},
		{"invalid offer ignored", 4, []put{{"a", -1, 1}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKnownProviders(tc.max)
			for _, p := range tc.puts {
				o := offer(p.cpu)
				if p.cpu < 0 {
					o.Price.CPU = -1
				}
				k.put(p.peer, o, t0.Add(time.Duration(p.at)*time.Second))
			}
			got := ""
			for i, e := range k.list() {
				if i > 0 {
					got += " "
				}
				got += fmt.Sprintf("%s:%g", e.Peer, float64(e.Offer.Free.CPU)/1000)
			}
			if got != tc.want {
				t.Fatalf("table %q, want %q", got, tc.want)
			}
		})
	}
	// The bound holds under many providers.
	k := newKnownProviders(maxKnownProviders)
	for i := range 3 * maxKnownProviders {
		k.put(fmt.Sprintf("p%d", i), offer(1000), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if l := k.list(); len(l) != maxKnownProviders || l[0].Peer != fmt.Sprintf("p%d", 3*maxKnownProviders-1) {
		t.Fatalf("%d entries (first %s), want %d, the latest first", len(l), l[0].Peer, maxKnownProviders)
	}
	// A round's offers at once keep the same table as one put each: the
	// latest sightings, ties by peer ID, invalid offers left out.
	one, all := newKnownProviders(8), newKnownProviders(8)
	for r := range 3 {
		at := t0.Add(time.Duration(r) * time.Second)
		round := map[string]match.Offer{"bad": {Free: match.Resources{CPU: -1}}}
		for i := range 6 {
			peer := fmt.Sprintf("r%dp%d", r, i)
			round[peer] = offer(match.MilliCPU(1000 * (i + 1)))
		}
		for _, peer := range slices.Sorted(maps.Keys(round)) {
			one.put(peer, round[peer], at)
		}
		all.putAll(round, at)
	}
	if got, want := all.list(), one.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("putAll kept %v, put kept %v", got, want)
	}
}
