package allocation

import (
	"fmt"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

// BenchmarkCreateStartComplete measures one allocation's whole life on the
// fake executor, in real time: Create (key, seal, record, actor), Start
// over the in-memory network, run, the final report and the release.
func BenchmarkCreateStartComplete(b *testing.B) {
	h := newHarness(b)
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("a%d", i)
		i++
		hd := h.create(h.m, id, "r"+id, task("print=x"))
		h.mustStart(hd)
		if _, ok := h.orch.await(time.Minute, func(r deployproto.Report) bool {
			return r.ID == id && r.State == deployproto.AllocCompleted
		}); !ok {
			b.Fatalf("%s did not complete", id)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocations/s")
}
