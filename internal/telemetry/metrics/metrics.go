package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is a node's registry and the metrics recorded as things happen.
type Metrics struct {
	reg      *prometheus.Registry
	observer *Observer

	storeCommit prometheus.Histogram
	execStart   *prometheus.HistogramVec
}

// New returns a registry with the process and Go collectors, the actor
// Observer and the hook metrics; Watch adds the sources read at scrape
// time.
func New() *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		observer: newObserver(),
		storeCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dms_store_commit_seconds",
			Help:    "How long the node's store took to commit a read-write transaction (bbolt, with its fsync).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
		execStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dms_executor_start_seconds",
			Help:    "How long an executor's Start of an allocation's instance took (artifacts and volumes already in place), by executor.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"executor"}),
	}
	m.reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		m.storeCommit, m.execStart,
	)
	m.reg.MustRegister(m.observer.collectors()...)
	return m
}

// Registry returns the registry, to register more collectors or gather.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observer returns the actor runtime's observer (actor.Config.Observer).
func (m *Metrics) Observer() *Observer { return m.observer }

// StoreCommit records the latency of one store commit.
func (m *Metrics) StoreCommit(d time.Duration) { m.storeCommit.Observe(d.Seconds()) }

// ExecutorStart records how long an executor's Start took.
func (m *Metrics) ExecutorStart(executor string, d time.Duration) {
	m.execStart.WithLabelValues(executor).Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked). Errors of a collector are served as an HTTP
// 500 with what failed.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}
