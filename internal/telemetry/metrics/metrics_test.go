package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dmsnet/dms/internal/actor"
)

func TestObserver(t *testing.T) {
	m := New()
	o := m.Observer()
	o.Known("/dms/known")
	o.Handled("/dms/known", "", time.Millisecond)
	o.Handled("/dms/known", "", time.Millisecond)
	o.Handled("/dms/known", actor.CodeHandler, time.Second)
	o.Handled("/dms/learned", "", time.Millisecond) // ran here: registered, so learned
	o.Refused("/dms/known", actor.CodeDenied)
	o.Refused("/dms/attacker-1", actor.CodeUnknownBehavior)
	o.Refused("/dms/attacker-2", actor.CodeUnknownBehavior)
	o.Refused("/dms/learned", actor.Code("made-up"))

	for _, tc := range []struct {
		name           string
		refused        bool
		behavior, code string
		want           float64
	}{
		{"ok", false, "/dms/known", "ok", 2},
		{"handler error", false, "/dms/known", "handler-error", 1},
		{"learned", false, "/dms/learned", "ok", 1},
		{"denied", true, "/dms/known", "denied", 1},
		{"unknown names are other", true, "other", "unknown-behavior", 2},
		{"unknown code is other", true, "/dms/learned", "other", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vec := o.handled
			if tc.refused {
				vec = o.refused
			}
			if got := testutil.ToFloat64(vec.WithLabelValues(tc.behavior, tc.code)); got != tc.want {
				t.Errorf("%s{%s,%s} = %v, want %v", map[bool]string{false: "handled", true: "refused"}[tc.refused], tc.behavior, tc.code, got, tc.want)
			}
		})
	}
	// Only the pairs seen are exported: no attacker name.
	if n := testutil.CollectAndCount(o.refused); n != 3 {
		t.Errorf("refusal series = %d, want 3", n)
	}
	if n := testutil.CollectAndCount(o.duration); n != 2 {
		t.Errorf("duration series = %d, want 2", n)
	}
}

func TestObserverBound(t *testing.T) {
	o := New().Observer()
	for i := range MaxBehaviors + 50 {
		o.Handled(fmt.Sprintf("/dms/b%d", i), "", 0)
	}
	if n := testutil.CollectAndCount(o.handled); n != MaxBehaviors+1 { // the rest under other
		t.Fatalf("handled series = %d, want %d", n, MaxBehaviors+1)
	}
	if got := testutil.ToFloat64(o.handled.WithLabelValues(OtherBehavior, OKCode)); got != 50 {
		t.Fatalf("other = %v, want 50", got)
	}
}

