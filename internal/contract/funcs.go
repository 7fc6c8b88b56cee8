package contract

import (
	"context"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Ledger settles contracts. The local ledger (package ledger) keeps
// balances and escrow per DID in the node's store; a payment channel or a
// chain plugs in behind the same methods (Settle would send the
// countersigned note as a voucher).
type Ledger interface {
	// Open records a signed contract. Its deployment's budget, when set,
	// is held in escrow from the requester once for all the
	// deployment's contracts (less what they paid). Opening twice does
	// nothing.
	Open(ctx context.Context, c *Contract) error
	// Settle moves funds for a countersigned note of an opened contract:
	// what its cumulative amount adds to what the contract has paid so
	// far (nothing for a note already covered, whatever the order). It
	// returns the amount moved now.
	Settle(ctx context.Context, n *SignedNote) (match.Money, error)
	// Close ends a contract; the deployment's escrow left is released
	// when no other contract of it is open. A countersigned
	// note that arrives later still settles (a signed debt, such as a late
	// final invoice, is never lost). Closing twice does nothing.
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
