package node

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/deployproto"
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

// tracedBehavior says which behaviors the actor runtime wraps in a server
// span when their trace is sampled (actor.Config.TraceBehavior): the
// deployment control plane — the behaviors under /dms/deployment/ and
// /dms/allocation/ (bids, commits, starts, stops, reports, standby…) — so
// that a deployment's trace has a span on every node it reaches. Not the
// ones that carry data or poll, which run often for as long as a
// deployment lives (untracedBehaviors); nor any other message: those only
// pass the trace on, allocation-free.
func tracedBehavior(b string) bool {
	if !strings.HasPrefix(b, deployproto.CmdDeployment+"/") && !strings.HasPrefix(b, deployproto.CmdAllocation+"/") {
		return false
	}
	return !untracedBehaviors[b]
}

// untracedBehaviors are the behaviors under the deployment prefixes that
// get no server span.
var untracedBehaviors = map[string]bool{
	deployproto.BehaviorNote:       true, // a metering note every interval per contract
	deployproto.BehaviorLogs:       true, // long polls of an allocation's output
	deployproto.BehaviorStatus:     true, // status polls
	deployproto.BehaviorArtifact:   true, // artifact chunks
	deployproto.BehaviorResults:    true, // result volume chunks
	deployproto.BehaviorExecInput:  true, // an exec session's stream
	deployproto.BehaviorExecOutput: true,
	deployproto.BehaviorSpans:      true, // the gathering of a trace's spans (dms deployment trace)
}

// actorTracer is the tracer of the actor runtime's server spans: nil
// (propagation only) until tracing starts.
func (n *Node) actorTracer() trace.Tracer {
	if n.tracing == nil {
		return nil
	}
	return n.tracer
}
