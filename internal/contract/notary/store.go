package notary

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/store"
)

// Layout in the node's store:
//
//	contracts        "<id>/<role>" → contractRow, indexed on deployment and
//	                 reservation; written when the contract is signed
//	contract-states  "<id>/<role>" → stateRow, small, written when more
//	                 than the notes changed and when the contract settles
//	contract-notes   "<id>/<role>/<seq %020d>" → noteRow, the countersigned
//	                 notes, and a provider's last note while it is not
//	                 countersigned (no requester signature)
//
// The role is part of the keys because a node may be both sides of one
// contract (a deployment placed on its orchestrating node). A provider's
// note that is not countersigned yet is stored under its own seq, where
// its countersigned copy replaces it: a note then dirties one page of the
// store (its issue and the countersignature of the note before it are
// adjacent keys, committed together), not a page of the states and one
// of the notes. Stores written before kept that note in the state
// (stateRow.Last); it is still read from there.
//
// Note rows are stored in a binary encoding of their own (appendNoteRow,
// a tag byte first); rows written as JSON before are still read.
//
// Signed bytes are kept as []byte (base64 in JSON), never as
// json.RawMessage: the store's JSON encoder would compact raw bytes and
// so change what the hashes and signatures cover.
var (
	contracts = store.NewKind("contracts", func(c contractRow) string { return rowKey(c.ID, c.Role) },
		store.IndexOn("deployment", func(c contractRow) string { return c.Deployment }),
		store.IndexOn("reservation", func(c contractRow) string { return c.Reservation }),
	)
	states = store.NewKind("contract-states", func(s stateRow) string { return rowKey(s.ID, s.Role) })
	notes  = store.NewKind("contract-notes", func(n noteRow) string { return noteKey(n.Contract, n.Role, n.Seq) }).
		WithCodec(store.Codec[noteRow]{Encode: appendNoteRow, Decode: decodeNoteRow})
)

// appendNoteRow is a note row's stored form (written for every note, on
// both sides): its strings and byte strings, each after its length as a
// uvarint, and the seq as a uvarint, in the order of the fields. Rows
// written before are JSON, still read (store.Codec).
func appendNoteRow(b []byte, r noteRow) ([]byte, error) {
	b = appendField(b, r.Contract)
	b = appendField(b, string(r.Role))
	b = binary.AppendUvarint(b, r.Seq)
	b = appendField(b, r.Note.Hash)
	b = appendField(b, r.Note.Body)
	b = appendField(b, r.Note.ProviderSig)
	return appendField(b, r.Note.RequesterSig), nil
}

func appendField[S ~string | ~[]byte](b []byte, s S) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeNoteRow reads what appendNoteRow wrote, all of it. Empty byte
// strings decode as nil (as JSON's omitted fields do).
func decodeNoteRow(data []byte) (noteRow, error) {
	d := rowDecoder{data: data}
	var r noteRow
	r.Contract = string(d.bytes())
	r.Role = Role(d.bytes())
	r.Seq = d.uvarint()
	r.Note.Hash = string(d.bytes())
	r.Note.Body = clone(d.bytes())
	r.Note.ProviderSig = clone(d.bytes())
	r.Note.RequesterSig = clone(d.bytes())
	if d.bad || len(d.data) > 0 {
		return noteRow{}, errors.New("note row: truncated or trailing bytes")
	}
	return r, nil
}

// rowDecoder reads uvarints and length-prefixed byte strings; bad is set
// (and nothing more is read) at the first that does not fit.
type rowDecoder struct {
	data []byte
	bad  bool
}

func (d *rowDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.data)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *rowDecoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.data)) {
		d.bad = true
		return nil
	}
	b := d.data[:n:n]
	d.data = d.data[n:]
	if n == 0 {
		return nil
	}
	return b
}

func rowKey(id string, role Role) string { return id + "/" + string(role) }

// noteKey is "<id>/<role>/<seq, 20 digits>" (without fmt: it is built
// for every note).
func noteKey(id string, role Role, seq uint64) string {
	const digits = 20
	b := make([]byte, 0, len(id)+len(role)+2+digits)
	b = append(append(append(append(b, id...), '/'), role...), '/')
	var d [digits]byte
	num := strconv.AppendUint(d[:0], seq, 10)
	for range digits - len(num) {
		b = append(b, '0')
	}
	return string(append(b, num...))
}

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

// row is one contract on one side, in memory: its contract and its
// state. It is stored as a contractRow, a stateRow and the noteRows of
// its countersigned notes.
type row struct {
	ID          string
	Role        Role
	Deployment  string
	Reservation string
	State       State
	Reason      string
	Contract    storedContract
	Last        *storedNote
	Accepted    *storedNote
	AcceptedSeq uint64 // Accepted's seq
	Updated     time.Time

	// Provider side. Quiet is the tick time since which no note was
	// countersigned (activation, or the tick of the last acceptance);
	// Refusal the last refusal or failure, BudgetRefused whether it was
	// CodeBudget; Refused whether Last was refused (it is dropped, the
	// next note follows Accepted); FinalTries counts final notes sent
	// after a stop.
	Quiet         time.Time
	Refusal       string
	BudgetRefused bool
	Refused       bool
	FinalTries    int

	// Requester side. Grace is, for an abandoned contract, until when a
	// note (the provider's invoice) is still accepted; for an active
	// contract of an ended deployment, until when its invoice is awaited
	// (End). Exhausted: a note of the contract was refused because the
	// deployment's budget is spent.
	Grace     time.Time
	Exhausted bool
	// LedgerClosed: the ledger closed the contract (both sides).
	LedgerClosed bool
}

