package placement

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dmsnet/dms/internal/deployproto"
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

// kindPhrases says, for each kind of reason, what the providers it counts
// are: "3 providers too small".
var kindPhrases = map[string]string{
	deployproto.KindResource:   "too small",
	deployproto.KindExecutor:   "without the executor",
	deployproto.KindStorage:    "without the operator credentials",
	deployproto.KindLocation:   "in the wrong location",
	deployproto.KindPrice:      "above the price ceiling",
	deployproto.KindTime:       "not free in the time window",
	deployproto.KindOnboarding: "with nothing onboarded",
	deployproto.KindPinned:     "not the pinned one",
	deployproto.KindInvalid:    "with an invalid bid",
	deployproto.KindRefused:    "refusing",
	deployproto.KindNoAnswer:   "not answering",
	deployproto.KindDistinct:   "already hosting another node",
	deployproto.KindRTT:        "too far from another node",
	deployproto.KindPeerLimit:  "at their reservation limit",
}

// Summarize counts the providers each kind of reason keeps out, for a
// one-line message: "3 providers too small, 1 provider without the
// executor" (most first), or "no provider answered" when there are none.
// A provider counts once per kind however many nodes it was asked for.
func Summarize(rs []Reason) string {
	if len(rs) == 0 {
		return "no provider answered"
	}
	peers := map[string]map[string]bool{} // kind → providers
	for i, c := range rs {
		if peers[c.Kind] == nil {
			peers[c.Kind] = map[string]bool{}
		}
		p := c.Peer
		if p == "" {
			p = fmt.Sprintf("#%d", i) // a reason of no single provider
		}
		peers[c.Kind][p] = true
	}
	kinds := make([]string, 0, len(peers))
	for k := range peers {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if ni, nj := len(peers[kinds[i]]), len(peers[kinds[j]]); ni != nj {
			return ni > nj
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		phrase, ok := kindPhrases[k]
		if !ok {
			phrase = "(" + k + ")"
		}
		n := len(peers[k])
		noun := "providers"
		if n == 1 {
			noun = "provider"
		}
		parts[i] = fmt.Sprintf("%d %s %s", n, noun, phrase)
	}
	return strings.Join(parts, ", ")
}
