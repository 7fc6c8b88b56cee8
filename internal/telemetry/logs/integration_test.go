//go:build integration

package logs

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/telemetry/logs/zinctest"
)

// zincSink is a sink to a real ZincSearch.
func zincSink(t *testing.T, srv *zinctest.Server) *Sink {
	t.Helper()
	s, err := NewSink(SinkConfig{
		URL: srv.URL, Index: "dms-logs", Username: srv.User, Password: srv.Password,
		Batch: 100, FlushInterval: 100 * time.Millisecond, SpoolDir: t.TempDir(), SpoolSize: 1 << 20,
		Node: "12D3KooWIntegration", MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// found polls the store until the deployment's records number n, and
// returns their messages.
func found(t *testing.T, srv *zinctest.Server, deployment string, n int) []string {
	t.Helper()
	var hits []zinctest.Hit
	deadline := time.Now().Add(30 * time.Second)
	for {
		hits = srv.Search("dms-logs", map[string]any{"term": map[string]any{"deployment_id": deployment}})
		if len(hits) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var msgs []string
	for _, h := range hits {
		msgs = append(msgs, fmt.Sprint(h.Source["message"]))
	}
	return msgs
}

// TestZincSearch: node records and allocation lines are found in a real
// Elasticsearch-API store by deployment_id, with their fields.
func TestZincSearch(t *testing.T) {
	srv := zinctest.Start(t)
	s := zincSink(t, srv)
	log := slog.New(WithTrace(s.Handler()))
	var want []string
	for i := range 50 {
		m := fmt.Sprintf("placed %d", i)
		log.Info(m, "deployment", "depz1", "allocation", "web")
		log.Info("elsewhere", "deployment", "depz2")
		want = append(want, m)
	}
	w := s.AllocationWriter("depz1", "alloc1", "web", "stdout")
	w.Write([]byte("hello from the workload\nbye\n"))
	want = append(want, "hello from the workload", "bye")
	exactlyOnce(t, found(t, srv, "depz1", len(want)), want)
	hits := srv.Search("dms-logs", map[string]any{"term": map[string]any{"kind": "allocation"}})
	if len(hits) != 2 || hits[0].Source["allocation_id"] != "alloc1" || hits[0].Source["stream"] != "stdout" {
		t.Errorf("allocation records %v", hits)
	}
	if st := s.Stats(); st.Shipped != 102 || st.Retried != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestZincSearchDown: the store goes away while the node keeps logging;
// once it is back, every record is found exactly once.
func TestZincSearchDown(t *testing.T) {
	srv := zinctest.Start(t)
	s := zincSink(t, srv)
	log := slog.New(WithTrace(s.Handler()))
	var want []string
	logSome := func(from, n int) {
		for i := from; i < from+n; i++ {
			m := fmt.Sprintf("record %d", i)
			log.Info(m, "deployment", "depdown")
			want = append(want, m)
		}
	}
	logSome(0, 100)
	waitFor(t, "first records shipped", 30*time.Second, func() bool { return s.Stats().Shipped == 100 })
	srv.Stop()
	// Keep logging while it is down, until the sink has failed a few times.
	deadline := time.Now().Add(30 * time.Second)
	for i := 100; s.Stats().Retried < 300 || i < 400; i += 20 {
		logSome(i, 20)
		if time.Now().After(deadline) {
			t.Fatalf("the sink did not retry: %+v", s.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.Restart()
	total := len(want)
	waitFor(t, "all shipped", 60*time.Second, func() bool { return s.Stats().Shipped == uint64(total) })
	exactlyOnce(t, found(t, srv, "depdown", total), want)
	if st := s.Stats(); st.DroppedQueue+st.DroppedSpool+st.DroppedRejected != 0 || st.Pending != 0 {
		t.Errorf("stats %+v: nothing may be dropped", st)
	}
}
