// Package metrics is the node's Prometheus metrics: a registry of its own
// (not the global one) with the process and Go collectors and every dms_
// metric, served in the Prometheus text format by Handler.
//
// Usage:
//
//	m := metrics.New()
//	sys, _ := actor.NewSystem(actor.Config{Observer: m.Observer(), …})
//	m.Observer().Known(root.Behaviors()...)
//	m.Watch(metrics.Sources{Traffic: host.Traffic, Actors: sys.Stats, …})
//	mux.Handle("GET /metrics", m.Handler())
//
// Three kinds of metrics:
//   - the Observer counts actor messages on the hot path (actor.Observer):
//     pre-resolved counters, no allocation per message;
//   - hooks record what only the moment knows: StoreCommit (bbolt commit
//     latency), ExecutorStart (how long an executor's Start took);
//   - Sources are read at scrape time: counters and states the packages
//     already keep (peers, bytes, deployments and allocations by state,
//     bids, placements, allocation usage, contracts, subnet packets), so
//     the node pays nothing between scrapes.
//
// Cardinality: behavior names come from peers, so a refusal of a name
// this node does not know (unknown-behavior) is counted under behavior
// "other"; only names registered on this node's actors (Known, or handled
// here) get their own label, at most MaxBehaviors of them. Codes outside
// actor's own set are "other" too. Per-allocation series (usage) exist
// while the allocation does.
//
// Concurrency: every method is safe for concurrent use.
//
// docs/observability.md lists every metric with its meaning.
package metrics
