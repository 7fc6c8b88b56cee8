package placement

import (
	"maps"
	"slices"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Answer is a provider's reply to a bid request with its bid opened.
type Answer struct {
	deployproto.BidReply
	// Opened is the reply's bid, decoded from the signed bytes; nil when
	// the reply has none, or one that does not decode.
	Opened *deployproto.Bid
}

// Open decodes the bid of a reply; one that does not decode becomes a
// reason not to count the provider.
func Open(br deployproto.BidReply) Answer {
	a := Answer{BidReply: br}
	if br.Bid == nil {
		return a
	}
	b, err := br.Bid.Open()
	if err != nil {
		a.NoBids = append(a.NoBids, deployproto.NoBid{Node: "*", Kind: deployproto.KindInvalid, Reasons: []string{err.Error()}})
		return a
	}
	a.Opened = &b
	return a
}

// Refused is the answer of a provider that refused the bid request itself
// (a typed error instead of a reply).
func Refused(provider actor.Handle, err error) Answer {
	return Answer{BidReply: deployproto.BidReply{Provider: provider,
		NoBids: []deployproto.NoBid{{Node: "*", Kind: deployproto.KindRefused, Reasons: []string{err.Error()}}}}}
}

// Candidate is one provider's bid for one node, as the orchestrator rated
// it.
type Candidate struct {
	Node     string
	Provider actor.Handle
	Bid      deployproto.Bid        // the provider's bid (for this node and maybe others)
	Signed   *deployproto.SignedBid // the bid as sent (signed in the JSON form)
	Rating   match.Rating
}

// Round is one bid round as the orchestrator saw it.
type Round struct {
	// Requests are what the round asked for, one per node.
	Requests []deployproto.NodeRequest
	// Asked are the providers the round waited for (peer IDs, the
	// orchestrator's own node among them).
	Asked []string
	// Replies are the answers by provider peer ID.
	Replies map[string]Answer
	// Answered are the providers that answered, those whose reply did not
	// decode included.
	Answered map[string]bool
	// Excluded are providers not to place on until the time given: they
	// refused a commit, or a bid of theirs did not verify.
	Excluded map[string]time.Time
	// Now is the time of the round.
	Now time.Time
}

// Rate checks and scores the bids of a round: a bid counts for a node
// when its provider is a peer ID, its offer is well-formed, the provider
// is not excluded, the node is not pinned to another peer, and the
// orchestrator's own scoring finds the offer eligible. It returns the
// candidates per node, and why every other provider that was asked is not
// one (their own NoBids included), ordered by provider.
func Rate(r Round) (map[string][]Candidate, []Reason) {
	byName := make(map[string]deployproto.NodeRequest, len(r.Requests))
	for _, nr := range r.Requests {
		byName[nr.Name] = nr
	}
	cands := map[string][]Candidate{}
	if len(r.Requests) == 1 {
		// Room for every provider's bid at once: a broadcast round to
		// 10,000 providers grew the list (of large Candidates) 20 times.
		cands[r.Requests[0].Name] = make([]Candidate, 0, len(r.Replies))
	}
	var reasons []Reason
	for _, host := range sortedKeys(r.Replies) {
		br := r.Replies[host]
		if _, err := identity.DIDFromPeerID(host); err != nil {
			continue
		}
		for _, nb := range br.NoBids {
			reasons = append(reasons, Reason{Peer: host, Node: nb.Node, Kind: nb.Kind, Reasons: nb.Reasons})
		}
		if br.Opened == nil {
			continue
		}
		b := *br.Opened
		offerErr := b.Offer.Validate()
		for _, node := range b.Nodes {
			nr, ok := byName[node]
			if !ok {
				continue
			}
			bad := func(kind, why string) {
				reasons = append(reasons, Reason{Peer: host, Node: node, Kind: kind, Reasons: []string{why}})
			}
			switch {
			case offerErr != nil:
				bad(deployproto.KindInvalid, offerErr.Error())
				continue
			case r.Now.Before(r.Excluded[host]):
				bad(deployproto.KindRefused, "refused a commit earlier")
				continue
			case nr.Peer != "" && nr.Peer != host:
				bad(deployproto.KindPinned, "the node is pinned to "+identity.ShortPeerID(nr.Peer))
				continue
			}
			rating := match.Score(b.Offer, nr.Request)
			if !rating.Eligible {
				nb := deployproto.NoFit(node, rating.Reasons)
				reasons = append(reasons, Reason{Peer: host, Node: node, Kind: nb.Kind, Reasons: nb.Reasons})
				continue
			}
			cands[node] = append(cands[node], Candidate{Node: node, Provider: br.Provider, Bid: b, Signed: br.BidReply.Bid, Rating: rating})
		}
	}
	for _, p := range r.NotAnswered() {
		reasons = append(reasons, Reason{Peer: p, Node: "*", Kind: deployproto.KindNoAnswer})
	}
	maps.DeleteFunc(cands, func(_ string, c []Candidate) bool { return len(c) == 0 })
	return cands, reasons
}

// NotAnswered lists the providers of a round that did not answer, sorted.
func (r Round) NotAnswered() []string {
	var out []string
	for _, p := range r.Asked {
		if !r.Answered[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// VerifyBids checks a plan's bids before they are committed. Each came
// over the authenticated link from the provider it names (the round keeps
// only such replies), so an unsigned bid is the provider's own; a bid that
// carries a signature (the JSON form) must verify all the same. It returns
// a reason per provider whose bid is missing or whose signature does not
// verify, and per dry-run bid (a plan's: nothing backs it).
func VerifyBids(deployment string, plan map[string]Candidate) []Reason {
	var bad []Reason
	for _, node := range sortedKeys(plan) {
		c := plan[node]
		if c.Signed != nil && !c.Bid.DryRun && (len(c.Signed.Signature) == 0 || c.Signed.Verify(deployment, c.Provider.Host)) {
			continue
		}
		why := "bid signature does not verify"
		switch {
		case c.Bid.DryRun:
			why = "a dry-run bid (dms plan): no reservation backs it"
		case c.Signed == nil:
			why = "no bid"
		}
		bad = append(bad, Reason{Peer: c.Provider.Host, Node: node, Kind: deployproto.KindInvalid, Reasons: []string{why}})
	}
	return bad
}

// sortedKeys returns m's keys, sorted: one allocation, none for an empty
// map (slices.Sorted(maps.Keys(m)) makes its iterators and grows its slice).
func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
