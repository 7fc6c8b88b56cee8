// Package placement is the orchestrator's placement core: pure functions
// from an ensemble and the bids of one round to a placement and, for
// every provider that is not used, the reasons why. It does no I/O and
// reads no clock (the caller passes the time), so the same inputs always
// give the same placement; the scenarios under testdata/ pin it down.
//
// # Usage
//
// One bid round of the orchestrator, with the I/O left to the caller:
//
//	reqs := placement.Requests(spec, now)        // what each node asks of a provider
//	// ... broadcast a deployproto.BidRequest with reqs, collect replies ...
//	cands, reasons := placement.Rate(placement.Round{
//		Requests: reqs, Asked: asked, Replies: replies, Answered: answered,
//		Excluded: excluded, Now: now,
//	})
//	nodes, _ := placement.Nodes(spec)
//	plan, missing := placement.Place(nodes, cands, placement.Edges(spec))
//	if plan == nil {
//		reasons = placement.Explain(missing, cands, placement.Edges(spec), reasons)
//		hint := placement.ExecutorHint(round) // how to get an executor nobody offers
//	}
//	bad := placement.VerifyBids(deployment, plan) // the winners' signatures
//
// # Rules
//
// A bid counts for a node when its provider is a valid peer ID, its offer
// is well-formed, the provider is not excluded, the node is not pinned to
// another peer, and the orchestrator's own scoring (match.Score) finds the
// offer eligible: a provider's claim to fit is checked, not trusted. Place
// gives every node a distinct provider, all or nothing, best-rated bids
// first, and keeps the ensemble's rtt edges; ties go to the lower provider
// ID. Every provider that answered and is not used gets a Reason per node,
// with a Kind (deployproto.Kind*) that the CLI groups by.
package placement
