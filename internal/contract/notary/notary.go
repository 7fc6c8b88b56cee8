// Package notary runs contracts on a node (package contract): as a
// provider it meters each contract's allocations, signs a cumulative note
// every interval, sends it to the requester and stops the allocations when
// notes stay unsigned; as a requester it checks, countersigns and settles
// the notes of its deployments, and says when a deployment's budget is
// spent. Contracts, notes and their states are kept in the node's store,
// so both sides resume after a restart (kill -9 included).
package notary

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// Role is this node's side of a contract.
type Role string

// Roles.
const (
	RoleProvider  Role = "provider"
	RoleRequester Role = "requester"
)

// State is where a contract is in its life.
type State string

// States.
const (
	StateProposed State = "proposed" // requester: signed by us, not yet by the provider
	StateActive   State = "active"   // both signed; notes flow
	StateClosed   State = "closed"   // the final note (invoice) is countersigned, or the placement was reverted
	StateStopped  State = "stopped"  // provider: allocations stopped for want of countersignatures (Reason says why)
)

// Record is the stored state of one contract on this node.
type Record struct {
	Contract *contract.Contract `json:"contract"`
	Role     Role               `json:"role"`
	State    State              `json:"state"`
	Reason   string             `json:"reason,omitempty"`
	// Last is the last note issued (provider) or received and accepted
	// (requester); Accepted the last countersigned one.
	Last     *contract.SignedNote `json:"last,omitempty"`
	Accepted *contract.SignedNote `json:"accepted,omitempty"`
	Updated  time.Time            `json:"updated"`
}

// Expect is what a provider agreed to in its bid: Sign refuses terms
// that differ.
type Expect struct {
	Deployment  string
	Reservation string
	Requester   identity.DID                  // the commit sender's node
	Terms       func(t *contract.Terms) error // further checks (price, reserved), nil: none
}

// Config is what a Notary needs. DB, Key and Ledger are required.
type Config struct {
	DB     *store.DB
	Key    *identity.Key // this node's key: signs notes and countersignatures
	Ledger contract.Ledger

	// Provider side. Meter returns the cumulative usage of a
	// reservation's allocations, and whether they have all ended (then the
	// note is the final one). Send delivers a note to the requester
	// (deployproto.BehaviorNote) and returns it countersigned; a refusal
	// is an error (*actor.Error with deployproto.CodeBudget or
	// CodeNoteRefused). Stop stops a reservation's allocations with a
	// reason (the allocations' message).
	Meter func(ctx context.Context, reservation string) (u contract.Usage, ended bool, err error)
	Send  func(ctx context.Context, c *contract.Contract, n *contract.SignedNote) (*contract.SignedNote, error)
	Stop  func(ctx context.Context, reservation, reason string) error

	// Requester side. Exhausted is told when a deployment's budget is
	// spent (a note refused with contract.ErrBudget): the orchestrator
	// shuts it down with the reason.
	Exhausted func(deployment, reason string)

	Now    func() time.Time
	Logger *slog.Logger
}

// Notary runs this node's contracts.
type Notary struct {
	cfg Config
}

var errTODO = errors.New("notary: not implemented yet")

// Open loads the contracts of an earlier run; Run resumes them.
func Open(cfg Config) (*Notary, error) { return &Notary{cfg: cfg}, nil }

// Run meters and notes the provider-side contracts until ctx is done.
func (n *Notary) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Propose is the requester's side of a commit: it signs terms as the
// requester (t.Requester is this node) and keeps the contract proposed.
func (n *Notary) Propose(t contract.Terms) (*contract.Contract, error) { return nil, errTODO }

// Agree completes a proposed contract with the provider's signature from
// the commit reply, checks it, opens it in the ledger and makes it active.
func (n *Notary) Agree(id string, providerSig []byte) error { return errTODO }

// Abandon closes a proposed or active requester contract whose placement
// was reverted or replaced (what was countersigned stays owed).
func (n *Notary) Abandon(id, reason string) error { return errTODO }

// Sign is the provider's side of a commit: it checks the contract against
// what was bid, signs it, keeps it and starts noting it. It returns the
// provider's signature.
func (n *Notary) Sign(c *contract.Contract, want Expect) ([]byte, error) { return nil, errTODO }

// HandleNote is the requester's answer to a provider's note (from is the
// sending node's DID): checked, within the budget, countersigned, stored
// and settled; or refused with an *actor.Error (deployproto.CodeBudget,
// CodeNoteRefused).
func (n *Notary) HandleNote(ctx context.Context, from identity.DID, sn contract.SignedNote) (contract.SignedNote, error) {
	return contract.SignedNote{}, errTODO
}

// Get returns the record of contract id (store.ErrNotFound when unknown).
func (n *Notary) Get(id string) (Record, error) { return Record{}, errTODO }

// List returns the records of a deployment's contracts ("": all), newest
// first.
func (n *Notary) List(deployment string) ([]Record, error) { return nil, errTODO }

// Chain returns a contract with all its notes, for export and
// verification.
func (n *Notary) Chain(id string) (*contract.Chain, error) { return nil, errTODO }
