package deployproto

import (
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
)

// Contracts. The orchestrator proposes a contract per placed node (package
// contract) in its CommitRequest, signed as the requester; the provider
// checks the terms against its bid, signs them and returns its signature
// in the CommitReply. The StartRequest of each allocation names the
// contract by ID. While the allocations run, the provider node sends a
// note every interval to the requester node (BehaviorNote), which checks
// and countersigns it, or refuses it with one of the codes below.
//
// The requester's orchestrator authorizes the provider node to invoke
// BehaviorNote with the delegation CommitRequest.NoteChain (a token file
// text, like StartRequest.Chain).
const BehaviorNote = "/dms/deployment/note" // NoteRequest → NoteReply, on the requester node

// Codes of a refused note.
const (
	// CodeBudget: the note would take the deployment above its budget;
	// the provider stops the contract's allocations.
	CodeBudget actor.Code = "budget-exhausted"
	// CodeNoteRefused: the note is not within the contract's terms
	// (forged, out of order, amount, replay, unknown contract); the
	// message says which.
	CodeNoteRefused actor.Code = "note-refused"
)

// NoteRequest carries the provider's next note.
type NoteRequest struct {
	Note contract.SignedNote `json:"note"`
}

// NoteReply returns the note countersigned.
type NoteReply struct {
	Note contract.SignedNote `json:"note"`
}
