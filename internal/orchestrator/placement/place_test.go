package placement

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/match"
)

func cand(node, host string, value float64) Candidate {
	return Candidate{Node: node, Provider: actor.Handle{Host: host}, Rating: match.Rating{Eligible: true, Value: value}}
}

func TestPlaceNodes(t *testing.T) {
	tests := []struct {
		name  string
		nodes []string
		cands []Candidate
		want  string // node=host,... sorted; or "missing:a,b"
	}{
		{"single best", []string{"a"}, []Candidate{cand("a", "p1", 0.2), cand("a", "p2", 0.9)}, "a=p2"},
		{"tie by host", []string{"a"}, []Candidate{cand("a", "p2", 0.5), cand("a", "p1", 0.5)}, "a=p1"},
		{"gang on distinct providers", []string{"a", "b"}, []Candidate{cand("a", "p1", 0.9), cand("b", "p1", 0.9), cand("b", "p2", 0.1)}, "a=p1,b=p2"},
		{"most constrained first", []string{"a", "b"}, []Candidate{cand("a", "p1", 0.9), cand("a", "p2", 0.5), cand("b", "p1", 0.3)}, "a=p2,b=p1"},
		{"augmenting path", []string{"a", "b", "c"}, []Candidate{
			cand("a", "p1", 0.9), cand("a", "p2", 0.8),
			cand("b", "p1", 0.9), cand("b", "p3", 0.1),
			cand("c", "p1", 0.9), cand("c", "p2", 0.2),
		}, "a=p2,b=p3,c=p1"},
		{"gang with one provider: nothing", []string{"a", "b"}, []Candidate{cand("a", "p1", 0.9), cand("b", "p1", 0.9)}, "missing:b"},
		{"no bids", []string{"a"}, nil, "missing:a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := map[string][]Candidate{}
			for _, c := range tt.cands {
				cands[c.Node] = append(cands[c.Node], c)
			}
			got, missing := placeNodes(tt.nodes, cands)
			var s string
			if missing != nil {
				s = "missing:" + strings.Join(missing, ",")
			} else {
				var parts []string
				for n, c := range got {
					parts = append(parts, fmt.Sprintf("%s=%s", n, c.Provider.Host))
				}
				sort.Strings(parts)
				s = strings.Join(parts, ",")
			}
			if s != tt.want {
				t.Fatalf("placeNodes = %s, want %s", s, tt.want)
			}
		})
	}
}

func TestPlaceEdges(t *testing.T) {
	withLat := func(c Candidate, lat map[string]float64) Candidate { c.Bid.Latencies = lat; return c }
	// p1, p2 in one region (5 ms apart), p3 far (60 ms from both).
	lat := map[string]map[string]float64{
		"p1": {"p2": 5, "p3": 60}, "p2": {"p1": 5, "p3": 60}, "p3": {"p1": 60, "p2": 60},
	}
	mk := func(node, host string, v float64) Candidate { return withLat(cand(node, host, v), lat[host]) }
	tests := []struct {
		name  string
		cands []Candidate
		rtt   time.Duration
		want  string
	}{
		{"best pair is too far: pick the near pair", []Candidate{mk("a", "p3", 0.9), mk("a", "p1", 0.5), mk("b", "p2", 0.9), mk("b", "p3", 0.8)}, 20 * time.Millisecond, "a=p1,b=p2"},
		{"only far pairs", []Candidate{mk("a", "p1", 0.9), mk("b", "p3", 0.9)}, 20 * time.Millisecond, "missing"},
		{"loose edge takes the best", []Candidate{mk("a", "p3", 0.9), mk("a", "p1", 0.5), mk("b", "p2", 0.9)}, 100 * time.Millisecond, "a=p3,b=p2"},
		{"unknown latency does not hold", []Candidate{cand("a", "p1", 0.9), cand("b", "p2", 0.9)}, time.Second, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := map[string][]Candidate{}
			for _, c := range tt.cands {
				cands[c.Node] = append(cands[c.Node], c)
			}
			got, missing := placeEdges([]string{"a", "b"}, cands, []Edge{{A: "a", B: "b", RTT: tt.rtt}})
			s := "missing"
			if missing == nil {
				s = "a=" + got["a"].Provider.Host + ",b=" + got["b"].Provider.Host
			}
			if s != tt.want {
				t.Fatalf("placeEdges = %s, want %s", s, tt.want)
			}
		})
	}
}
