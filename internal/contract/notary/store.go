package notary

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/store"
)

// Layout in the node's store:
//
//	contracts       "<id>/<role>" → row, indexed on deployment and reservation
//	contract-notes  "<id>/<seq %020d>" → noteRow
//
// The role is part of a contract's key because a node may be both sides
// of one contract (a deployment placed on its orchestrating node).
//
// Signed bytes are kept as []byte (base64 in JSON), never as
// json.RawMessage: the store's JSON encoder would compact raw bytes and
// so change what the hashes and signatures cover.
var (
	rows = store.NewKind("contracts", func(r row) string { return rowKey(r.ID, r.Role) },
		store.IndexOn("deployment", func(r row) string { return r.Deployment }),
		store.IndexOn("reservation", func(r row) string { return r.Reservation }),
	)
	notes = store.NewKind("contract-notes", func(n noteRow) string { return noteKey(n.Contract, n.Seq) })
)

func rowKey(id string, role Role) string { return id + "/" + string(role) }

func noteKey(id string, seq uint64) string { return fmt.Sprintf("%s/%020d", id, seq) }

// storedContract is a contract as signed, byte for byte.
type storedContract struct {
	ID           string `json:"id"`
	Body         []byte `json:"body"`
	RequesterSig []byte `json:"requester_sig"`
	ProviderSig  []byte `json:"provider_sig,omitempty"`
}

// storedNote is a signed note, byte for byte.
type storedNote struct {
	Hash         string `json:"hash"`
	Body         []byte `json:"body"`
	ProviderSig  []byte `json:"provider_sig"`
	RequesterSig []byte `json:"requester_sig,omitempty"`
}

// row is the stored state of one contract on one side: the Record and
// what the runtime needs to resume.
type row struct {
	ID          string         `json:"id"`
	Role        Role           `json:"role"`
	Deployment  string         `json:"deployment"`
	Reservation string         `json:"reservation"`
	State       State          `json:"state"`
	Reason      string         `json:"reason,omitempty"`
	Contract    storedContract `json:"contract"`
	Last        *storedNote    `json:"last,omitempty"`
	Accepted    *storedNote    `json:"accepted,omitempty"`
	Updated     time.Time      `json:"updated"`

	// Provider side. Quiet is the tick time since which no note was
	// countersigned (activation, or the tick of the last acceptance);
	// Refusal the last refusal or failure, BudgetRefused whether it was
	// CodeBudget; Refused whether Last was refused (it is dropped, the
	// next note follows Accepted); FinalTries counts final notes sent
	// after a stop.
	Quiet         time.Time `json:"quiet,omitempty"`
	Refusal       string    `json:"refusal,omitempty"`
	BudgetRefused bool      `json:"budget_refused,omitempty"`
	Refused       bool      `json:"refused,omitempty"`
	FinalTries    int       `json:"final_tries,omitempty"`

	// Requester side. Grace is, for an abandoned contract, until when a
	// note (the provider's invoice) is still accepted.
	Grace time.Time `json:"grace,omitempty"`
	// LedgerClosed: the ledger closed the contract (both sides).
	LedgerClosed bool `json:"ledger_closed,omitempty"`
}

// noteRow is one note of a contract's chain.
type noteRow struct {
	Contract string     `json:"contract"`
	Seq      uint64     `json:"seq"`
	Note     storedNote `json:"note"`
}

func storeContract(c *contract.Contract) storedContract {
	return storedContract{ID: c.ID, Body: clone(c.Body), RequesterSig: clone(c.RequesterSig), ProviderSig: clone(c.ProviderSig)}
}

// open decodes and checks a stored contract.
func (s storedContract) open() (*contract.Contract, error) {
	c := &contract.Contract{ID: s.ID, Body: json.RawMessage(clone(s.Body)), RequesterSig: clone(s.RequesterSig), ProviderSig: clone(s.ProviderSig)}
	if err := c.Open(); err != nil {
		return nil, fmt.Errorf("stored contract %s: %w", s.ID, err)
	}
	return c, nil
}

func storeNote(n *contract.SignedNote) *storedNote {
	if n == nil {
		return nil
	}
	return &storedNote{Hash: n.Hash, Body: clone(n.Body), ProviderSig: clone(n.ProviderSig), RequesterSig: clone(n.RequesterSig)}
}

// open decodes a stored note (nil for nil).
func (s *storedNote) open() (*contract.SignedNote, error) {
	if s == nil {
		return nil, nil
	}
	n := &contract.SignedNote{Hash: s.Hash, Body: json.RawMessage(clone(s.Body)), ProviderSig: clone(s.ProviderSig), RequesterSig: clone(s.RequesterSig)}
	if err := n.Open(); err != nil {
		return nil, fmt.Errorf("stored note %s: %w", s.Hash, err)
	}
	return n, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// record converts a row to the Record callers see.
func (r *row) record() (Record, error) {
	c, err := r.Contract.open()
	if err != nil {
		return Record{}, err
	}
	last, err := r.Last.open()
	if err != nil {
		return Record{}, err
	}
	acc, err := r.Accepted.open()
	if err != nil {
		return Record{}, err
	}
	return Record{Contract: c, Role: r.Role, State: r.State, Reason: r.Reason, Last: last, Accepted: acc, Refusal: r.Refusal, Updated: r.Updated}, nil
}

// putNote stores n as the note of its seq.
func putNote(tx *store.Tx, n *contract.SignedNote) error {
	d := n.Note()
	return notes.Put(tx, noteRow{Contract: d.Contract, Seq: d.Seq, Note: *storeNote(n)})
}
