package placement

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dmsnet/dms/internal/identity"
)

// Reason says why one provider does not host one node. Peer is empty, and
// Node "*", when a reason concerns no single provider or node.
type Reason struct {
	Peer string `json:"peer"`
	Node string `json:"node"`
	// Kind is one of the deployproto.Kind constants: resource, executor,
	// location, price, time, onboarding, pinned, invalid, refused,
	// no-answer, distinct or rtt.
	Kind    string   `json:"kind"`
	Reasons []string `json:"reasons,omitempty"`
}

// String is "12D3KooW…x7Yq2a for web: resource (cpu: …)".
func (c Reason) String() string {
	if len(c.Reasons) == 0 {
		return fmt.Sprintf("%s for %s: %s", identity.ShortPeerID(c.Peer), c.Node, c.Kind)
	}
	return fmt.Sprintf("%s for %s: %s (%s)", identity.ShortPeerID(c.Peer), c.Node, c.Kind, strings.Join(c.Reasons, "; "))
}

// Summarize counts reasons by kind, for a one-line message: "2 location,
// 1 resource", or "no provider answered" when there are none.
func Summarize(rs []Reason) string {
	if len(rs) == 0 {
		return "no provider answered"
	}
	kinds := map[string]int{}
	for _, c := range rs {
		kinds[c.Kind]++
	}
	parts := make([]string, 0, len(kinds))
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
