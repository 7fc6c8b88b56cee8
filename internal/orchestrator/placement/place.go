package placement

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

// byRating orders candidates best first; ties go to the lower provider ID
// so that the result is stable.
func byRating(cs []Candidate) []Candidate {
	cs = slices.Clone(cs)
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].Rating.Value != cs[j].Rating.Value {
			return cs[i].Rating.Value > cs[j].Rating.Value
		}
		return cs[i].Provider.Host < cs[j].Provider.Host
	})
	return cs
}

// sorted returns the candidates of every node best first, and the nodes
// in order of fewest candidates (the most constrained first).
func sorted(nodes []string, cands map[string][]Candidate) (map[string][]Candidate, []string) {
	byNode := make(map[string][]Candidate, len(nodes))
	for _, n := range nodes {
		byNode[n] = byRating(cands[n])
	}
	order := slices.Clone(nodes)
	sort.SliceStable(order, func(i, j int) bool { return len(byNode[order[i]]) < len(byNode[order[j]]) })
	return byNode, order
}

// Place assigns every node a distinct provider (two nodes of an ensemble
// never share one), all or nothing, such that every pair of nodes joined
// by an edge lands on providers whose measured round trip is within it.
// Among the assignments that place every node it prefers, node by node in
// order of fewest candidates, the best-rated bid; ties go to the lower
// provider ID. Without edges it is a maximum bipartite matching (Kuhn's
// augmenting paths, best candidates tried first); with edges a bounded
// backtracking search.
//
// When some node cannot be placed it returns nil and the nodes left over.
func Place(nodes []string, cands map[string][]Candidate, edges []Edge) (map[string]Candidate, []string) {
	if len(edges) == 0 {
		return placeNodes(nodes, cands)
	}
	return placeEdges(nodes, cands, edges)
}

func placeNodes(nodes []string, cands map[string][]Candidate) (map[string]Candidate, []string) {
	byNode, order := sorted(nodes, cands)
	owner := map[string]string{} // provider host → node
	chosen := map[string]int{}   // node → index in byNode[node]
	var try func(node string, seen map[string]bool) bool
	try = func(node string, seen map[string]bool) bool {
		for i, c := range byNode[node] {
			h := c.Provider.Host
			if seen[h] {
				continue
			}
			seen[h] = true
			if other, taken := owner[h]; !taken || try(other, seen) {
				owner[h] = node
				chosen[node] = i
				return true
			}
		}
		return false
	}
	var missing []string
	for _, n := range order {
		if !try(n, map[string]bool{}) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, missing
	}
	out := make(map[string]Candidate, len(nodes))
	for n, i := range chosen {
		out[n] = byNode[n][i]
	}
	return out, nil
}

// rttOf returns the round trip between two providers as their bids report
// it: the larger of the two measurements when both measured, else the one
// known; ok is false when neither did.
func rttOf(lat map[string]map[string]float64, p, q string) (time.Duration, bool) {
	x, okx := lat[p][q]
	y, oky := lat[q][p]
	switch {
	case okx && oky:
		return time.Duration(max(x, y) * float64(time.Millisecond)), true
	case okx:
		return time.Duration(x * float64(time.Millisecond)), true
	case oky:
		return time.Duration(y * float64(time.Millisecond)), true
	}
	return 0, false
}

// maxSearch bounds the backtracking of placeEdges.
const maxSearch = 200_000

// placeEdges backtracks over the candidates, best first, nodes with fewest
// candidates first. On failure it returns the node it got stuck on.
func placeEdges(nodes []string, cands map[string][]Candidate, edges []Edge) (map[string]Candidate, []string) {
	byNode, order := sorted(nodes, cands)
	lat := map[string]map[string]float64{}
	for _, n := range nodes {
		for _, c := range byNode[n] {
			if c.Bid.Latencies != nil {
				lat[c.Provider.Host] = c.Bid.Latencies
			}
		}
	}
	assigned := map[string]Candidate{}
	used := map[string]bool{}
	steps := 0
	deepest := 0
	var solve func(i int) bool
	solve = func(i int) bool {
		if i == len(order) {
			return true
		}
		deepest = max(deepest, i)
		node := order[i]
		for _, c := range byNode[node] {
			if steps++; steps > maxSearch {
				return false
			}
			h := c.Provider.Host
			if used[h] || !edgesHold(node, h, assigned, edges, lat) {
				continue
			}
			assigned[node], used[h] = c, true
			if solve(i + 1) {
				return true
			}
			delete(assigned, node)
			delete(used, h)
		}
		return false
	}
	if solve(0) {
		return assigned, nil
	}
	return nil, []string{order[deepest]}
}

// edgesHold checks the edges between node (on provider host) and the nodes
// already assigned.
func edgesHold(node, host string, assigned map[string]Candidate, edges []Edge, lat map[string]map[string]float64) bool {
	for _, e := range edges {
		if e.A != node && e.B != node {
			continue
		}
		oc, ok := assigned[e.other(node)]
		if !ok {
			continue
		}
		rtt, known := rttOf(lat, host, oc.Provider.Host)
		if !known || rtt > e.RTT {
			return false
		}
	}
	return true
}

// Explain adds to the reasons of a round that found no placement why the
// nodes it missed could not be placed: for a node joined to others by rtt
// edges, the edges no pair of providers met; for any other node, the bids
// that fit but were needed for another node of the ensemble (distinct).
// With no reason at all it says that no provider answered.
func Explain(missing []string, cands map[string][]Candidate, edges []Edge, reasons []Reason) []Reason {
	out := slices.Clone(reasons)
	for _, node := range missing {
		if len(cands[node]) == 0 {
			continue
		}
		onEdge := false
		for _, e := range edges {
			if e.A == node || e.B == node {
				onEdge = true
				out = append(out, Reason{Node: node, Kind: deployproto.KindRTT,
					Reasons: []string{fmt.Sprintf("no provider for %s within %s of the provider of %s (edge %s-%s)", node, e.RTT, e.other(node), e.A, e.B)}})
			}
		}
		if onEdge {
			continue
		}
		for _, c := range byRating(cands[node]) {
			out = append(out, Reason{Peer: c.Provider.Host, Node: node, Kind: deployproto.KindDistinct,
				Reasons: []string{"fits, but is needed for another node of this ensemble (nodes never share a provider)"}})
		}
	}
	if len(out) == 0 {
		out = append(out, Reason{Node: "*", Kind: deployproto.KindNoAnswer, Reasons: []string{"no provider answered"}})
	}
	return out
}
