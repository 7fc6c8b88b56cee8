package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/match"
)

// candidate is one provider's bid for one node, as the orchestrator rated it.
type candidate struct {
	Node     string
	Provider actor.Handle
	Bid      Bid        // the provider's bid (for this node and maybe others)
	Signed   *SignedBid // the bid as signed
	Rating   match.Rating
}

// placeNodes assigns every node a distinct provider (two nodes of an
// ensemble never share one), all or nothing. Among the assignments that
// place every node it prefers, node by node in order of fewest candidates,
// the best-rated bid: a maximum bipartite matching (Kuhn's augmenting
// paths) whose search tries candidates best first. It is pure and
// deterministic: ties go to the lower provider ID.
//
// When some node cannot be placed it returns the nodes left over.
func placeNodes(nodes []string, cands map[string][]candidate) (map[string]candidate, []string) {
	// Best bid first; ties by provider ID so that the result is stable.
	byNode := make(map[string][]candidate, len(nodes))
	for _, n := range nodes {
		cs := append([]candidate(nil), cands[n]...)
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].Rating.Value != cs[j].Rating.Value {
				return cs[i].Rating.Value > cs[j].Rating.Value
			}
			return cs[i].Provider.Host < cs[j].Provider.Host
		})
		byNode[n] = cs
	}
	order := append([]string(nil), nodes...)
	sort.SliceStable(order, func(i, j int) bool { return len(byNode[order[i]]) < len(byNode[order[j]]) })

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
	out := make(map[string]candidate, len(nodes))
	for n, i := range chosen {
		out[n] = byNode[n][i]
	}
	return out, nil
}

// CandidateReason says why one provider does not host one node.
type CandidateReason struct {
	Peer string `json:"peer"`
	Node string `json:"node"`
	// Kind is resource, executor, location, price, time, onboarding,
	// pinned, invalid, refused (at commit) or no-answer.
	Kind    string   `json:"kind"`
	Reasons []string `json:"reasons,omitempty"`
}

func (c CandidateReason) String() string {
	if len(c.Reasons) == 0 {
		return fmt.Sprintf("%s for %s: %s", shortPeer(c.Peer), c.Node, c.Kind)
	}
	return fmt.Sprintf("%s for %s: %s (%s)", shortPeer(c.Peer), c.Node, c.Kind, strings.Join(c.Reasons, "; "))
}

func shortPeer(p string) string {
	if len(p) > 16 {
		return p[:8] + "…" + p[len(p)-6:]
	}
	return p
}

// reasonKind classifies a match reason's dimension.
func reasonKind(dim string) string {
	switch dim {
	case match.DimExecutor:
		return "executor"
	case match.DimLocation:
		return "location"
	case match.DimPrice:
		return "price"
	case match.DimTime:
		return "time"
	}
	return "resource" // cpu, ram, disk, gpu and extra kinds
}

// edge bounds the round trip between the providers of two nodes.
type edge struct {
	a, b string
	rtt  time.Duration
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

// placeEdges is placeNodes under rtt edges: every pair of nodes joined by
// an edge must land on providers whose measured round trip is within it.
// It backtracks over the candidates, best first, nodes with fewest
// candidates first; without edges it is placeNodes. On failure it returns
// the nodes it could not place together.
func placeEdges(nodes []string, cands map[string][]candidate, edges []edge) (map[string]candidate, []string) {
	if len(edges) == 0 {
		return placeNodes(nodes, cands)
	}
	lat := map[string]map[string]float64{}
	byNode := map[string][]candidate{}
	for _, n := range nodes {
		cs := append([]candidate(nil), cands[n]...)
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].Rating.Value != cs[j].Rating.Value {
				return cs[i].Rating.Value > cs[j].Rating.Value
			}
			return cs[i].Provider.Host < cs[j].Provider.Host
		})
		byNode[n] = cs
		for _, c := range cs {
			if c.Bid.Latencies != nil {
				lat[c.Provider.Host] = c.Bid.Latencies
			}
		}
	}
	order := append([]string(nil), nodes...)
	sort.SliceStable(order, func(i, j int) bool { return len(byNode[order[i]]) < len(byNode[order[j]]) })
	assigned := map[string]candidate{}
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
func edgesHold(node, host string, assigned map[string]candidate, edges []edge, lat map[string]map[string]float64) bool {
	for _, e := range edges {
		var other string
		switch node {
		case e.a:
			other = e.b
		case e.b:
			other = e.a
		default:
			continue
		}
		oc, ok := assigned[other]
		if !ok {
			continue
		}
		rtt, known := rttOf(lat, host, oc.Provider.Host)
		if !known || rtt > e.rtt {
			return false
		}
	}
	return true
}
