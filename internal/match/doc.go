// Package match is the capability algebra: amounts of resources (CPU, memory,
// disk, GPUs), their arithmetic, and how a machine compares with and scores
// against a requirement. It is pure: no I/O, no clock.
//
// One algebra serves both sides of a deployment: a provider asks whether a
// request fits its free resources before it bids, and an orchestrator ranks
// the bids it received.
//
// Sizes are bytes internally (Bytes) and CPU is thousandths of a core
// (MilliCPU); both parse from and print to the human forms 512MiB, 2GB, 1.5.
// Prices are Money (millionths of a unit) per hour and per unit of resource
// (Price).
//
// # Usage
//
// Arithmetic never goes below zero and never overflows silently:
//
//	free, err := onboarded.Sub(allocated) // *AmountError wrapping ErrNegative
//	total, err := a.Add(b)                // *AmountError wrapping ErrOverflow
//
// Compare says whether a requirement fits what is free, and if not, why, per
// dimension ("ram: need 4GiB, have 2GiB free"). An exact fit is a fit.
// Assign turns a requirement into the concrete resources to take (which GPU
// devices), ready for Sub:
//
//	if f := match.Compare(free, want); !f.OK() { return f.Err() }
//	take, _ := match.Assign(free, want)
//
// Score rates an Offer (a provider's free resources, executors, location,
// price, benchmark figures, availability) against a Request (resources,
// required executors, location rules, maximum price, time window, soft
// preferences): hard constraints decide Eligible (with reasons), soft ones
// give Value in [0,1]. Rank scores and orders many offers. The provider calls
// Score on its own Offer to decide whether to bid; the orchestrator calls
// Rank on the Offers in the bids. Score documents the formula.
//
// Every function here is deterministic, safe for concurrent use, and does not
// modify its arguments.
package match
