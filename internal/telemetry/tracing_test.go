package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/store"
)

func newTracing(t *testing.T, cfg Config) *Tracing {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.Shutdown(ctx)
	})
	return tr
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"sampling above 1", Config{Sampling: 1.5}},
		{"negative sampling", Config{Sampling: -0.1}},
		{"endpoint without scheme", Config{Endpoint: "127.0.0.1:4318"}},
		{"endpoint of another scheme", Config{Endpoint: "ftp://127.0.0.1:4318"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tr, err := New(tt.cfg); err == nil {
				tr.Shutdown(context.Background())
				t.Fatalf("New(%+v) = nil error, want one", tt.cfg)
			}
		})
	}
}

// Head sampling: a share of new traces; a child follows its parent.
func TestSampling(t *testing.T) {
	const roots = 2000
	tests := []struct {
		sampling float64
		min, max int
	}{
		{0, 0, 0},
		{0.1, 100, 320}, // 200 expected; the bounds are > 6 standard deviations away
		{1, roots, roots},
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true})
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.sampling), func(t *testing.T) {
			tr := newTracing(t, Config{Sampling: tt.sampling})
			n := 0
			for range roots {
				_, s := tr.Tracer().Start(context.Background(), "root")
				if s.SpanContext().IsSampled() {
					n++
				}
				s.End()
			}
			if n < tt.min || n > tt.max {
				t.Fatalf("%d of %d roots sampled at %v, want %d to %d", n, roots, tt.sampling, tt.min, tt.max)
			}
			// A child follows its root, sampled or not, in its trace.
			rctx, root := tr.Tracer().Start(context.Background(), "root")
			_, kid := tr.Tracer().Start(rctx, "kid")
			if kid.SpanContext().TraceID() != root.SpanContext().TraceID() || kid.SpanContext().IsSampled() != root.SpanContext().IsSampled() || !root.SpanContext().IsValid() {
				t.Fatalf("child %v of root %v: want the root's trace and decision", kid.SpanContext(), root.SpanContext())
			}
			_, child := tr.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "child")
			defer child.End()
			if !child.SpanContext().IsSampled() || child.SpanContext().TraceID() != remote.TraceID() {
				t.Fatalf("child of a sampled remote parent: %v, want sampled in its trace", child.SpanContext())
			}
		})
	}
}

// otlpServer answers OTLP/HTTP export requests: 200 once release is
// closed (it blocks until then), counting the requests.
func otlpServer(t *testing.T, release <-chan struct{}) (*httptest.Server, *atomic.Int64) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		// Read the body: only then does the server notice a client that
		// gave up (r.Context ends).
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