func TestSources(t *testing.T) {
	m := New()
	src := Sources{
		Actors: func() map[string]uint64 {
			return map[string]uint64{"received": 5, "refused_denied": 2, "send_refused_x\n": 1, "refused_unanswered": 1}
		},
		Peers:         func() int { return 3 },
		Traffic:       func() (uint64, uint64) { return 100, 200 },
		Deployments:   func() map[string]int { return map[string]int{"queued": 2, "running": 1} },
		Orchestration: func() Orchestration { return Orchestration{Rounds: 4, Placements: 3} },
		Bids:          func() Bids { return Bids{Made: 2, Won: 1, NoBids: map[string]uint64{"resource": 3}} },
		Allocations:   func() map[string]int { return map[string]int{"running": 2} },
		Usage: func() []Usage {
			return []Usage{{Deployment: "d1", Allocation: "r1.a", CPUSeconds: 1.5, MemoryBytes: 1 << 20}}
		},
		Contracts: func() Contracts {
			return Contracts{ByState: map[[2]string]int{{"provider", "active"}: 2}, Issued: 7, Countersigned: 5}
		},
		Subnet: func() Subnet { return Subnet{Forwarded: 9, Dropped: map[string]uint64{"no-route": 1}, DNSLocal: 4} },
		Tracing: func() map[string]uint64 {
			return map[string]uint64{"exported": 11, "bad_traceparent": 2, "export_queued": 6}
		},
	}
	if err := m.Watch(src); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, m)
	for _, want := range []string{
		`dms_actor_events_total{event="received"} 5`,
		`dms_actor_events_total{event="refused_denied"} 2`,
		`dms_actor_events_total{event="refused_unanswered"} 1`,
		`dms_p2p_peers 3`,
		`dms_p2p_received_bytes_total 100`,
		`dms_p2p_sent_bytes_total 200`,
		`dms_deployments{state="queued"} 2`,
		`dms_deployments_queued 2`,
		`dms_bid_rounds_total 4`,
		`dms_placements_total 3`,
		`dms_bids_total 2`,
		`dms_bids_won_total 1`,
		`dms_nobids_total{reason="resource"} 3`,
		`dms_allocations{state="running"} 2`,
		`dms_allocation_cpu_seconds_total{allocation="r1.a",deployment="d1"} 1.5`,
		`dms_allocation_memory_bytes{allocation="r1.a",deployment="d1"} 1.048576e+06`,
		`dms_contracts{role="provider",state="active"} 2`,
		`dms_contract_notes_total{kind="issued"} 7`,
		`dms_contract_notes_total{kind="countersigned"} 5`,
		`dms_subnet_packets_total{kind="forwarded"} 9`,
		`dms_subnet_dropped_total{reason="no-route"} 1`,
		`dms_subnet_dns_queries_total{result="local"} 4`,
		`dms_trace_spans_total{event="exported"} 11`,
		`dms_trace_spans_total{event="bad_traceparent"} 2`,
		`dms_trace_export_queued 6`,
		`process_resident_memory_bytes `,
		`go_goroutines `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, "send_refused_x") {
		t.Error("an actor counter with a code outside actor's set is exported")
	}
	// A source that is nil is absent.
	m2 := New()
	if err := m2.Watch(Sources{}); err != nil {
		t.Fatal(err)
	}
	if out := scrape(t, m2); strings.Contains(out, "dms_p2p_peers") {
		t.Error("dms_p2p_peers exported without a source")
	}
}

func TestHooks(t *testing.T) {
	m := New()
	m.StoreCommit(3 * time.Millisecond)
	m.ExecutorStart("wasm", 20*time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		"dms_store_commit_seconds_count 1",
		`dms_executor_start_seconds_count{executor="wasm"} 1`,
		`dms_executor_start_seconds_bucket{executor="wasm",le="0.05"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestHelp: every dms_ metric has help text and the dms_ prefix.
func TestHelp(t *testing.T) {
	m := New()
	if err := m.Watch(Sources{}); err != nil {
		t.Fatal(err)
	}
	m.Observer().Handled("/x", "", 0)
	m.Observer().Refused("/x", actor.CodeDenied)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", mf.GetName())
		}
	}
	for _, d := range sourceDescs {
		if !strings.HasPrefix(d.name, "dms_") || d.help == "" {
			t.Errorf("%s: want the dms_ prefix and help", d.name)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape = %d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return string(b)
}

// TestObserverConcurrent: messages counted from many goroutines while
// names are learned and the registry is gathered (run with -race).
func TestObserverConcurrent(t *testing.T) {
	m := New()
	o := m.Observer()
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				o.Handled(fmt.Sprintf("/dms/b%d", i%10), "", time.Microsecond)
				o.Refused(fmt.Sprintf("/peer/%d/%d", g, i), actor.CodeUnknownBehavior)
				if i%100 == 0 {
					o.Known(fmt.Sprintf("/dms/k%d", i))
					if _, err := m.Registry().Gather(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	var sum float64
	for i := range 10 {
		sum += testutil.ToFloat64(o.handled.WithLabelValues(fmt.Sprintf("/dms/b%d", i), OKCode))
	}
	if sum != goroutines*each {
		t.Errorf("handled = %v, want %d", sum, goroutines*each)
	}
	if got := testutil.ToFloat64(o.refused.WithLabelValues(OtherBehavior, "unknown-behavior")); got != goroutines*each {
		t.Errorf("refused as other = %v, want %d", got, goroutines*each)
	}
}
