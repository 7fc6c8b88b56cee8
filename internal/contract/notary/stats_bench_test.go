package notary

import (
	"fmt"
	"testing"
)

// BenchmarkStats is what the node's metrics pay at each scrape for
// dms_contracts (internal/node/metrics.go), with 1,000 active contracts;
// List of the same contracts, which decodes and checks each, is the
// anchor (the metrics used it first).
func BenchmarkStats(b *testing.B) {
	w := newWorld(b)
	defer w.close()
	const contracts = 1000
	for i := range contracts {
		w.place(w.terms(fmt.Sprintf("dep-%d", i), 0))
	}
	b.Run("Stats", func(b *testing.B) {
		for range b.N {
			st, err := w.prov.n.Stats()
			if err != nil || st.Contracts[RoleProvider][StateActive] != contracts {
				b.Fatalf("Stats = %+v, %v", st.Contracts, err)
			}
		}
	})
	b.Run("List", func(b *testing.B) {
		for range b.N {
			rs, err := w.prov.n.List("")
			if err != nil || len(rs) != contracts {
				b.Fatalf("List = %d records, %v", len(rs), err)
			}
		}
	})
}
