package node

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/telemetry"
)

// startTracing starts the node's tracing from config.Telemetry, on the
// store (the local record of spans): n.tracer starts spans, n.spans reads
// the record back. It runs after the store and before the network, so the
// actor runtime gets its tracer; the returned function stops it (after the
// network), flushing what is queued within a bound.
func (n *Node) startTracing() (stop func() error, err error) {
	c := n.cfg.Config.Telemetry
	peer, err := n.cfg.Key.DID().PeerID()
	if err != nil {
		return nil, err
	}
	t, err := telemetry.New(telemetry.Config{
		Endpoint:   c.OTLPEndpoint,
		Sampling:   c.Sampling,
		Queue:      c.SpanQueue,
		Retention:  c.SpanRetention.D(),
		Service:    "dms",
		InstanceID: peer,
		Version:    n.cfg.Version,
		DB:         n.db,
		Logger:     n.log,
	})
	if err != nil {
		return nil, err
	}
	n.tracing = t
	n.tracer = t.Tracer()
	if n.db != nil {
		n.spans = t
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return t.Shutdown(ctx)
	}, nil
}

// actorTracer is the tracer of the actor runtime's server spans: nil
// (propagation only) until tracing starts.
func (n *Node) actorTracer() trace.Tracer {
	if n.tracing == nil {
		return nil
	}
	return n.tracer
}