func TestExport(t *testing.T) {
	open := make(chan struct{})
	close(open)
	srv, requests := otlpServer(t, open)
	tr := newTracing(t, Config{Endpoint: srv.URL, Sampling: 1, ExportBatch: 10})
	for range 25 {
		_, s := tr.Tracer().Start(context.Background(), "x")
		s.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st["exported"] != 25 || st["dropped"] != 0 || st["export_errors"] != 0 || requests.Load() != 3 {
		t.Fatalf("stats %v after %d requests; want 25 exported in 3 requests of at most 10", st, requests.Load())
	}
}

// A collector that does not answer: the queue fills, later spans are
// dropped and counted, and ending a span never waits.
func TestExportQueueFull(t *testing.T) {
	release := make(chan struct{})
	srv, requests := otlpServer(t, release)
	const queue, batch, spans = 8, 4, 100
	tr := newTracing(t, Config{Endpoint: srv.URL, Sampling: 1, Queue: queue, ExportBatch: batch, ExportInterval: time.Millisecond, RetryElapsed: -1, ExportTimeout: time.Minute})
	_, s := tr.Tracer().Start(context.Background(), "first")
	s.End()
	// The worker takes the first span and blocks in its request.
	poll.Eventually(t, 10*time.Second, "the first export request", func() bool { return requests.Load() == 1 })
	for range spans {
		_, s := tr.Tracer().Start(context.Background(), "x")
		s.End()
	}
	st := tr.Stats()
	if st["dropped"] != spans-queue || st["export_queued"] != queue {
		t.Fatalf("stats %v; want %d dropped, %d queued", st, spans-queue, queue)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st["exported"] != 1+queue {
		t.Fatalf("stats after release %v; want %d exported", st, 1+queue)
	}
}

// Shutdown is bounded even when the collector never answers.
func TestShutdownBounded(t *testing.T) {
	srv, requests := otlpServer(t, make(chan struct{}))
	tr, err := New(Config{Endpoint: srv.URL, Sampling: 1, ExportInterval: time.Millisecond, ExportTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		_, s := tr.Tracer().Start(context.Background(), "x")
		s.End()
	}
	poll.Eventually(t, 10*time.Second, "an export request", func() bool { return requests.Load() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tr.Shutdown(ctx) // returns: the request in flight is aborted
	if st := tr.Stats(); st["exported"] != 0 || st["export_failed"]+st["dropped"] != 10 {
		t.Fatalf("stats %v; want the 10 spans failed or dropped", st)
	}
}

// A collector that refuses connections: each failed request is counted,
// the first is logged, the next ones only counted.
func TestCollectorRefusing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs syncBuffer
	tr := newTracing(t, Config{Endpoint: "http://" + addr, Sampling: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 {
		_, s := tr.Tracer().Start(context.Background(), "x")
		s.End()
		if err := tr.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := tr.Stats(); st["export_errors"] != 3 || st["export_failed"] != 3 || st["exported"] != 0 {
		t.Fatalf("stats %v; want 3 export errors", st)
	}
	if n := strings.Count(logs.String(), "spans not exported"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestRateLog(t *testing.T) {
	r := rateLog{every: time.Minute}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed uint64
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{time.Minute, true, 2},
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
	}
	for _, s := range steps {
		n, ok := r.allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("allow(+%s) = %d, %v; want %d, %v", s.at, n, ok, s.suppressed, s.ok)
		}
	}
}

func TestLocalRecord(t *testing.T) {
	db := openDB(t)
	tr := newTracing(t, Config{Sampling: 1, DB: db, InstanceID: "12D3KooWpeer"})
	ctx, root := tr.Tracer().Start(context.Background(), "deployment", trace.WithAttributes(attribute.String(AttrDeployment, "d1"), attribute.Int("replicas", 3)))
	_, child := tr.Tracer().Start(ctx, "bid round")
	child.AddEvent("restart", trace.WithAttributes(attribute.Bool("clean", false)))
	child.SetStatus(codes.Error, "no bids")
	child.End()
	root.End()
	// Another trace, and an unsampled span, are not in the answer.
	_, other := tr.Tracer().Start(context.Background(), "other")
	other.End()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.ForceFlush(fctx); err != nil {
		t.Fatal(err)
	}
	recs, err := tr.Spans(root.SpanContext().TraceID().String())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("Spans = %+v, want 2 records", recs)
	}
	r, c := recs[0], recs[1]
	if r.Name != "deployment" || r.ParentID != "" || r.Node != "12D3KooWpeer" || r.Attrs[AttrDeployment] != "d1" || r.Attrs["replicas"] != "3" {
		t.Fatalf("root record %+v", r)
	}
	if c.Name != "bid round" || c.ParentID != r.SpanID || c.Error != "no bids" || len(c.Events) != 1 || c.Events[0].Name != "restart" || c.Events[0].Attrs["clean"] != "false" {
		t.Fatalf("child record %+v", c)
	}
	if !r.End.After(r.Start) && !r.End.Equal(r.Start) || r.Start.After(c.Start) {
		t.Fatalf("records out of order: %v, %v", r.Start, c.Start)
	}
	if st := tr.Stats(); st["recorded"] != 3 {
		t.Fatalf("stats %v, want 3 recorded", st)
	}

	// Retention: a prune a week and a day later deletes all of them.
	if err := tr.local.prune(time.Now().Add(8 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if recs, err := tr.Spans(root.SpanContext().TraceID().String()); err != nil || len(recs) != 0 {
		t.Fatalf("after the retention, Spans = %v, %v; want none", recs, err)
	}
	if st := tr.Stats(); st["pruned"] != 3 {
		t.Fatalf("stats %v, want 3 pruned", st)
	}
}

// The record is bounded in count: the oldest go first.
func TestLocalRecordBound(t *testing.T) {
	db := openDB(t)
	const max = 20
	tr := newTracing(t, Config{Sampling: 1, DB: db, MaxSpans: max})
	var ids []string
	for range 3 * max {
		_, s := tr.Tracer().Start(context.Background(), "x")
		s.End()
		ids = append(ids, s.SpanContext().TraceID().String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.local.prune(time.Now()); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i, id := range ids {
		recs, err := tr.Spans(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			kept++
			if i < len(ids)-max {
				t.Fatalf("span %d of %d kept, want only the last %d", i, len(ids), max)
			}
		}
	}
	if kept != max {
		t.Fatalf("%d spans kept, want %d", kept, max)
	}
}

func TestSpansRefusesBadID(t *testing.T) {
	tr := newTracing(t, Config{DB: openDB(t)})
	for _, id := range []string{"", "abc", strings.Repeat("0", 32), strings.Repeat("A", 32), strings.Repeat("a", 31) + "/"} {
		if _, err := tr.Spans(id); err == nil {
			t.Errorf("Spans(%q) = nil error, want one", id)
		}
	}
	noDB := newTracing(t, Config{})
	if _, err := noDB.Spans(strings.Repeat("a", 32)); !errors.Is(err, ErrNoRecord) {
		t.Errorf("Spans without a store = %v, want ErrNoRecord", err)
	}
}

// BenchmarkSpan measures a sampled span from start to its end, with
// nothing behind it (the anchor), with the local record (each span
// written to a store; the time includes the final flush), and with the
// export to an in-process collector that accepts everything. The queue is
// large enough that nothing is dropped.
func BenchmarkSpan(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	for _, bc := range []struct {
		name   string
		record bool
		export bool
	}{{"sdk-only", false, false}, {"record", true, false}, {"export", false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Sampling: 1, Queue: 1 << 20, InstanceID: "12D3KooWbench"}
			if bc.record {
				db, err := store.Open(filepath.Join(b.TempDir(), "dms.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				cfg.DB = db
			}
			if bc.export {
				cfg.Endpoint = collector.URL
			}
			tr, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, s := tr.Tracer().Start(ctx, "/dms/bench/echo", trace.WithAttributes(attribute.String(AttrDeployment, "d-1")))
				s.End()
			}
			if err := tr.ForceFlush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if st := tr.Stats(); st["dropped"]+st["record_dropped"] > 0 {
				b.Fatalf("stats %v: spans dropped", st)
			}
		})
	}
}
