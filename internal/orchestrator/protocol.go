package orchestrator

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// The deployment protocol: behaviors (and UCAN commands) between an
// orchestrator, the providers that bid for its nodes, and the allocation
// actors that run its work.
//
//	orchestrator ──request (gossip on TopicDeployments, unicast to pinned)──▶ provider node
//	             ◀──────────────────── BidReply: bids and reasons not to bid
//	             ──commit──▶ provider node: reservation → allocation actors
//	             ──revert──▶ provider node: release (idempotent)
//	             ──start/stop/logs/status──▶ allocation actor
//	allocation   ──report (state changes, heartbeats, result)──▶ orchestrator
//	allocation   ──artifact (fetch a module or image by digest)──▶ orchestrator
//
// Authority: the user who submits a deployment delegates /dms/deployment and
// /dms/allocation to their node, which delegates both to the deployment's
// orchestrator actor, which delegates /dms/deployment to each allocation
// actor it commits. Providers trust the user (an operator key) for /dms.
const (
	BehaviorRequest  = "/dms/deployment/request"  // BidRequest → BidReply
	BehaviorCommit   = "/dms/deployment/commit"   // CommitRequest → CommitReply
	BehaviorRevert   = "/dms/deployment/revert"   // RevertRequest → struct{}
	BehaviorReport   = "/dms/deployment/report"   // Report (one way)
	BehaviorArtifact = "/dms/deployment/artifact" // ArtifactRequest → ArtifactChunk

	BehaviorStart  = "/dms/allocation/start"  // StartRequest → struct{}
	BehaviorStop   = "/dms/allocation/stop"   // StopRequest → struct{}
	BehaviorLogs   = "/dms/allocation/logs"   // LogsRequest → LogsChunk
	BehaviorStatus = "/dms/allocation/status" // struct{} → AllocationStatus

	// TopicDeployments carries bid requests.
	TopicDeployments = "deployments"

	// CmdDeployment and CmdAllocation are the command prefixes a user
	// delegates to let a node deploy on its behalf.
	CmdDeployment = "/dms/deployment"
	CmdAllocation = "/dms/allocation"
)

// BidRequest asks providers to bid for the nodes of a deployment.
type BidRequest struct {
	Deployment   string        `json:"deployment"`
	Orchestrator actor.Handle  `json:"orchestrator"`
	Round        int           `json:"round"` // reservations are named per round, so a retry never collides
	Nodes        []NodeRequest `json:"nodes"`
}

// NodeRequest is what one node of the ensemble asks of its provider: the sum
// of its allocations' resources, the executors they use, and where it may
// be.
type NodeRequest struct {
	Name    string        `json:"name"`
	Request match.Request `json:"request"`
	// Peer pins the node to one provider (peer ID); others do not bid.
	Peer string `json:"peer,omitempty"`
}

// BidReply answers a BidRequest: a bid for the nodes the provider can host
// (any one of them: a provider hosts at most one node of an ensemble), with
// resources reserved for ReservationTTL, and the reasons it cannot host
// the others.
type BidReply struct {
	Provider actor.Handle `json:"provider"`
	// Offer is what the provider had free before this request, so the
	// orchestrator can shortlist it for later deployments.
	Offer  *match.Offer `json:"offer,omitempty"`
	Bid    *SignedBid   `json:"bid,omitempty"`
	NoBids []NoBid      `json:"no_bids,omitempty"`
}

// SignedBid is a Bid as its provider signed it: Body is the bid's JSON and
// Signature the provider node key's Ed25519 signature of SignedBytes. The
// orchestrator decodes the bid from the very bytes that were signed, so
// what it acts on is what the provider can be held to, and nothing is
// re-encoded to check it (JSON does not round-trip byte for byte).
type SignedBid struct {
	Body      json.RawMessage `json:"body"`
	Signature []byte          `json:"signature"`
}

// SignedBytes is what the signature covers: the deployment and provider
// bind the bid to one request, the body is the bid.
func (s *SignedBid) SignedBytes(deployment, provider string) []byte {
	return fmt.Appendf(nil, "dms-bid|%s|%s|%s", deployment, provider, s.Body)
}

// Verify reports whether the signature is the provider's over this bid for
// this deployment.
func (s *SignedBid) Verify(deployment, provider string) bool {
	did, err := identity.DIDFromPeerID(provider)
	return err == nil && identity.Verify(did, s.SignedBytes(deployment, provider), s.Signature)
}

// Open decodes the signed bid.
func (s *SignedBid) Open() (Bid, error) {
	var b Bid
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return Bid{}, fmt.Errorf("bid: %w", err)
	}
	return b, nil
}

// Bid offers to host one of Nodes under one reservation.
type Bid struct {
	Nodes       []string    `json:"nodes"`
	Reservation string      `json:"reservation"`
	Expires     time.Time   `json:"expires"`
	Offer       match.Offer `json:"offer"` // Free is what the reservation holds
	// Latencies are the provider's measured round trips to the peers it
	// is connected to, in milliseconds by peer ID: the orchestrator checks
	// the ensemble's rtt edges with them.
	Latencies map[string]float64 `json:"latencies,omitempty"`
}

