package actor

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing of envelopes (W3C Trace Context, https://www.w3.org/TR/trace-context/).
//
// Sending: an envelope carries the traceparent of the OpenTelemetry span
// its context holds (the sender's span), else the string actor.WithTrace
// put in the context, else none — and none when that trace is not
// sampled. An unsampled trace makes no span anywhere: no receiver starts
// a span from a message without a trace (the runtime's server spans need
// a sampled parent, and dms's own spans a parent or a deployment's root),
// so its traceparent would tell the receiver nothing it acts on, at the
// price of formatting, sending and parsing 55 bytes with every message
// (most messages, at a low sampling ratio). What the receiver loses is the
// trace ID of an unsampled trace in its log records.
//
// Receiving: the traceparent is parsed strictly (ParseTraceparent). A
// malformed one is counted (bad_traceparent), logged once per peer (for
// the first maxBadTracePeers peers), and the message is handled untraced.
// An unsampled one (from a peer that still sends them) is dropped: the
// message is handled untraced, as if it came without. A sampled one is
// the remote parent of the behavior's context, so that the envelopes a
// behavior sends continue the trace. A server span named after
// the behavior wraps the behavior's run (attributes actor.behavior,
// actor.from, actor.code) only when the trace is sampled, Config.Tracer is
// set and Config.TraceBehavior opts the behavior in: a span costs tens of
// microseconds (the SDK, the node's record and export), too much for
// every message. Other behaviors make no span; their nested sends carry
// the traceparent they came with, so the trace goes on past them, and the
// spans they lead to are children of the sender's span.
//
// Receiving an envelope costs no allocation for its trace: the remote span
// context lives in the delivery, and the behavior's context (msgContext)
// answers the OpenTelemetry span lookup itself.

// Span attributes of a behavior's server span.
const (
	AttrBehavior = "actor.behavior" // the behavior invoked
	AttrFrom     = "actor.from"     // the sender's DID, short
	AttrCode     = "actor.code"     // the error code of the answer, when it failed
)

// BadTraceCounter is an optional interface of Config.Tracer: the runtime
// calls BadTraceparent for every malformed traceparent it receives.
type BadTraceCounter interface {
	BadTraceparent()
}

// ErrBadTraceparent is wrapped by the errors of ParseTraceparent.
var ErrBadTraceparent = errors.New("bad traceparent")

// traceparentLen is the length of a version 00 traceparent:
// 00-<32 hex trace ID>-<16 hex span ID>-<2 hex flags>.
const traceparentLen = 55

// ParseTraceparent parses a W3C traceparent of version 00: exactly
// "00-" 32 lower-case hex digits (not all zero) "-" 16 lower-case hex
// digits (not all zero) "-" 2 lower-case hex digits. The span context it
// returns is remote. It does not allocate.
func ParseTraceparent(s string) (trace.SpanContext, error) {
	var cfg trace.SpanContextConfig
	if len(s) != traceparentLen {
		return trace.SpanContext{}, badTrace("length")
	}
	if s[0] != '0' || s[1] != '0' {
		return trace.SpanContext{}, badTrace("version")
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, badTrace("separator")
	}
	if !decodeHex(cfg.TraceID[:], s[3:35]) || !cfg.TraceID.IsValid() {
		return trace.SpanContext{}, badTrace("trace-id")
	}
	if !decodeHex(cfg.SpanID[:], s[36:52]) || !cfg.SpanID.IsValid() {
		return trace.SpanContext{}, badTrace("parent-id")
	}
	var flags [1]byte
	if !decodeHex(flags[:], s[53:55]) {
		return trace.SpanContext{}, badTrace("flags")
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0])
	cfg.Remote = true
	return trace.NewSpanContext(cfg), nil
}

// badTraceErrs are ParseTraceparent's errors, made once (no allocation).
var badTraceErrs = func() map[string]error {
	m := map[string]error{}
	for _, part := range []string{"length", "version", "separator", "trace-id", "parent-id", "flags"} {
		m[part] = &traceErr{part}
	}
	return m
}()

type traceErr struct{ part string }

func (e *traceErr) Error() string { return "bad traceparent: " + e.part }
func (e *traceErr) Unwrap() error { return ErrBadTraceparent }

func badTrace(part string) error { return badTraceErrs[part] }

