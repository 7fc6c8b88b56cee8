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
package telemetry
