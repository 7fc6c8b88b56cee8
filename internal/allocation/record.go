package allocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
)

// Record is the persisted state of one allocation: enough to respawn its
// actor and re-attach to its executor instance after a daemon restart. It
// is written at every state change.
type Record struct {
	ID           string                     `json:"id"`
	Reservation  string                     `json:"reservation"`
	Deployment   string                     `json:"deployment"`
	Name         string                     `json:"name"`
	Orchestrator actor.Handle               `json:"orchestrator"`
	Spec         deployproto.AllocationSpec `json:"spec"`

	// DID is the allocation actor's; SealedKey its key, sealed by the
	// node's Sealer and bound to DID.
	DID       identity.DID `json:"did"`
	SealedKey []byte       `json:"sealed_key"`
	// Chain is the orchestrator's delegation to the actor (token file
	// text), given with the start.
	Chain string `json:"chain,omitempty"`
	// Contract is the ID of the placement's contract (package contract),
	// "" when it was committed without one: a start naming another is
	// refused.
	Contract string `json:"contract,omitempty"`
	// NoteChain is the requester's delegation of the note behavior to
	// this node (token file text) that came with the commit: put back in
	// the Wallet at a resume, so that the contract's notes still reach
	// the requester after a restart.
	NoteChain string `json:"note_chain,omitempty"`

	// InstanceID is the executor instance of the current run.
	InstanceID string                      `json:"instance_id,omitempty"`
	State      deployproto.AllocationState `json:"state"`
	Message    string                      `json:"message,omitempty"`
	Result     *executor.Result            `json:"result,omitempty"`
	Restarts   int                         `json:"restarts"`
	Ports      []executor.Port             `json:"ports,omitempty"`
	// Seq is above the Seq of every report sent so far: a restarted actor
	// continues from it, so the orchestrator never sees Seq go back.
	Seq uint64 `json:"seq"`
	// Released is set once the reservation's resources were released.
	Released bool `json:"released,omitempty"`
	// Reported is set once the final report was delivered.
	Reported bool `json:"reported,omitempty"`

	// Epoch is the highest fencing epoch the allocation has seen (from its
	// commit, report acknowledgements, commands and adoptions); commands
	// of a lower epoch are refused.
	Epoch uint64 `json:"epoch,omitempty"`
	// StopAfter is how long the allocation runs without an acknowledgement
	// from its orchestrator before it stops on its own (fencing).
	StopAfter time.Duration `json:"stop_after,omitempty"`
	// DependencyRestarts counts the restarts asked for by dependency
	// notices: they are in Restarts but not charged to max_restarts.
	DependencyRestarts int `json:"dependency_restarts,omitempty"`

	// Secrets are the user's secrets of the commit (an s3 volume's
	// credentials.secret), by name, each sealed to this node's key with
	// the context deployproto.SecretContext: opened only when a transfer
	// needs them, dropped when the allocation ends.
	Secrets map[string][]byte `json:"secrets,omitempty"`
	// Staged is set once the input volumes were staged.
	Staged bool `json:"staged,omitempty"`
	// Ran is set once a run started (its out volumes may hold outputs).
	Ran bool `json:"ran,omitempty"`
	// Outputs is the upload state of the s3 out volumes, by name.
	Outputs map[string]OutputState `json:"outputs,omitempty"`
	// Final is the end reached while the out volumes are being uploaded:
	// recorded once they are.
	Final *FinalState `json:"final,omitempty"`
	// Meter is what the allocation's runs used so far (metering.go).
	Meter Meter `json:"meter,omitzero"`

	// Trace is the W3C traceparent the start came with: the allocation's
	// spans are in that trace, after a restart too (trace.go).
	Trace string `json:"trace,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Store persists Records. The node backs it with its embedded store;
// MemStore is an in-memory one. Implementations are safe for concurrent
// use.
type Store interface {
	// Put creates or replaces the record with r.ID.
	Put(r Record) error
	// Delete removes a record; deleting an absent one is no error.
	Delete(id string) error
	// List returns every record.
	List() ([]Record, error)
}

// Ledger releases a reservation's resources (the node's resource manager).
type Ledger interface {
	// Release frees what reservation id holds. The node's ledger returns
	// an error wrapping resource.ErrNotFound for an id it does not hold.
	Release(id string) error
}

// Wallet holds the delegation chains this node's actors present with their
// invocations (the node's wallet, which its actor.Issuer reads).
type Wallet interface {
	Add(c cap.Chain)
}

// MemStore is a Store in memory, for tests. Records are copied in and out
// through JSON, as a real store would.
type MemStore struct {
	mu      sync.Mutex
	records map[string][]byte // guarded by mu
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{records: map[string][]byte{}} }

// Put implements Store.
func (s *MemStore) Put(r Record) error {
	if r.ID == "" {
		return errors.New("put record: empty id")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put record %s: %w", r.ID, err)
	}
	s.mu.Lock()
	s.records[r.ID] = b
	s.mu.Unlock()
	return nil
}

// Delete implements Store.
func (s *MemStore) Delete(id string) error {
	s.mu.Lock()
	delete(s.records, id)
	s.mu.Unlock()
	return nil
}

// List implements Store.
func (s *MemStore) List() ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.records))
	for id, b := range s.records {
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("record %s: %w", id, err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
