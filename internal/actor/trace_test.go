package actor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const validTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		sampled bool
		bad     string // the part named in the error; "" valid
	}{
		{"sampled", validTrace, true, ""},
		{"unsampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", false, ""},
		{"other flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", true, ""},
		{"empty", "", false, "length"},
		{"short", validTrace[:54], false, "length"},
		{"long", validTrace + "-", false, "length"},
		{"version 01", "01" + validTrace[2:], false, "version"},
		{"version ff", "ff" + validTrace[2:], false, "version"},
		{"separator", "00_" + validTrace[3:], false, "separator"},
		{"upper-case trace id", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, "trace-id"},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, "trace-id"},
		{"non-hex trace id", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false, "trace-id"},
		{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, "parent-id"},
		{"non-hex span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", false, "parent-id"},
		{"non-hex flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", false, "flags"},
		{"upper-case flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false, "flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ParseTraceparent(tt.in)
			if tt.bad != "" {
				if !errors.Is(err, ErrBadTraceparent) || !strings.HasSuffix(err.Error(), tt.bad) {
					t.Fatalf("ParseTraceparent(%q) = %v, want an error naming %s", tt.in, err, tt.bad)
				}
				return
			}
			if err != nil || !sc.IsValid() || !sc.IsRemote() || sc.IsSampled() != tt.sampled {
				t.Fatalf("ParseTraceparent(%q) = %v, %v; want valid, remote, sampled %v", tt.in, sc, err, tt.sampled)
			}
			if got := FormatTraceparent(sc); got != tt.in {
				t.Fatalf("FormatTraceparent = %q, want %q", got, tt.in)
			}
		})
	}
	if got := FormatTraceparent(trace.SpanContext{}); got != "" {
		t.Fatalf("FormatTraceparent(zero) = %q, want empty", got)
	}
}

func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{validTrace, "", "00-", "00-00000000000000000000000000000000-0000000000000000-00", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseTraceparent(s)
		if err != nil {
			if !errors.Is(err, ErrBadTraceparent) {
				t.Fatalf("error %v does not wrap ErrBadTraceparent", err)
			}
			return
		}
		// Only the canonical form parses: it formats back to itself.
		if got := FormatTraceparent(sc); got != s {
			t.Fatalf("FormatTraceparent(ParseTraceparent(%q)) = %q", s, got)
		}
	})
}

// A tracer that records every span it finishes, sampling as told.
func recorder(sampler sdktrace.Sampler) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
}

type countingTracer struct {
	trace.Tracer
	bad atomic.Int64
}

func (c *countingTracer) BadTraceparent() { c.bad.Add(1) }

