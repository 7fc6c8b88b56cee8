// Package contract is the agreement between the requester of a deployment
// and one of its providers, and the money that follows from it.
//
// A Contract covers one placement of one node of a deployment on one
// provider (one reservation): its Terms name the parties (the requester's
// and the provider's node DIDs), the price vector agreed in the bid, the
// resources reserved, the metering interval, the budget and the settlement
// method. Both parties sign the contract's ID, the SHA-256 of the terms'
// encoding, so either can prove what was agreed; the commit and start
// requests of the placement carry the ID.
//
// While the allocations run, the provider signs a Note every interval: the
// cumulative Usage measured from the kernel and the cumulative Amount due
// (Terms.Amount, integer money only), chained to the previous note's hash.
// The requester checks it (CheckNote) against the contract and the budget
// and countersigns it; the last note, marked Final, is the invoice. A
// Ledger moves funds for countersigned notes exactly once, whatever order,
// duplication or delay they arrive in: it pays the difference between a
// note's cumulative amount and what its contract has paid so far.
//
// The package is pure: no network, disk or clock of its own.
package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Settlement methods.
const (
	// SettleLocal settles through each party's local ledger (package
	// ledger): balances and escrow per DID in the node's store.
	SettleLocal = "local"
)

// Bounds of the terms.
const (
	MinInterval     = time.Second
	DefaultInterval = time.Minute
	MaxInterval     = 24 * time.Hour
	// MaxAllocations bounds the allocations one contract covers.
	MaxAllocations = 64
	// MaxEncoded bounds an encoded contract or note: larger ones are
	// refused before they are decoded.
	MaxEncoded = 64 << 10
)

// Terms are what both parties sign.
type Terms struct {
	Version     int    `json:"v"` // 1
	Deployment  string `json:"deployment"`
	Node        string `json:"node"`        // the ensemble node placed
	Reservation string `json:"reservation"` // the provider's reservation (one per placement)
	// Allocations are the allocation names the contract covers.
	Allocations []string `json:"allocations"`
	// Requester is the orchestrating node's DID (it signs for the user);
	// User is the deployment owner's DID the requester acts for.
	Requester identity.DID `json:"requester"`
	User      identity.DID `json:"user,omitempty"`
	Provider  identity.DID `json:"provider"`
	// Price is the provider's price of the bid, per hour: CPU per core-hour
	// of CPU time used, RAM per GiB-hour of memory in use, Disk per
	// GiB-hour and GPU per GPU-hour of what is reserved, for the wall
	// time the allocations run.
	Price    match.Price     `json:"price"`
	Reserved match.Resources `json:"reserved"`
	// Interval is the metering interval: one note per interval.
	Interval time.Duration `json:"interval"`
	// Budget caps what the whole deployment may cost (0: no cap). The
	// requester refuses a note that would take the deployment's
	// contracts together above it.
	Budget     match.Money `json:"budget,omitempty"`
	Settlement string      `json:"settlement"` // SettleLocal
	Created    time.Time   `json:"created"`
}

// Contract is signed terms: Body is the terms' JSON as the requester
// encoded and signed it (decoded from these very bytes, never re-encoded),
// ID the hex SHA-256 of Body.
type Contract struct {
	ID           string          `json:"id"`
	Body         json.RawMessage `json:"body"`
	RequesterSig []byte          `json:"requester_sig"`
	ProviderSig  []byte          `json:"provider_sig,omitempty"`

	terms   *Terms  // decoded Body, set by New and Open
	termsOf string  // the ID terms was decoded for
	bodyOf  []byte  // a private copy of the Body whose hash termsOf is
	reqOK   sigMemo // the requester's signature that verified
	provOK  sigMemo // the provider's signature that verified
}

// Usage is the cumulative usage of a contract's allocations, measured
// from the kernel. Every field only grows from one note to the next.
type Usage struct {
	CPUMicros         uint64 `json:"cpu_us"`              // CPU time used, user and system, µs
	MemoryByteSeconds uint64 `json:"memory_byte_s"`       // memory in use integrated over time
	WallMillis        uint64 `json:"wall_ms"`             // time the allocations ran
	NetBytes          uint64 `json:"net_bytes,omitempty"` // bytes in and out (not priced yet)
}

// Note is a provider's cumulative statement under a contract.
type Note struct {
	Contract string `json:"contract"` // Contract.ID
	Seq      uint64 `json:"seq"`      // 1, 2, …
	// Prev is the hash of the previous note (NoteHash), empty for Seq 1.
	Prev   string      `json:"prev,omitempty"`
	Time   time.Time   `json:"time"`
	Usage  Usage       `json:"usage"`
	Amount match.Money `json:"amount"` // Terms.Amount(Usage)
	// Final marks the invoice: the allocations have ended, no note
	// follows.
	Final bool `json:"final,omitempty"`
}

// SignedNote is a Note as the provider signed it (Body, decoded from the
// signed bytes), with the requester's countersignature once accepted.
type SignedNote struct {
	Hash         string          `json:"hash"` // hex SHA-256 of Body
	Body         json.RawMessage `json:"body"`
	ProviderSig  []byte          `json:"provider_sig"`
	RequesterSig []byte          `json:"requester_sig,omitempty"`

	note   *Note   // decoded Body
	noteOf string  // the Hash note was decoded for
	bodyOf []byte  // a private copy of the Body whose hash noteOf is
	provOK sigMemo // the provider's signature that verified
	reqOK  sigMemo // the requester's signature that verified
}

// Errors. Every refusal of a contract or a note wraps one of them (in a
// *RefusalError that says what exactly).
var (
	ErrMalformed   = errors.New("malformed")              // does not decode, or a field out of range
	ErrSignature   = errors.New("bad signature")          // forged, or signed by the wrong key
	ErrWrongParty  = errors.New("wrong party")            // a contract not between the expected DIDs
	ErrTerms       = errors.New("out of terms")           // terms the receiver did not agree to
	ErrOutOfOrder  = errors.New("out of order")           // a note's seq or prev does not follow the chain
	ErrReplay      = errors.New("replayed")               // a note already accepted
	ErrAmount      = errors.New("amount disagrees")       // amount ≠ the price vector applied to the usage
	ErrRegress     = errors.New("usage goes back")        // a cumulative counter decreased
	ErrBudget      = errors.New("budget exhausted")       // the amount would exceed the budget
	ErrClosed      = errors.New("contract closed")        // a note after the final one
	ErrUnknown     = errors.New("unknown contract")       // no such contract here
	ErrNotAccepted = errors.New("note not countersigned") // settlement of a note without the requester's signature
)

// RefusalError says why a contract or note was refused; Err is one of the
// sentinel errors above.
type RefusalError struct {
	Err    error
	Detail string
}

func (e *RefusalError) Error() string { return e.Err.Error() + ": " + e.Detail }
func (e *RefusalError) Unwrap() error { return e.Err }

// hashHex is the hex SHA-256 of b.
func hashHex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
