// Package telemetry is the node's tracing: the OpenTelemetry tracer
// provider (resource, head sampling, an OTLP/HTTP exporter behind a bounded
// queue that never blocks the node), the local record of the spans this
// node finished (kept in the store, so `dms deployment trace` works without
// any collector), and the span tree built from records gathered across the
// nodes of a deployment.
//
// Metrics are in package telemetry/metrics, the JSON log records and their
// export to an Elasticsearch-API store in package telemetry/logs.
//
// One trace per deployment: the orchestrator starts it at submit and keeps
// its root span context in the deployment record; every actor message sent
// within it carries the W3C traceparent (actor.Envelope.Trace), and the
// receiving node continues the trace, so bids, commits, starts and the
// allocations' lifecycles on every provider are spans of the same trace.
// See docs/observability.md.
//
// # Usage
//
//	t, err := telemetry.New(telemetry.Config{Endpoint: "http://127.0.0.1:4318", Sampling: 0.1,
//		InstanceID: peerID, Version: version, DB: db, Logger: log})
//	defer t.Shutdown(ctx)                 // flushes within ctx's bound
//	ctx, span := t.Tracer().Start(ctx, "deployment")
//	defer span.End()
//	recs, err := t.Spans(traceID)         // this node's record of a trace
//	t.Stats()                             // exported, dropped, export_errors, recorded, …
//
// Files: tracing.go (New, the provider, head sampling of roots, Stats),
// export.go (the bounded export queue), local.go (the local record),
// ids.go (time-ordered trace IDs), record.go (SpanRecord).
//
// # Concurrency and bounds
//
// Ending a span never waits: the export queue and the record's queue are
// bounded (Config.Queue), and a full queue drops the span and counts it.
// One goroutine exports in batches; one writes the record in batches (one
// transaction per batch, at most Config.RecordInterval after a span ends).
// A collector that is down or refuses is counted and logged once, then at
// most once per Config.LogEvery.
package telemetry
