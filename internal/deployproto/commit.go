package deployproto

import (
	"net/netip"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/match"
)

// CommitRequest turns a reservation into allocations (phase two).
type CommitRequest struct {
	Deployment   string            `json:"deployment"`
	Node         string            `json:"node"`
	Reservation  string            `json:"reservation"`
	Orchestrator actor.Handle      `json:"orchestrator"`
	Allocations  []AllocationSpec  `json:"allocations"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	// Epoch is the placement's fencing epoch; StopAfter how long its
	// allocations run on without an acknowledgement from the orchestrator
	// (0: DefaultStopAfterFactor times the provider's idea of lost_after).
	Epoch     uint64        `json:"epoch,omitempty"`
	StopAfter time.Duration `json:"stop_after,omitempty"`
	// Secrets are the user's secrets the allocations name (an s3 volume's
	// credentials.secret), each sealed to the provider's key with
	// identity.SealTo and the context SecretContext(deployment, name).
	Secrets map[string][]byte `json:"secrets,omitempty"`
	// Contract is the placement's contract, signed by the requester
	// (contract.New); the provider checks it against its bid and signs
	// it (CommitReply.ProviderSig).
	Contract *contract.Contract `json:"contract,omitempty"`
	// NoteChain delegates BehaviorNote on the requester node to the
	// provider node (token file text).
	NoteChain string `json:"note_chain,omitempty"`
}

// SecretContext is the sealing context of secret name of a deployment: a
// box sealed for one deployment does not open for another.
func SecretContext(deployment, name string) []byte {
	return []byte("dms-secret/" + deployment + "/" + name)
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
	// Attempt is the placement attempt of the allocation's node: 1 at the
	// first placement, one more at each redeploy (an s3 out volume's keys
	// default to <deployment>/<allocation>/<attempt>/).
	Attempt int `json:"attempt,omitempty"`
	// Subnet is the allocation's address on the deployment's subnet with
	// the block's length (10.77.0.2/24), when the ensemble asks for one
	// (network.subnet); the provider gets the routing table by
	// BehaviorSubnet before the start. The zero prefix: no subnet.
	Subnet netip.Prefix `json:"subnet,omitzero"`
	// ShipLogs asks the provider to send the allocation's output lines to
	// its log store too (the ensemble's logs.ship).
	ShipLogs bool `json:"ship_logs,omitempty"`
}

// CommitReply lists the allocation actors created, by allocation name.
type CommitReply struct {
	Allocations map[string]actor.Handle `json:"allocations"`
	// ProviderSig is the provider's signature of the commit's contract.
	ProviderSig []byte `json:"provider_sig,omitempty"`
}

// RevertRequest undoes a bid or a commit: allocations are stopped and
// removed, the reservation released. Reverting twice does nothing.
type RevertRequest struct {
	Deployment  string `json:"deployment"`
	Reservation string `json:"reservation"`
}

// ReleaseRequest ends a broadcast bid round in one message instead of a
// RevertRequest to each provider whose bid was not taken: every provider
// that holds Reservation (a round's ID, ReservationID, the same at every
// provider) for the orchestrator that sends it releases it, unless its
// host is in Keep (the providers the placement uses, which the
// orchestrator commits or reverts one by one). A provider releases only
// a reservation made for the sender and not yet committed; one that
// misses the release keeps the reservation until it expires, as after a
// lost revert. It is sent in the binary form (MarshalReleaseRequest);
// JSON is accepted too.
type ReleaseRequest struct {
	Deployment  string   `json:"deployment"`
	Reservation string   `json:"reservation"`
	Keep        []string `json:"keep,omitempty"` // peer IDs
}