// A trace crosses two runtimes: the sender's span is the parent of the
// receiver's server span, whose context the behavior's own sends continue.
// A behavior that is not traced (Config.TraceBehavior) makes no span, and
// its own sends continue the trace from the sender's span.
func TestTracePropagation(t *testing.T) {
	net := NewMemNetwork()
	recA, tpA := recorder(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	recB, tpB := recorder(sdktrace.ParentBased(sdktrace.NeverSample()))
	tracerB := &countingTracer{Tracer: tpB.Tracer("b")}
	traced := func(b string) bool { return b != "/test/pass" }
	a := newNode(t, net, &testAuth{}, func(c *Config) { c.Tracer, c.TraceBehavior = tpA.Tracer("a"), traced })
	b := newNode(t, net, &testAuth{}, func(c *Config) { c.Tracer, c.TraceBehavior = tracerB, traced })

	type seen struct {
		Trace    string // TraceFrom(ctx) in the behavior
		Span     string // the traceparent of the behavior's span
		Sampled  bool
		Recorded bool
	}
	look := func(ctx context.Context) seen {
		sc := trace.SpanFromContext(ctx).SpanContext()
		return seen{Trace: TraceFrom(ctx), Span: FormatTraceparent(sc), Sampled: sc.IsSampled(), Recorded: trace.SpanFromContext(ctx).IsRecording()}
	}
	a.a.AddBehavior("/test/leaf", func(ctx context.Context, m *Message) (any, error) { return look(ctx), nil })
	a.a.AddBehavior("/test/fail", func(ctx context.Context, m *Message) (any, error) {
		return nil, &Error{Code: CodeDenied, Msg: "no"}
	})
	b.a.AddBehavior("/test/hop", func(ctx context.Context, m *Message) (any, error) {
		var leaf seen
		err := b.a.Invoke(ctx, a.a.Handle(), "/test/leaf", nil, &leaf)
		return []seen{look(ctx), leaf}, err
	})
	b.a.AddBehavior("/test/pass", func(ctx context.Context, m *Message) (any, error) {
		var leaf seen
		err := b.a.Invoke(ctx, a.a.Handle(), "/test/leaf", nil, &leaf)
		return []seen{look(ctx), leaf}, err
	})

	t.Run("sampled", func(t *testing.T) {
		ctx, root := tpA.Tracer("a").Start(ctxT(t), "root")
		var got []seen
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/hop", nil, &got); err != nil {
			t.Fatal(err)
		}
		root.End()
		rootTP := FormatTraceparent(root.SpanContext())
		hop, leaf := got[0], got[1]
		if hop.Trace != rootTP || !hop.Recorded || !hop.Sampled {
			t.Fatalf("the hop saw %+v; want the root's traceparent %s and a recording span", hop, rootTP)
		}
		if leaf.Trace != hop.Span || !leaf.Recorded {
			t.Fatalf("the leaf saw %+v; want the hop span's traceparent %s", leaf, hop.Span)
		}
		spansB := recB.Ended()
		if len(spansB) != 1 || spansB[0].Name() != "/test/hop" || spansB[0].Parent().SpanID() != root.SpanContext().SpanID() ||
			spansB[0].SpanKind() != trace.SpanKindServer {
			t.Fatalf("B recorded %v; want one server span /test/hop, child of the root", names(spansB))
		}
		attrs := map[string]string{}
		for _, kv := range spansB[0].Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs[AttrBehavior] != "/test/hop" || attrs[AttrFrom] != a.key.DID().Short() {
			t.Fatalf("hop span attributes = %v", attrs)
		}
		var leafSpan sdktrace.ReadOnlySpan
		for _, s := range recA.Ended() {
			if s.Name() == "/test/leaf" {
				leafSpan = s
			}
		}
		if leafSpan == nil || leafSpan.Parent().SpanID() != spansB[0].SpanContext().SpanID() || leafSpan.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("A recorded %v; want /test/leaf, child of the hop, in the root's trace", names(recA.Ended()))
		}
	})

	t.Run("untraced behavior", func(t *testing.T) {
		before := len(recB.Ended())
		ctx, root := tpA.Tracer("a").Start(ctxT(t), "root")
		var got []seen
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/pass", nil, &got); err != nil {
			t.Fatal(err)
		}
		root.End()
		rootTP := FormatTraceparent(root.SpanContext())
		pass, leaf := got[0], got[1]
		if pass.Trace != rootTP || pass.Span != rootTP || !pass.Sampled || pass.Recorded {
			t.Fatalf("the untraced behavior saw %+v; want the root's sampled traceparent %s and no span of its own", pass, rootTP)
		}
		if leaf.Trace != rootTP || !leaf.Recorded {
			t.Fatalf("the leaf saw %+v; want the root's traceparent %s and a recording span", leaf, rootTP)
		}
		if n := len(recB.Ended()); n != before {
			t.Fatalf("B recorded %v for an untraced behavior", names(recB.Ended()[before:]))
		}
		leafSpan := lastNamed(recA.Ended(), "/test/leaf")
		if leafSpan == nil || leafSpan.Parent().SpanID() != root.SpanContext().SpanID() || leafSpan.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("A recorded %v; want /test/leaf, child of the root", names(recA.Ended()))
		}
	})

	t.Run("error code", func(t *testing.T) {
		ctx, root := tpA.Tracer("a").Start(ctxT(t), "root")
		defer root.End()
		if err := b.a.Invoke(ctx, a.a.Handle(), "/test/fail", nil, nil); !errors.Is(err, ErrDenied) {
			t.Fatalf("Invoke = %v, want denied", err)
		}
		// A's span for /test/fail carries the code. The sender here is B
		// with A's span context in ctx: the trace follows ctx, not the
		// sending actor.
		s := lastNamed(recA.Ended(), "/test/fail")
		if s == nil || s.Status().Description != string(CodeDenied) {
			t.Fatalf("A recorded %v; want /test/fail with status %s", names(recA.Ended()), CodeDenied)
		}
	})

	// An unsampled trace is not sent: the behaviors see no trace and
	// record nothing, and what they send carries none.
	unsampled := func(t *testing.T, ctx context.Context) {
		before := len(recB.Ended())
		var got []seen
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/hop", nil, &got); err != nil {
			t.Fatal(err)
		}
		if got[0] != (seen{}) || got[1] != (seen{}) {
			t.Fatalf("behaviors saw %+v; want no trace", got)
		}
		if n := len(recB.Ended()); n != before {
			t.Fatalf("B recorded %d spans for an unsampled trace", n-before)
		}
	}
	t.Run("unsampled span", func(t *testing.T) {
		_, tpNever := recorder(sdktrace.NeverSample())
		ctx, root := tpNever.Tracer("x").Start(ctxT(t), "root")
		defer root.End()
		unsampled(t, ctx)
	})
	t.Run("unsampled traceparent", func(t *testing.T) {
		unsampled(t, WithTrace(ctxT(t), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
	})

	t.Run("malformed", func(t *testing.T) {
		ctx := WithTrace(ctxT(t), "00-XYZ")
		var got []seen
		if err := a.a.Invoke(ctx, b.a.Handle(), "/test/hop", nil, &got); err != nil {
			t.Fatalf("Invoke with a malformed traceparent = %v, want it handled", err)
		}
		if got[0] != (seen{Span: ""}) || got[1].Trace != "" {
			t.Fatalf("behaviors saw %+v; want no trace", got)
		}
		if n := b.sys.Stats()["bad_traceparent"]; n != 1 || tracerB.bad.Load() != 1 {
			t.Fatalf("bad_traceparent = %d, tracer counted %d; want 1", n, tracerB.bad.Load())
		}
	})
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func lastNamed(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].Name() == name {
			return spans[i]
		}
	}
	return nil
}

