// Package orchestrator runs deployments: for each ensemble submitted to
// this node, an orchestrator actor collects bids, places the ensemble's
// nodes on providers (all or nothing), commits in two phases with revert,
// starts the allocations in dependency order and supervises them until the
// deployment completes, fails or is shut down. Its state is persisted at
// every transition and resumed after a restart.
//
// The provider side lives here too (Provider): a node's answer to bid
// requests, commits and reverts. protocol.go is the wire contract between
// orchestrators, providers and allocation actors.
package orchestrator