// NoBid says why a provider does not bid for a node.
type NoBid struct {
	Node    string   `json:"node"`
	Reasons []string `json:"reasons"`
	// Kind classifies the first reason: resource, executor, location,
	// price, time, onboarding, pinned.
	Kind string `json:"kind"`
}

// CommitRequest turns a reservation into allocations (phase two).
type CommitRequest struct {
	Deployment   string            `json:"deployment"`
	Node         string            `json:"node"`
	Reservation  string            `json:"reservation"`
	Orchestrator actor.Handle      `json:"orchestrator"`
	Allocations  []AllocationSpec  `json:"allocations"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// AllocationSpec is one allocation as its provider runs it.
type AllocationSpec struct {
	Name        string                     `json:"name"`
	Type        ensemble.AllocationType    `json:"type"`
	Executor    ensemble.Executor          `json:"executor"`
	Resources   match.Resources            `json:"resources"`
	Execution   ensemble.Execution         `json:"execution"`
	Ports       []ensemble.Port            `json:"ports,omitempty"`
	Volumes     map[string]ensemble.Volume `json:"volumes,omitempty"`
	Healthcheck *ensemble.Healthcheck      `json:"healthcheck,omitempty"`
	Restart     ensemble.Restart           `json:"restart"`
	// Timeout bounds one run (the ensemble's execution timeout).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// CommitReply lists the allocation actors created, by allocation name.
type CommitReply struct {
	Allocations map[string]actor.Handle `json:"allocations"`
}

// RevertRequest undoes a bid or a commit: allocations are stopped and
// removed, the reservation released. Reverting twice does nothing.
type RevertRequest struct {
	Deployment  string `json:"deployment"`
	Reservation string `json:"reservation"`
}

// StartRequest starts an allocation. Chain is the orchestrator's delegation
// to the allocation actor (token file text) for CmdDeployment: the
// allocation presents it with its reports and artifact requests.
type StartRequest struct {
	Chain string `json:"chain"`
}

// StopRequest stops an allocation (shutdown, or a revert); Grace is how long
// it may take before it is killed.
type StopRequest struct {
	Grace  time.Duration `json:"grace"`
	Remove bool          `json:"remove"` // also delete its data and release its resources
}

// AllocationState is where an allocation is in its life.
type AllocationState string

// The states of an allocation.
const (
	AllocPending    AllocationState = "pending"   // committed, not started
	AllocStarting   AllocationState = "starting"  // fetching artifacts, starting the executor
	AllocRunning    AllocationState = "running"   // the workload runs
	AllocHealthy    AllocationState = "healthy"   // running and its healthcheck passes
	AllocUnhealthy  AllocationState = "unhealthy" // running and its healthcheck fails
	AllocRestarting AllocationState = "restarting"
	AllocCompleted  AllocationState = "completed" // ended by itself with exit code 0
	AllocFailed     AllocationState = "failed"    // ended otherwise, or could not start
	AllocStopped    AllocationState = "stopped"   // stopped on request
	AllocLost       AllocationState = "lost"      // set by the orchestrator: no heartbeat
)

// Terminal reports whether s is final.
func (s AllocationState) Terminal() bool {
	switch s {
	case AllocCompleted, AllocFailed, AllocStopped, AllocLost:
		return true
	}
	return false
}

// Report is what an allocation tells its orchestrator: its state after
// every change, and as a heartbeat every interval.
type Report struct {
	Deployment string           `json:"deployment"`
	Allocation string           `json:"allocation"` // name in the ensemble
	ID         string           `json:"id"`         // allocation ID on the provider
	Seq        uint64           `json:"seq"`        // increases with every report
	State      AllocationState  `json:"state"`
	Restarts   int              `json:"restarts"`
	Message    string           `json:"message,omitempty"`
	Result     *executor.Result `json:"result,omitempty"` // set once it ended
	Ports      []executor.Port  `json:"ports,omitempty"`  // published ports, host side
	Time       time.Time        `json:"time"`
}

// AllocationStatus answers BehaviorStatus.
type AllocationStatus = Report

// ArtifactRequest asks the orchestrator for a chunk of an artifact (a wasm
// module, a vm image) by digest ("sha256:<hex>").
type ArtifactRequest struct {
	Deployment string `json:"deployment"`
	Digest     string `json:"digest"`
	Offset     int64  `json:"offset"`
}

// ArtifactChunk is part of an artifact; Size is the whole artifact's.
type ArtifactChunk struct {
	Data []byte `json:"data"`
	Size int64  `json:"size"`
}

// ArtifactChunkSize is the most an ArtifactChunk carries.
const ArtifactChunkSize = 1 << 20

// LogsRequest reads an allocation's log from Offset, waiting up to Wait for
// new output when there is none (long poll).
type LogsRequest struct {
	Offset int64         `json:"offset"`
	Wait   time.Duration `json:"wait"`
	Max    int           `json:"max"` // bytes; 0: 256 KiB
}

// LogsChunk is a piece of a log: entries in order, the offset to ask for
// next, and EOF once the allocation ended and everything was read.
type LogsChunk struct {
	Entries []LogEntry `json:"entries"`
	Next    int64      `json:"next"`
	EOF     bool       `json:"eof"`
}

// LogEntry is output of one stream.
type LogEntry struct {
	Stream string `json:"stream"` // stdout or stderr
	Data   []byte `json:"data"`
}
