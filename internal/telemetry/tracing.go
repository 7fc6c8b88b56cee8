package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/store"
)

// Config configures New. Zero values take the defaults shown.
type Config struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver
	// (http://127.0.0.1:4318); spans are posted to Endpoint/v1/traces.
	// Empty: spans are kept in the local record only.
	Endpoint string
	// Sampling is the share of new traces recorded, 0 to 1 (a root is
	// kept with that probability, decided by Tracer().Start); a span with
	// a parent, local or from another node, follows the parent's decision.
	Sampling float64
	// Queue bounds the finished spans waiting for export, and those
	// waiting to be written to the local record; when a queue is full,
	// newer spans are dropped and counted. Default 2048.
	Queue int
	// Retention is how long the local record keeps a span (default 7
	// days); MaxSpans bounds it in count (default 100000): the oldest go
	// first.
	Retention time.Duration
	MaxSpans  int
	// RecordInterval is the longest a span waits to be written to the
	// local record with the next ones (default 1s).
	RecordInterval time.Duration
	// Service, InstanceID and Version are the OpenTelemetry resource:
	// service.name (default "dms"), service.instance.id (the node's peer
	// ID, also SpanRecord.Node), service.version.
	Service    string
	InstanceID string
	Version    string
	// DB holds the local record (its own kinds, spans and span-ends);
	// nil: no local record.
	DB     *store.DB
	Logger *slog.Logger

	// ExportBatch is the most spans in one export request (default 512);
	// ExportInterval the longest a span waits for its batch (default 2s);
	// ExportTimeout bounds one request (default 10s). The exporter
	// retries a request the collector answers with 429, 502, 503 or 504,
	// or that timed out, for up to RetryElapsed (default 1m; negative: no
	// retries).
	ExportBatch    int
	ExportInterval time.Duration
	ExportTimeout  time.Duration
	RetryElapsed   time.Duration
	// LogEvery bounds the logs of export failures: the first is logged,
	// then at most one per LogEvery (default 5m) with the count since.
	LogEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Queue <= 0 {
		c.Queue = 2048
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.MaxSpans <= 0 {
		c.MaxSpans = 100_000
	}
	if c.RecordInterval <= 0 {
		c.RecordInterval = time.Second
	}
	if c.Service == "" {
		c.Service = "dms"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ExportBatch <= 0 {
		c.ExportBatch = 512
	}
	if c.ExportInterval <= 0 {
		c.ExportInterval = 2 * time.Second
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = 10 * time.Second
	}
	if c.RetryElapsed == 0 {
		c.RetryElapsed = time.Minute
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 5 * time.Minute
	}
}

// TracerName is the instrumentation scope of dms's spans.
const TracerName = "github.com/dmsnet/dms"

// Tracing is a node's tracing: the tracer provider, the export to a
// collector and the local record.
type Tracing struct {
	cfg      Config
	log      *slog.Logger
	provider *sdktrace.TracerProvider
	tracer   *tracer
	export   *exporter    // nil without an endpoint
	local    *localRecord // nil without a store

	exported, dropped, exportErrors, exportFailed atomic.Uint64
	recorded, recordDropped, recordErrors, pruned atomic.Uint64
	badTraceparent, otelErrors                    atomic.Uint64

	exportLog, otelLog rateLog
}

// New starts tracing. It checks the configuration (endpoint, sampling)
// and, with a store, opens the local record; nothing is sent before the
// first span ends. Call Shutdown to flush and stop.
func New(cfg Config) (*Tracing, error) {
	cfg.setDefaults()
	if !(cfg.Sampling >= 0 && cfg.Sampling <= 1) {
		return nil, fmt.Errorf("telemetry: sampling %v: want a share from 0 to 1", cfg.Sampling)
	}
	t := &Tracing{cfg: cfg, log: cfg.Logger.With("component", "telemetry")}
	t.exportLog.every, t.otelLog.every = cfg.LogEvery, cfg.LogEvery
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.Service),
		attribute.String("service.instance.id", cfg.InstanceID),
		attribute.String("service.version", cfg.Version),
	)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(idGenerator{now: time.Now}),
		// Roots are sampled at the ratio by tracer.Start before they reach
		// the SDK (see there); a span with a parent follows it.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(1))),
	}
	if cfg.Endpoint != "" {
		exp, err := newOTLP(cfg)
		if err != nil {
			return nil, err
		}
		t.export = newExporter(t, exp)
		opts = append(opts, sdktrace.WithSpanProcessor(t.export))
	}
	if cfg.DB != nil {
		l, err := openLocal(t, cfg.DB)
		if err != nil {
			if t.export != nil {
				t.export.Shutdown(context.Background())
			}
			return nil, err
		}
		t.local = l
		opts = append(opts, sdktrace.WithSpanProcessor(l))
	}
	t.provider = sdktrace.NewTracerProvider(opts...)
	t.tracer = &tracer{Tracer: t.provider.Tracer(TracerName), t: t, ratio: cfg.Sampling}
	// Errors the SDK reports (outside our processors) are counted and
	// logged at a bounded rate. The handler is process-wide: the last
	// Tracing started owns it.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		t.otelErrors.Add(1)
		if n, ok := t.otelLog.allow(time.Now()); ok {
			t.log.Warn("opentelemetry error", "err", err, "errors_since_last_log", n)
		}
	}))
	return t, nil
}

