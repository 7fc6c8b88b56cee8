package notary

import (
	"fmt"

	"github.com/dmsnet/dms/internal/store"
)

// Stats are the notary's counters since it opened, and its contracts now.
type Stats struct {
	Issued        uint64 // notes this node signed as provider
	Countersigned uint64 // notes this node countersigned as requester
	// Contracts counts the contracts by role and state.
	Contracts map[Role]map[State]int
}

// Stats returns the notary's counters, and its contracts counted from
// their stored states (small rows: no contract, note or signature is
// decoded).
func (n *Notary) Stats() (Stats, error) {
	st := Stats{Issued: n.issued.Load(), Countersigned: n.countersigned.Load(), Contracts: map[Role]map[State]int{}}
	var rows []stateRow
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		rows, err = states.List(tx, "")
		return err
	})
	if err != nil {
		return st, fmt.Errorf("notary: contract states: %w", err)
	}
	for _, r := range rows {
		if st.Contracts[r.Role] == nil {
			st.Contracts[r.Role] = map[State]int{}
		}
		st.Contracts[r.Role][r.State]++
	}
	return st, nil
}
