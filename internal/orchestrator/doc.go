// Package orchestrator runs deployments: for each ensemble submitted to
// this node, an orchestrator actor collects bids, places the ensemble's
// nodes on providers (all or nothing), commits in two phases with revert,
// starts the allocations in dependency order and supervises them until the
// deployment completes, fails or is shut down. Its state is persisted at
// every transition and resumed after a restart.
//
// Supervision heals: a node whose provider is lost (no heartbeat for
// LostAfter) or whose allocation failed there is placed again on another
// provider within the ensemble's reschedule budget, at a new fencing
// epoch, while the rest of the deployment runs on; the copy it replaces is
// told to stop when it reports again, and a provider cut off from its
// orchestrator for StopAfter stops its copy on its own. Restarts and moves
// propagate to dependents by the ensemble's supervision strategy. Every
// decision is an Event on the deployment's timeline. A deployment may have
// standby orchestrators on other nodes, which take over when this one is
// gone for longer than a lease (standby.go).
//
// It speaks the orchestrator's side of the deployment protocol (package
// deployproto); the provider's side is allocation.Provider. The decisions
// of a bid round — what each node asks for, which bids count, where each
// node goes and why not elsewhere — are the pure functions of package
// placement; this package does the I/O around them.
//
// With Config.Contracts set, every placed node runs under a contract
// (package contract): its terms (the provider's price from the signed
// bid, the resources committed, the ensemble's budget and interval) go
// signed in the commit with a delegation that lets the provider node send
// its usage notes to this node; the provider's signature in the reply
// completes it, and its ID goes with each start. A reverted or replaced
// placement abandons its contract. When the notary says the budget is
// spent (Service.Exhausted), the deployment fails with reason
// budget-exhausted and message "budget exhausted", its allocations
// stopped (contracts.go).
//
// # Files, by phase of a deployment
//
//	service.go    Service: submit, resume, list, wait, shutdown, logs
//	run.go        the run loop of one deployment and its persisted state
//	bid.go        bid rounds: broadcast or shortlist, collect, rate, place
//	commit.go     two-phase commit and revert
//	contracts.go  a contract per placed node; budget exhausted
//	start.go      start in depends_on order; artifacts served to allocations
//	supervise.go  reports and their acknowledgements, lost allocations, timeouts, the end
//	heal.go       redeploys within the reschedule budget, strategies
//	standby.go    standby orchestrators: replication, takeover, step-down
//	lease.go      the primary's lease and a standby's last word from it
//	events.go     the timeline
//	logs.go       allocation logs
//	offers.go     the offer cache that shortlists providers
//	trace.go      one trace per deployment: the root span kept in the record, child spans, supervision events
package orchestrator
