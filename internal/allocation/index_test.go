package allocation

import (
	"context"
	"maps"
	"slices"
	"testing"
)

// TestReservationIndex checks that the allocations of each reservation,
// found through the index (Manager.byRes) by release, revert, stop, usage
// and Orchestrator, are those a scan of every allocation finds, after
// creates and reverts.
func TestReservationIndex(t *testing.T) {
	cases := []struct {
		name    string
		creates [][2]string // allocation ID, reservation
		reverts []string
		want    map[string][]string // reservation → its allocation IDs, sorted
	}{
		{"none", nil, nil, map[string][]string{}},
		{"one", [][2]string{{"a1", "r1"}}, nil, map[string][]string{"r1": {"a1"}}},
		{"groups", [][2]string{{"a1", "r1"}, {"b1", "r2"}, {"a2", "r1"}, {"c1", "r3"}}, nil,
			map[string][]string{"r1": {"a1", "a2"}, "r2": {"b1"}, "r3": {"c1"}}},
		{"revert one group", [][2]string{{"a1", "r1"}, {"b1", "r2"}, {"a2", "r1"}}, []string{"r1"},
			map[string][]string{"r2": {"b1"}}},
		{"revert all", [][2]string{{"a1", "r1"}, {"b1", "r2"}}, []string{"r2", "r1"}, map[string][]string{}},
		{"revert unknown", [][2]string{{"a1", "r1"}}, []string{"r9"}, map[string][]string{"r1": {"a1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				for _, c := range tc.creates {
					h.create(h.m, c[0], c[1], task("sleep=1h"))
				}
				for _, r := range tc.reverts {
					h.ledger.hold(r)
					if err := h.m.Revert(context.Background(), r); err != nil {
						t.Fatalf("Revert(%s): %v", r, err)
					}
				}
				h.m.mu.Lock()
				scanned := map[string][]string{}
				for id, a := range h.m.allocs {
					scanned[a.reservation()] = append(scanned[a.reservation()], id)
				}
				indexed := map[string][]string{}
				for r, group := range h.m.byRes {
					for _, a := range group {
						indexed[r] = append(indexed[r], a.id())
					}
				}
				h.m.mu.Unlock()
				for _, m := range []map[string][]string{scanned, indexed} {
					for _, ids := range m {
						slices.Sort(ids)
					}
				}
				eq := func(a, b map[string][]string) bool { return maps.EqualFunc(a, b, slices.Equal[[]string]) }
				if !eq(scanned, tc.want) {
					t.Errorf("allocations by reservation = %v, want %v", scanned, tc.want)
				}
				if !eq(indexed, tc.want) {
					t.Errorf("index = %v, want %v", indexed, tc.want)
				}
				for _, r := range []string{"r1", "r2", "r3", "r9"} {
					did, ok := h.m.Orchestrator(r)
					if wantOK := len(tc.want[r]) > 0; ok != wantOK || ok && did != h.orch.act.Handle().DID {
						t.Errorf("Orchestrator(%s) = %s, %v; want ok %v", r, did, ok, wantOK)
					}
					_, _, err := h.m.Usage(context.Background(), r)
					if known := len(tc.want[r]) > 0 || slices.Contains(tc.reverts, r) && r != "r9"; (err == nil) != known {
						t.Errorf("Usage(%s) = %v, want known %v", r, err, known)
					}
				}
			})
		})
	}
}