// contractRow is a contract as signed, with what it is found by.
type contractRow struct {
	ID          string         `json:"id"`
	Role        Role           `json:"role"`
	Deployment  string         `json:"deployment"`
	Reservation string         `json:"reservation"`
	Contract    storedContract `json:"contract"`
}

// stateRow is where a contract is (see row). A countersigned note is
// stored as a noteRow; the state is written with it only when something
// else changed, or when the contract settles (so at most one
// Config.SettleEvery of notes follow the state's seq, found at load).
type stateRow struct {
	ID      string      `json:"id"`
	Role    Role        `json:"role"`
	State   State       `json:"state"`
	Reason  string      `json:"reason,omitempty"`
	Seq     uint64      `json:"seq,omitempty"`  // of the last countersigned note
	Last    *storedNote `json:"last,omitempty"` // a note issued, not countersigned
	Updated time.Time   `json:"updated"`

	Quiet         time.Time `json:"quiet,omitempty"`
	Refusal       string    `json:"refusal,omitempty"`
	BudgetRefused bool      `json:"budget_refused,omitempty"`
	Refused       bool      `json:"refused,omitempty"`
	FinalTries    int       `json:"final_tries,omitempty"`
	Grace         time.Time `json:"grace,omitempty"`
	Exhausted     bool      `json:"exhausted,omitempty"`
	LedgerClosed  bool      `json:"ledger_closed,omitempty"`
}

// noteRow is one countersigned note of a contract's chain.
type noteRow struct {
	Contract string     `json:"contract"`
	Role     Role       `json:"role"`
	Seq      uint64     `json:"seq"`
	Note     storedNote `json:"note"`
}

// putContract stores r's contract.
func putContract(tx *store.Tx, r *row) error {
	return contracts.Put(tx, contractRow{ID: r.ID, Role: r.Role, Deployment: r.Deployment, Reservation: r.Reservation, Contract: r.Contract})
}

// putState stores r's state.
func putState(tx *store.Tx, r *row) error {
	st := stateRow{
		ID: r.ID, Role: r.Role, State: r.State, Reason: r.Reason, Updated: r.Updated,
		Quiet: r.Quiet, Refusal: r.Refusal, BudgetRefused: r.BudgetRefused, Refused: r.Refused,
		FinalTries: r.FinalTries, Grace: r.Grace, Exhausted: r.Exhausted, LedgerClosed: r.LedgerClosed,
	}
	st.Seq = r.AcceptedSeq
	return states.Put(tx, st)
}

// putAccepted stores a countersigned note of a contract's chain, or a
// provider's note issued and not countersigned yet (which its
// countersigned copy replaces).
func putAccepted(tx *store.Tx, role Role, n *contract.SignedNote) error {
	d := n.Note()
	// Not copied: the row's encoding copies the bytes.
	sn := storedNote{Hash: n.Hash, Body: n.Body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig}
	return notes.Put(tx, noteRow{Contract: d.Contract, Role: role, Seq: d.Seq, Note: sn})
}

// loadRow assembles the row of a stored contract.
func loadRow(tx *store.Tx, c contractRow) (row, error) {
	st, err := states.Get(tx, rowKey(c.ID, c.Role))
	if err != nil {
		return row{}, err
	}
	r := row{
		ID: c.ID, Role: c.Role, Deployment: c.Deployment, Reservation: c.Reservation, Contract: c.Contract,
		State: st.State, Reason: st.Reason, Updated: st.Updated, Quiet: st.Quiet, Refusal: st.Refusal,
		BudgetRefused: st.BudgetRefused, Refused: st.Refused, FinalTries: st.FinalTries, Grace: st.Grace,
		Exhausted: st.Exhausted, LedgerClosed: st.LedgerClosed,
	}
	if st.Seq > 0 {
		nr, err := notes.Get(tx, noteKey(c.ID, c.Role, st.Seq))
		if err != nil {
			return row{}, err
		}
		r.Accepted, r.AcceptedSeq = &nr.Note, st.Seq
	}
	// The state is not written with every countersigned note: the notes
	// after its seq are the truth. A note without the requester's
	// signature is the provider's last, not countersigned yet.
	var pending *storedNote
	for seq := st.Seq + 1; ; seq++ {
		nr, err := notes.Get(tx, noteKey(c.ID, c.Role, seq))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return row{}, err
		}
		if len(nr.Note.RequesterSig) == 0 {
			pending = &nr.Note
			break
		}
		r.Accepted, r.AcceptedSeq = &nr.Note, seq
	}
	r.Last = r.Accepted
	switch {
	case pending != nil:
		r.Last = pending
	case st.Last != nil && (r.Accepted == nil || st.Last.Hash != r.Accepted.Hash) && !countersignedBy(st.Last, r.AcceptedSeq):
		// A store written before notes not countersigned had rows.
		r.Last = st.Last
	}
	return r, nil
}

// countersignedBy reports whether stored note s is at or below seq (the
// last countersigned): then it is not a note still to be answered.
func countersignedBy(s *storedNote, seq uint64) bool {
	n, err := s.open()
	return err == nil && n.Note().Seq <= seq
}

// loadRows assembles the rows of stored contracts.
func loadRows(tx *store.Tx, cs []contractRow) ([]row, error) {
	out := make([]row, 0, len(cs))
	for _, c := range cs {
		r, err := loadRow(tx, c)
		if err != nil {
			return nil, fmt.Errorf("contract %s: %w", c.ID, err)
		}
		out = append(out, r)
	}
	return out, nil
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