// newOTLP builds the OTLP/HTTP exporter for cfg.Endpoint.
func newOTLP(cfg Config) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("telemetry: endpoint %q: want an http(s) URL", cfg.Endpoint)
	}
	retry := otlptracehttp.RetryConfig{Enabled: cfg.RetryElapsed > 0, InitialInterval: time.Second, MaxInterval: 15 * time.Second, MaxElapsedTime: cfg.RetryElapsed}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(strings.TrimSuffix(cfg.Endpoint, "/")+"/v1/traces"),
		otlptracehttp.WithTimeout(cfg.ExportTimeout),
		otlptracehttp.WithRetry(retry),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	return exp, nil
}

// Tracer returns the tracer of dms's spans. It also counts the malformed
// traceparents the actor runtime reports (actor.BadTraceCounter).
func (t *Tracing) Tracer() trace.Tracer { return t.tracer }

// tracer is the SDK's tracer with head sampling in front of it, and the
// bad-traceparent counter.
type tracer struct {
	trace.Tracer
	t     *Tracing
	ratio float64
}

// Start starts a span. A new root (no valid parent in ctx, or
// trace.WithNewRoot) is sampled at the configured ratio here: an unsampled
// one is a non-recording span with fresh IDs, which its context carries so
// that its children say "not sampled" (the envelopes sent within it carry
// no trace: the actor runtime does not send unsampled ones) — without the
// SDK's cost of a span (most Sends at a low ratio). A sampled
// root, and every span with a parent, is the SDK's, whose sampler follows
// the parent.
func (tr *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	root := !trace.SpanContextFromContext(ctx).IsValid()
	if !root && len(opts) > 0 {
		c := trace.NewSpanStartConfig(opts...)
		root = c.NewRoot()
	}
	if root && !(tr.ratio >= 1 || tr.ratio > 0 && rand.Float64() < tr.ratio) {
		tid, sid := idGenerator{now: time.Now}.NewIDs(ctx)
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
		ctx = trace.ContextWithSpanContext(ctx, sc)
		return ctx, trace.SpanFromContext(ctx)
	}
	return tr.Tracer.Start(ctx, name, opts...)
}

func (tr *tracer) BadTraceparent() { tr.t.badTraceparent.Add(1) }

// Stats returns the counters of tracing, by stable name:
//
//	exported         spans the collector accepted
//	dropped          spans dropped because the export queue was full
//	export_errors    export requests that failed (after the exporter's retries)
//	export_failed    spans lost in those requests
//	export_queued    spans waiting for export now
//	recorded         spans written to the local record
//	record_dropped   spans not recorded because the record's queue was full
//	record_errors    failed writes of the local record
//	pruned           records deleted for age or count
//	bad_traceparent  malformed traceparents received by the actor runtime
//	otel_errors      other errors the OpenTelemetry SDK reported
func (t *Tracing) Stats() map[string]uint64 {
	m := map[string]uint64{
		"exported":        t.exported.Load(),
		"dropped":         t.dropped.Load(),
		"export_errors":   t.exportErrors.Load(),
		"export_failed":   t.exportFailed.Load(),
		"recorded":        t.recorded.Load(),
		"record_dropped":  t.recordDropped.Load(),
		"record_errors":   t.recordErrors.Load(),
		"pruned":          t.pruned.Load(),
		"bad_traceparent": t.badTraceparent.Load(),
		"otel_errors":     t.otelErrors.Load(),
	}
	if t.export != nil {
		m["export_queued"] = uint64(len(t.export.queue))
	}
	return m
}

// ForceFlush exports and records the spans that ended so far, within ctx.
func (t *Tracing) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

// Shutdown ends tracing: spans still queued are exported and recorded
// until ctx is done (then dropped and counted). Later spans are ignored.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("telemetry shutdown: %w", err)
	}
	return nil
}

// rateLog allows the first log line and then one per every.
type rateLog struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time // guarded by mu
	suppressed uint64    // guarded by mu
}

// allow reports whether to log now, with the count of events not logged
// since the last line.
func (r *rateLog) allow(now time.Time) (suppressed uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}
