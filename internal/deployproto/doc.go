// Package deployproto is the deployment wire protocol: the behaviors (and
// UCAN commands), the gossip topic and the messages that an orchestrator,
// the providers that bid for its nodes, and the allocation actors that run
// its work exchange. It is the contract between three parties, so it lives
// in none of them (like etcd raft's raftpb): package orchestrator speaks
// the orchestrator's side, package allocation the provider's and the
// allocation actor's.
//
//	orchestrator ──request (gossip on TopicDeployments, unicast to pinned)──▶ provider node
//	             ◀──────────────────── BidReply: a bid and reasons not to bid
//	             ──commit──▶ provider node: reservation → allocation actors
//	             ──revert──▶ provider node: release (idempotent)
//	             ──start/stop/logs/status──▶ allocation actor
//	allocation   ──report (state changes, heartbeats, result)──▶ orchestrator
//	allocation   ──artifact (fetch a module or image by digest)──▶ orchestrator
//
// # Authority
//
// The user who submits a deployment delegates CmdDeployment and
// CmdAllocation to their node, which delegates both to the deployment's
// orchestrator actor, which delegates CmdDeployment to each allocation
// actor it starts (StartRequest.Chain). Providers trust the user (an
// operator key) for /dms.
//
// # Encoding
//
// Messages are JSON, except on the hot path of a bid round: BidRequest,
// BidReply and the Bid a provider signs also have a compact binary form
// (wire.go: MarshalBidRequest, MarshalBidReply, MarshalBid), which the
// orchestrator sends and providers answer in. Its decoders are strict and
// canonical, and accept JSON too, so a provider answers JSON requests in
// JSON (tools and tests read those).
//
// # Values only
//
// The package holds types, constants and pure functions on them: it
// imports value packages only (actor for handles, ensemble, executor and
// match for what the messages carry, identity to verify a bid's
// signature), and no network, disk or executor code. A house test keeps
// it so.
package deployproto
