package ensemble

import (
	"fmt"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// Unsupported lists what a valid spec asks for that this release of dms
// does not do yet: standby copies of a node (redundancy above 1) and
// bandwidth constraints on edges (bandwidth between providers is not
// measured). A node refuses to deploy such a spec rather than run it
// without what it asked for; `dms validate` reports the same.
func (s *Spec) Unsupported() Problems {
	var probs Problems
	for _, name := range mapkeys.Sorted(s.Nodes) {
		if r := s.Nodes[name].Redundancy; r > 1 {
			probs = append(probs, Problem{Path: keyPath("nodes", name) + ".redundancy",
				Msg: fmt.Sprintf("%d copies: standby copies are not supported by this release of dms (use 1)", r)})
		}
	}
	for i, e := range s.Edges {
		if e.Bandwidth > 0 {
			probs = append(probs, Problem{Path: indexPath("edges", i) + ".bandwidth",
				Msg: "bandwidth between providers is not measured by this release of dms (remove it; rtt is enforced)"})
		}
	}
	return probs
}