// The receiving path of an envelope without a trace, with an unsampled
// one, or with a sampled one for a behavior that is not traced, allocates
// nothing but the behavior's context: parsing, the remote parent in the behavior's context, the span
// lookups and the traceparent of a nested send.
func TestTraceNoAllocs(t *testing.T) {
	_, tp := recorder(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	s := &System{cfg: Config{Tracer: tp.Tracer("x"), TraceBehavior: func(b string) bool { return b == "/traced" }}}
	for _, tc := range []struct{ trace, behavior, passed string }{
		{"", "/traced", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "/traced", ""},
		{validTrace, "/x", validTrace},
	} {
		msg := Message{Trace: tc.trace, Behavior: tc.behavior, Expiry: time.Now().Add(time.Minute)}
		d := &delivery{}
		allocs := testing.AllocsPerRun(100, func() {
			*d = delivery{msg: msg}
			d.setTrace(s.parseTrace(&d.msg, "peer"))
			d.begin() // the behavior's context: the one allocation of a message
			if span := s.startSpan(d); span != nil {
				t.Fatal("a span for an unsampled trace or an untraced behavior")
			}
			if trace.SpanFromContext(d.ctx).IsRecording() || envelopeTrace(d.ctx) != tc.passed {
				t.Fatal("wrong span or trace")
			}
		})
		if allocs != 1 {
			t.Errorf("trace %q, behavior %s: %v allocations per message, want 1 (the context)", tc.trace, tc.behavior, allocs)
		}
	}
}

// Only the behaviors Config.TraceBehavior opts in get a server span; with
// no TraceBehavior, none does.
func TestTraceBehaviorOptIn(t *testing.T) {
	rec, tp := recorder(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	for _, tc := range []struct {
		name     string
		traced   func(string) bool
		behavior string
		span     bool
	}{
		{"nil", nil, "/dms/deployment/commit", false},
		{"opted in", func(b string) bool { return b == "/dms/deployment/commit" }, "/dms/deployment/commit", true},
		{"not opted in", func(b string) bool { return b == "/dms/deployment/commit" }, "/dms/bench/echo", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &System{cfg: Config{Tracer: tp.Tracer("x"), TraceBehavior: tc.traced}}
			before := len(rec.Ended())
			d := &delivery{msg: Message{Trace: validTrace, Behavior: tc.behavior, Expiry: time.Now().Add(time.Minute)}}
			d.setTrace(s.parseTrace(&d.msg, "peer"))
			d.begin()
			span := s.startSpan(d)
			if (span != nil) != tc.span {
				t.Fatalf("span = %v, want one: %v", span, tc.span)
			}
			if envelopeTrace(d.ctx) == "" || trace.SpanFromContext(d.ctx).IsRecording() != tc.span {
				t.Fatal("the behavior's context lost the trace, or has the wrong span")
			}
			if span != nil {
				endSpan(span, nil)
			}
			if got := len(rec.Ended()) - before; got != map[bool]int{true: 1}[tc.span] {
				t.Fatalf("%d spans recorded", got)
			}
		})
	}
}

// An envelope that arrives with an unsampled traceparent (from a peer that
// still sends them) is handled as if it came without: no span, even for a
// traced behavior on a runtime whose tracer samples every root, nothing in
// Message.Trace or the behavior's context, nothing passed on. Parent-based
// sampling holds: no node starts a trace of its own from it.
func TestUnsampledTraceStops(t *testing.T) {
	rec, tp := recorder(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	s := &System{cfg: Config{Tracer: tp.Tracer("x"), TraceBehavior: func(string) bool { return true }}}
	for _, tc := range []struct {
		name, trace string
		span        bool
		passed      string
	}{
		{"none", "", false, ""},
		{"unsampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", false, ""},
		{"unsampled, other flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", false, ""},
		{"sampled", validTrace, true, ""}, // passes on its own span's traceparent
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Ended())
			d := &delivery{msg: Message{Trace: tc.trace, Behavior: "/dms/deployment/commit", Expiry: time.Now().Add(time.Minute)}}
			d.setTrace(s.parseTrace(&d.msg, "peer"))
			d.begin()
			span := s.startSpan(d)
			if (span != nil) != tc.span {
				t.Fatalf("span = %v, want one: %v", span, tc.span)
			}
			if span == nil {
				if d.msg.Trace != "" || TraceFrom(d.ctx) != "" || trace.SpanContextFromContext(d.ctx).IsValid() || envelopeTrace(d.ctx) != "" {
					t.Fatalf("an untraced message kept a trace: msg %q, ctx %q, sent on %q", d.msg.Trace, TraceFrom(d.ctx), envelopeTrace(d.ctx))
				}
				if n := len(rec.Ended()) - before; n != 0 {
					t.Fatalf("%d spans recorded", n)
				}
				return
			}
			if got, want := envelopeTrace(d.ctx), FormatTraceparent(span.SpanContext()); got != want || span.SpanContext().TraceID().String() != tc.trace[3:35] {
				t.Fatalf("a nested send carries %q, want the server span's %q in the sender's trace", got, want)
			}
			endSpan(span, nil)
		})
	}
}

