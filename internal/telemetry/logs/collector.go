package logs

import "github.com/prometheus/client_golang/prometheus"

var (
	descRecords = prometheus.NewDesc("dms_log_export_records_total",
		"Log records by what became of them in the export to the Elasticsearch-API store: shipped (accepted or already there), retried (sent again), dropped_queue, dropped_spool, dropped_rejected.",
		[]string{"outcome"}, nil)
	descSpoolErrors = prometheus.NewDesc("dms_log_export_spool_errors_total",
		"Failed writes to the log spool (disk full, I/O error); their records are dropped.", nil, nil)
	descSpoolBytes = prometheus.NewDesc("dms_log_export_spool_bytes",
		"Disk the log spool uses.", nil, nil)
	descPending = prometheus.NewDesc("dms_log_export_pending_records",
		"Records in the log spool not yet sent.", nil, nil)
)

// Collector returns a Prometheus collector of the sink's Stats, read at
// scrape time.
func (s *Sink) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Sink }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRecords
	ch <- descSpoolErrors
	ch <- descSpoolBytes
	ch <- descPending
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for outcome, n := range map[string]uint64{
		"shipped": st.Shipped, "retried": st.Retried, "dropped_queue": st.DroppedQueue,
		"dropped_spool": st.DroppedSpool, "dropped_rejected": st.DroppedRejected,
	} {
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(n), outcome)
	}
	ch <- prometheus.MustNewConstMetric(descSpoolErrors, prometheus.CounterValue, float64(st.SpoolErrors))
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.SpoolBytes))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
}
