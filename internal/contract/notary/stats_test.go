package notary

import (
	"testing"
	"testing/synctest"
)

// TestStats: the contracts by role and state, and the notes issued and
// countersigned, on each side (a synctest bubble: no subtests).
func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		defer w.close()
		c := w.place(w.terms("dep1", 0))
		wait(3*interval + interval/2)
		checkAgree(t, w, c, 3)
		for _, tc := range []struct {
			name                  string
			s                     *side
			role                  Role
			issued, countersigned uint64
		}{
			{"provider", w.prov, RoleProvider, 3, 0},
			{"requester", w.req, RoleRequester, 0, 3},
		} {
			st, err := tc.s.n.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Issued != tc.issued || st.Countersigned != tc.countersigned {
				t.Errorf("%s: issued %d, countersigned %d; want %d, %d", tc.name, st.Issued, st.Countersigned, tc.issued, tc.countersigned)
			}
			if n := st.Contracts[tc.role][StateActive]; n != 1 || len(st.Contracts) != 1 {
				t.Errorf("%s: contracts = %v, want one active %s contract", tc.name, st.Contracts, tc.role)
			}
		}
	})
}
