package telemetry

import (
	"context"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// exporter is the span processor that sends sampled spans to the
// collector: OnEnd puts a span in a bounded queue without ever waiting (a
// full queue drops it and counts it), and one goroutine sends the queue in
// batches. A collector that is down or refuses costs the node nothing but
// the spans: the request fails (after the exporter's retries), is counted,
// and logged at a bounded rate.
type exporter struct {
	t     *Tracing
	exp   sdktrace.SpanExporter
	queue chan sdktrace.ReadOnlySpan
	flush chan chan struct{} // ForceFlush asks the worker to send what is queued
	stop  chan struct{}      // closed by Shutdown
	done  chan struct{}      // closed when the worker returns
	// abort cancels the requests in flight when Shutdown's context ends.
	abort     context.CancelFunc
	closeOnce sync.Once
}

var _ sdktrace.SpanProcessor = (*exporter)(nil)

func newExporter(t *Tracing, exp sdktrace.SpanExporter) *exporter {
	base, abort := context.WithCancel(context.Background())
	e := &exporter{
		t:     t,
		exp:   exp,
		queue: make(chan sdktrace.ReadOnlySpan, t.cfg.Queue),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		abort: abort,
	}
	go e.run(base)
	return e
}

func (e *exporter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span, or drops and counts it when the queue is
// full or the exporter stopped. It never blocks.
func (e *exporter) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-e.stop:
		e.t.dropped.Add(1)
		return
	default:
	}
	select {
	case e.queue <- s:
	default:
		e.t.dropped.Add(1)
	}
}

// run sends the queue in batches; base ends when Shutdown gives up.
func (e *exporter) run(base context.Context) {
	defer close(e.done)
	cfg := e.t.cfg
	batchSpans(e.queue, e.flush, e.stop, cfg.ExportBatch, cfg.ExportInterval,
		func(batch []sdktrace.ReadOnlySpan) { e.send(base, batch) }, nil, nil)
}

// send exports one batch and counts the outcome.
func (e *exporter) send(base context.Context, batch []sdktrace.ReadOnlySpan) {
	if base.Err() != nil {
		e.t.dropped.Add(uint64(len(batch)))
		return
	}
	ctx, cancel := context.WithTimeout(base, e.t.cfg.ExportTimeout+e.t.cfg.RetryElapsed)
	defer cancel()
	if err := e.exp.ExportSpans(ctx, batch); err != nil {
		e.t.exportErrors.Add(1)
		e.t.exportFailed.Add(uint64(len(batch)))
		if n, ok := e.t.exportLog.allow(time.Now()); ok {
			e.t.log.Warn("spans not exported: the collector refused or is unreachable; spans are dropped and counted, the node goes on",
				"endpoint", e.t.cfg.Endpoint, "spans", len(batch), "err", err, "failures_since_last_log", n)
		}
		return
	}
	e.t.exported.Add(uint64(len(batch)))
}

// ForceFlush sends what is queued, within ctx.
func (e *exporter) ForceFlush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case e.flush <- reply:
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown sends what is queued until ctx is done, then aborts the
// request in flight; the spans left are dropped and counted.
func (e *exporter) Shutdown(ctx context.Context) error {
	e.closeOnce.Do(func() { close(e.stop) })
	select {
	case <-e.done:
	case <-ctx.Done():
		e.abort()
		<-e.done // the request in flight returns at once, the rest are dropped
	}
	e.abort()
	return e.exp.Shutdown(ctx)
}
