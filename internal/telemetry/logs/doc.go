// Package logs is the node's log records: slog handlers that give every
// record the ids it concerns, write it to the standard error and to a
// rotated JSON file, and export it to an Elasticsearch-API store.
//
// Record fields (docs/observability.md, "Logs"): deployment_id and
// allocation_id where the record concerns one (call sites' "deployment",
// "allocation" and "alloc" attributes are renamed to them), trace_id and
// span_id from the OpenTelemetry span of the context given to the slog
// *Context calls. Attributes whose key names secret material (token,
// password, passphrase, secret, credentials, private keys) are replaced by
// "[redacted]" everywhere (handler.go).
//
// NewLogger builds the node's logger: text or JSON on the standard error
// and, with a file, JSON records to that file, rotated by size with
// lumberjack (file.go).
//
// Sink (sink.go) exports records with the Elasticsearch _bulk API. Its
// handler never blocks the caller: a record goes into a bounded queue (full:
// dropped and counted); a writer appends queued records to an on-disk spool
// of segment files (spool.go) bounded in size (full: the oldest segments go,
// and their records not yet sent are counted); a shipper sends the spool in
// batches as `create` actions with an id made of the node's peer ID and the
// record's spool sequence, so a retry never duplicates a document (an id the
// store already has answers 409, counted as done). Items answered 429 or
// 5xx are sent again with capped exponential backoff and jitter; other
// rejected items are dropped and counted (bulk.go). The sequence up to
// which everything was accepted is persisted, so a restarted node resumes
// where it stopped.
//
// An allocation's stdout and stderr, when its ensemble asks for it
// (logs: {ship: true}), go to the same sink as records of kind
// "allocation"; the node's own records are of kind "node".
package logs