// decodeHex decodes lower-case hex digits s into dst (len(s) = 2 len(dst)).
func decodeHex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// FormatTraceparent returns the version 00 traceparent of sc ("" when sc
// is not valid), in one allocation.
func FormatTraceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [traceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	encodeHex(b[3:35], tid[:])
	b[35] = '-'
	encodeHex(b[36:52], sid[:])
	b[52] = '-'
	encodeHex(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

func encodeHex(dst, src []byte) {
	for i, v := range src {
		dst[2*i] = hexDigits[v>>4]
		dst[2*i+1] = hexDigits[v&0x0f]
	}
}

// spanKey is the key OpenTelemetry keeps the current span under in a
// context (unexported there): msgContext.Value answers it, so a behavior's
// context carries its span without a context.WithValue per message. It is
// read once by watching which key trace.SpanFromContext asks for.
var spanKey = func() any {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any {
	p.key = k
	return nil
}

// remoteSpan is the span of a remote parent: what trace.SpanFromContext
// returns in a behavior whose envelope carried a trace and that has no
// span of its own. It records nothing.
type remoteSpan struct {
	embedded.Span
	sc trace.SpanContext
}

var _ trace.Span = (*remoteSpan)(nil)

func (s *remoteSpan) SpanContext() trace.SpanContext        { return s.sc }
func (*remoteSpan) End(...trace.SpanEndOption)              {}
func (*remoteSpan) AddEvent(string, ...trace.EventOption)   {}
func (*remoteSpan) AddLink(trace.Link)                      {}
func (*remoteSpan) IsRecording() bool                       { return false }
func (*remoteSpan) RecordError(error, ...trace.EventOption) {}
func (*remoteSpan) SetStatus(codes.Code, string)            {}
func (*remoteSpan) SetName(string)                          {}
func (*remoteSpan) SetAttributes(...attribute.KeyValue)     {}
func (*remoteSpan) TracerProvider() trace.TracerProvider    { return noop.NewTracerProvider() }

// envelopeTrace is the traceparent an envelope sent within ctx carries:
// "" when its trace is not sampled (see above).
func envelopeTrace(ctx context.Context) string {
	if mc, ok := ctx.(*msgContext); ok {
		// A behavior sending with its own context (the common case).
		if mc.tr == nil {
			return "" // a behavior's context holds only sampled traces
		}
		switch sp := mc.tr.span.(type) {
		case nil, *remoteSpan:
			return mc.tr.trace // the same traceparent it came with
		default:
			return sampledTraceparent(sp.SpanContext())
		}
	}
	if ctx == context.Background() || ctx == context.TODO() {
		return "" // no values, so no trace: the two lookups below cost 25 ns
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sampledTraceparent(sc)
	}
	tp := TraceFrom(ctx)
	if unsampled(tp) {
		return ""
	}
	return tp // sampled, or malformed: the receiver counts it
}

// sampledTraceparent is FormatTraceparent(sc) when sc is sampled, else "".
func sampledTraceparent(sc trace.SpanContext) string {
	if !sc.IsSampled() {
		return ""
	}
	return FormatTraceparent(sc)
}

// unsampled reports whether tp is a well-formed version 00 traceparent
// whose sampled flag is clear, without parsing the rest.
func unsampled(tp string) bool {
	if len(tp) != traceparentLen || tp[52] != '-' {
		return false
	}
	hi, ok1 := fromHex(tp[53])
	lo, ok2 := fromHex(tp[54])
	return ok1 && ok2 && trace.TraceFlags(hi<<4|lo)&trace.FlagsSampled == 0
}

// maxBadTracePeers bounds the peers a malformed traceparent is logged for.
const maxBadTracePeers = 64

// badTraces logs malformed traceparents once per peer.
type badTraces struct {
	mu     sync.Mutex
	logged map[string]bool // guarded by mu
	full   bool            // guarded by mu: the "no more logs" line was written
}

// badTraceparent counts a malformed traceparent from peer and logs the first from
// each peer, up to maxBadTracePeers peers.
func (s *System) badTraceparent(peer, behavior string, err error) {
	s.stats.inc("bad_traceparent")
	if s.badTraceCounter != nil {
		s.badTraceCounter.BadTraceparent()
	}
	b := &s.badTraces
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.logged[peer] || b.full {
		return
	}
	if len(b.logged) >= maxBadTracePeers {
		b.full = true
		s.log.Warn("malformed traceparents from more peers: no longer logged, still counted (bad_traceparent)", "peers", len(b.logged))
		return
	}
	if b.logged == nil {
		b.logged = map[string]bool{}
	}
	b.logged[peer] = true
	s.log.Warn("malformed traceparent: message handled untraced; further ones from this peer are only counted (bad_traceparent)",
		"peer_id", peer, "behavior", behavior, "err", err)
}

// parseTrace parses the traceparent of a message that arrived from peer.
// A malformed one is counted, logged (once per peer) and removed from m,
// an unsampled one removed: the message is handled untraced.
func (s *System) parseTrace(m *Message, peer string) trace.SpanContext {
	if m.Trace == "" {
		return trace.SpanContext{}
	}
	sc, err := ParseTraceparent(m.Trace)
	if err != nil {
		s.badTraceparent(peer, m.Behavior, err)
		m.Trace = ""
		return trace.SpanContext{}
	}
	if !sc.IsSampled() {
		m.Trace = ""
		return trace.SpanContext{}
	}
	return sc
}

// setTrace makes sc (sampled, or zero: untraced) the remote parent of the
// behavior's context (delivery.begin).
func (d *delivery) setTrace(sc trace.SpanContext) {
	if sc.IsSampled() {
		d.remote = sc
	}
}

// startSpan starts the server span of a delivery whose trace is sampled,
// when the runtime has a tracer and the behavior is traced; the behavior's
// context carries it.
func (s *System) startSpan(d *delivery) trace.Span {
	if s.cfg.Tracer == nil || d.ctx.tr == nil || !d.ctx.tr.remote.sc.IsSampled() ||
		s.cfg.TraceBehavior == nil || !s.cfg.TraceBehavior(d.msg.Behavior) {
		return nil
	}
	_, span := s.cfg.Tracer.Start(d.ctx, d.msg.Behavior,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String(AttrBehavior, d.msg.Behavior),
			attribute.String(AttrFrom, d.msg.From.DID.Short()),
		))
	d.ctx.tr.span = span
	return span
}

// endSpan ends a server span with the code of the behavior's answer.
func endSpan(span trace.Span, e *Error) {
	if e != nil {
		span.SetAttributes(attribute.String(AttrCode, string(e.Code)))
		span.SetStatus(codes.Error, string(e.Code))
	}
	span.End()
}
