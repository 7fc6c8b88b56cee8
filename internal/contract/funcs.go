package contract

import (
	"context"
	"errors"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// errTODO marks the seams the contract core fills in.
var errTODO = errors.New("contract: not implemented yet")

// Validate checks the terms: names, parties, interval within
// [MinInterval, MaxInterval], the price valid, settlement known.
func (t *Terms) Validate() error { return errTODO }

// Amount is what usage u costs under the terms, rounded down to the
// micro-unit, each priced part separately (so the requester recomputes
// exactly the provider's figure); MaxMoney when it overflows.
func (t *Terms) Amount(u Usage) match.Money { return 0 }

// New validates t, encodes it and signs the contract's ID as the
// requester. t.Requester must be key's DID.
func New(t Terms, requester *identity.Key) (*Contract, error) { return nil, errTODO }

// Open checks a decoded contract: ID is the hash of Body, Body decodes to
// valid terms, the requester's signature (and the provider's, when set)
// verifies. Refusals are *RefusalError.
func (c *Contract) Open() error { return errTODO }

// Terms returns the decoded terms (after New or Open).
func (c *Contract) Terms() *Terms { return c.terms }

// SignAsProvider adds the provider's signature; key must be the terms'
// Provider.
func (c *Contract) SignAsProvider(key *identity.Key) error { return errTODO }

// Signed reports whether both parties' signatures are present and valid.
func (c *Contract) Signed() bool { return false }

// Issue is the provider's next note: Seq one above prev's (1 without
// prev), chained to prev's hash, the amount Terms.Amount(u), signed with
// key (the terms' Provider).
func (c *Contract) Issue(key *identity.Key, prev *SignedNote, at time.Time, u Usage, final bool) (*SignedNote, error) {
	return nil, errTODO
}

// Open checks a decoded note: Hash is the hash of Body and Body decodes.
// Signatures are checked by CheckNote and Accepted.
func (n *SignedNote) Open() error { return errTODO }

// Note returns the decoded note (after Issue or Open).
func (n *SignedNote) Note() *Note { return n.note }

// CheckNote is the requester's check of the provider's next note under c,
// last being the last note it accepted (nil before the first): the
// provider's signature, the contract, seq and prev following last, no
// counter going back, the amount equal to Terms.Amount of the usage, no
// note after a final one. The budget is the caller's (it spans the
// deployment's contracts). Refusals are *RefusalError; a note equal to
// last is ErrReplay.
func CheckNote(c *Contract, last, n *SignedNote) error { return errTODO }

// Countersign adds the requester's signature to a checked note.
func (n *SignedNote) Countersign(key *identity.Key) {}

// Accepted reports whether n carries the provider's and the requester's
// valid signatures under c.
func (n *SignedNote) Accepted(c *Contract) bool { return false }

// Chain is a contract with its notes in order: what `dms contract show -o
// json` prints and `dms contract verify --file` reads.
type Chain struct {
	Contract *Contract    `json:"contract"`
	Notes    []SignedNote `json:"notes"`
}

// Summary is what VerifyChain found.
type Summary struct {
	Notes    int         `json:"notes"`
	Accepted int         `json:"accepted"` // countersigned
	Usage    Usage       `json:"usage"`    // of the last note
	Amount   match.Money `json:"amount"`   // of the last note
	// Owed is the amount of the last countersigned note: what the
	// requester has agreed to pay.
	Owed  match.Money `json:"owed"`
	Final bool        `json:"final"`
}

// VerifyChain checks a whole chain offline: the contract and both its
// signatures, every note as CheckNote would, countersignatures where
// present (a countersigned note after one that is not is refused).
func VerifyChain(ch *Chain) (Summary, error) { return Summary{}, errTODO }

// Ledger settles contracts. The local ledger (package ledger) keeps
// balances and escrow per DID in the node's store; a payment channel or a
// chain plugs in behind the same methods (Settle would send the
// countersigned note as a voucher).
type Ledger interface {
	// Open records a signed contract; its budget, when set, is held in
	// escrow from the requester. Opening twice does nothing.
	Open(ctx context.Context, c *Contract) error
	// Settle moves funds for a countersigned note of an opened contract:
	// what its cumulative amount adds to what the contract has paid so
	// far (nothing for a note already covered, whatever the order). It
	// returns the amount moved now.
	Settle(ctx context.Context, n *SignedNote) (match.Money, error)
	// Close ends a contract: its escrow left is released, and no note
	// settles afterwards. Closing twice does nothing.
	Close(ctx context.Context, contractID string) error
	// Balance is a DID's account.
	Balance(ctx context.Context, did identity.DID) (Balance, error)
}

// Balance is one DID's account in a ledger.
type Balance struct {
	DID      identity.DID `json:"did"`
	Paid     match.Money  `json:"paid"`     // settled to others
	Received match.Money  `json:"received"` // settled from others
	Escrowed match.Money  `json:"escrowed"` // held for open contracts' budgets
}