// The traceparent an envelope carries, by what the sending context holds:
// a sampled trace's, never an unsampled one's; a malformed string as it
// is (the receiver counts it).
func TestEnvelopeTrace(t *testing.T) {
	_, tpAlways := recorder(sdktrace.AlwaysSample())
	_, tpNever := recorder(sdktrace.NeverSample())
	sampledCtx, sampled := tpAlways.Tracer("x").Start(context.Background(), "root")
	defer sampled.End()
	unsampledCtx, unsampledSpan := tpNever.Tracer("x").Start(context.Background(), "root")
	defer unsampledSpan.End()
	const unsampledTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"nothing", context.Background(), ""},
		{"sampled span", sampledCtx, FormatTraceparent(sampled.SpanContext())},
		{"unsampled span", unsampledCtx, ""},
		{"unsampled span and its traceparent", WithTrace(unsampledCtx, FormatTraceparent(unsampledSpan.SpanContext())), ""},
		{"sampled traceparent", WithTrace(context.Background(), validTrace), validTrace},
		{"unsampled traceparent", WithTrace(context.Background(), unsampledTP), ""},
		{"malformed traceparent", WithTrace(context.Background(), "00-XYZ"), "00-XYZ"},
		{"malformed flags", WithTrace(context.Background(), unsampledTP[:53]+"zz"), unsampledTP[:53] + "zz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := envelopeTrace(tc.ctx); got != tc.want {
				t.Fatalf("envelopeTrace = %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkDeliverTrace measures local Invokes with no trace, an unsampled
// one, a sampled one to a behavior that is not traced (propagation only)
// and a sampled one to a traced behavior (server span recorded) — the
// anchor is "none".
func BenchmarkDeliverTrace(b *testing.B) {
	_, tp := recorder(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	key := mustKey(b)
	id, _ := key.DID().PeerID()
	sys, err := NewSystem(Config{Transport: NewMemNetwork().Host(id), Auth: AllowAll{}, Issuer: AllowAll{},
		Tracer: tp.Tracer("b"), TraceBehavior: func(b string) bool { return b == "/traced" }})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close(context.Background())
	a, _ := sys.Spawn(key, RootInbox, SpawnOptions{})
	a.AddBehavior("/x", echo)
	a.AddBehavior("/traced", echo)
	for _, tc := range []struct{ name, trace, behavior string }{
		{"none", "", "/x"},
		{"unsampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "/traced"},
		{"sampled-untraced", validTrace, "/x"},
		{"sampled-traced", validTrace, "/traced"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			if tc.trace != "" {
				ctx = WithTrace(ctx, tc.trace)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.InvokeRaw(ctx, a.Handle(), tc.behavior, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Malformed traceparents from one peer are logged once and all counted;
// every message is handled.
func TestBadTraceparentLoggedOnce(t *testing.T) {
	net := NewMemNetwork()
	var logs lockedBuffer
	a := newNode(t, net, &testAuth{}, nil)
	b := newNode(t, net, &testAuth{}, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b.a.AddBehavior("/test/echo", echo)
	for i, tp := range []string{"00-XYZ", strings.ToUpper(validTrace), "01" + validTrace[2:]} {
		if err := a.a.Invoke(WithTrace(ctxT(t), tp), b.a.Handle(), "/test/echo", i, nil); err != nil {
			t.Fatalf("Invoke with traceparent %q = %v, want it handled", tp, err)
		}
	}
	if n := b.sys.Stats()["bad_traceparent"]; n != 3 {
		t.Fatalf("bad_traceparent = %d, want 3", n)
	}
	if n := strings.Count(logs.String(), "malformed traceparent"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
