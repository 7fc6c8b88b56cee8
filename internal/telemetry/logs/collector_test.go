package logs

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), nil)
	logN(t, s, "m", 3)
	waitFor(t, "shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 3 })
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP dms_log_export_pending_records Records in the log spool not yet sent.
# TYPE dms_log_export_pending_records gauge
dms_log_export_pending_records 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dms_log_export_pending_records"); err != nil {
		t.Error(err)
	}
	want = `# HELP dms_log_export_records_total Log records by what became of them in the export to the Elasticsearch-API store: shipped (accepted or already there), retried (sent again), dropped_queue, dropped_spool, dropped_rejected.
# TYPE dms_log_export_records_total counter
dms_log_export_records_total{outcome="dropped_queue"} 0
dms_log_export_records_total{outcome="dropped_rejected"} 0
dms_log_export_records_total{outcome="dropped_spool"} 0
dms_log_export_records_total{outcome="retried"} 0
dms_log_export_records_total{outcome="shipped"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dms_log_export_records_total"); err != nil {
		t.Error(err)
	}
}
