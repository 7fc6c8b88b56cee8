package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/store"
)

// newTracedNode is newTestNode with a store and tracing started from cfg
// (sampling, OTLP endpoint), as Run starts them.
func newTracedNode(t testing.TB, mod func(*config.Config)) *testNode {
	t.Helper()
	return newStoreNode(t, mod, true)
}

// newStoreNode is newTestNode with a store, as Run opens it (capability
// state and replay cache in it), and tracing started when tracing is set.
func newStoreNode(t testing.TB, mod func(*config.Config), tracing bool) *testNode {
	t.Helper()
	key, user := mustKey(t), mustKey(t)
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	if mod != nil {
		mod(&cfg)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := &Node{
		cfg:     Config{Config: cfg, Key: key, UserDID: user.DID(), Version: "test", Logger: slog.New(slog.DiscardHandler)},
		log:     slog.New(slog.DiscardHandler),
		started: time.Now(),
		wallet:  newWallet(),
		db:      db,
	}
	if tracing {
		stopTracing, err := n.startTracing()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopTracing() })
	}
	if err := n.startCaps(); err != nil {
		t.Fatal(err)
	}
	stop, err := n.startNetwork(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	return &testNode{Node: n, user: user}
}

// tracedBench is a behavior of the deployment control plane, so traced
// (tracedBehavior), that the tests and benchmarks register themselves.
const tracedBench = deployproto.CmdDeployment + "/bench"

// A traced node's root span and the server span of a traced behavior it
// sends to on another node are one trace, kept in each node's local
// record. An untraced behavior in the same trace makes no span but sees
// the trace.
func TestNodeTracing(t *testing.T) {
	traced := func(c *config.Config) { c.Telemetry.Sampling = 1 }
	sender, receiver := newTracedNode(t, traced), newTracedNode(t, traced)
	sender.connect(t, receiver)
	trustSender(t, sender, receiver)
	got := make(chan string, 2)
	for _, b := range []string{tracedBench, benchBehavior} {
		receiver.root.AddBehavior(b, func(ctx context.Context, m *actor.Message) (any, error) {
			got <- actor.TraceFrom(ctx)
			return nil, nil
		})
	}
	ctx, root := sender.tracer.Start(context.Background(), "deploy")
	for _, b := range []string{tracedBench, benchBehavior} {
		if err := sender.root.Invoke(ctx, receiver.root.Handle(), b, nil, nil); err != nil {
			t.Fatal(err)
		}
		if tp := <-got; tp != actor.FormatTraceparent(root.SpanContext()) {
			t.Fatalf("%s saw traceparent %q, want the root's", b, tp)
		}
	}
	root.End()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	traceID := root.SpanContext().TraceID().String()
	for _, n := range []*testNode{sender, receiver} {
		if err := n.tracing.ForceFlush(fctx); err != nil {
			t.Fatal(err)
		}
	}
	mine, err := sender.spans.Spans(traceID)
	if err != nil || len(mine) != 1 || mine[0].Name != "deploy" || mine[0].Node != sender.host.ID() {
		t.Fatalf("sender's record = %+v, %v; want its root span", mine, err)
	}
	theirs, err := receiver.spans.Spans(traceID)
	if err != nil || len(theirs) != 1 || theirs[0].Name != tracedBench || theirs[0].ParentID != mine[0].SpanID || theirs[0].Node != receiver.host.ID() {
		t.Fatalf("receiver's record = %+v, %v; want only the traced behavior's span, under the root", theirs, err)
	}
}

// The deployment control plane is traced; its data and polling behaviors
// and everything else are not.
func TestTracedBehavior(t *testing.T) {
	for b, want := range map[string]bool{
		deployproto.BehaviorRequest:    true,
		deployproto.BehaviorCommit:     true,
		deployproto.BehaviorReport:     true,
		deployproto.BehaviorReplicate:  true,
		deployproto.BehaviorStart:      true,
		deployproto.BehaviorStop:       true,
		deployproto.BehaviorSubnet:     true,
		deployproto.BehaviorNote:       false,
		deployproto.BehaviorLogs:       false,
		deployproto.BehaviorStatus:     false,
		deployproto.BehaviorArtifact:   false,
		deployproto.BehaviorExecOutput: false,
		"/dms/deployment/spans":        false,
		"/dms/deployment":              false,
		"/dms/deploymentx/commit":      false,
		benchBehavior:                  false,
		"/dms/node/peers/list":         false,
	} {
		if got := tracedBehavior(b); got != want {
			t.Errorf("tracedBehavior(%q) = %v, want %v", b, got, want)
		}
	}
}

// trustSender makes receiver accept the sender node's /dms/bench and
// tracedBench invocations.
func trustSender(t testing.TB, sender, receiver *testNode) {
	t.Helper()
	trust, err := cap.NewTrust(
		cap.Anchor{Root: receiver.user.DID(), Cmd: "/dms"},
		cap.Anchor{Root: sender.cfg.Key.DID(), Cmd: "/dms/bench"},
		cap.Anchor{Root: sender.cfg.Key.DID(), Cmd: tracedBench},
	)
	if err != nil {
		t.Fatal(err)
	}
	receiver.verify.SetTrust(trust)
}

// BenchmarkSendTracing is BenchmarkSendThroughput (authenticated one-way
// envelopes, 8 concurrent senders, two nodes over libp2p on loopback) with
// tracing off — the anchor — and on at 0 %, 10 % and 100 % sampling. With
// tracing on, both nodes run it as `dms run` does (local record of spans
// in the store, export over OTLP/HTTP to an in-process collector that
// accepts everything). Sends are made as dms makes them: within existing
// traces (one per deployment), here 1,000 root spans started once, each
// sampled at the ratio, the Sends rotating over them. The receiving
// behavior is either untraced (the trace only passes through it) or traced
// (a server span per sampled message, recorded and exported: the
// deployment control plane). Results: docs/PERFORMANCE.md, "Tracing
// overhead".
func BenchmarkSendTracing(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	type benchCase struct {
		name     string
		traced   bool
		sampling float64
		behavior string
		store    bool // a store (capability state, replay cache) without tracing
	}
	cases := []benchCase{{"off", false, 0, benchBehavior, false}, {"off-store", false, 0, benchBehavior, true}}
	for _, bh := range []struct{ name, behavior string }{{"untraced", benchBehavior}, {"traced", tracedBench}} {
		for _, r := range []struct {
			name  string
			ratio float64
		}{{"0pct", 0}, {"10pct", 0.1}, {"100pct", 1}} {
			cases = append(cases, benchCase{bh.name + "-" + r.name, true, r.ratio, bh.behavior, true})
		}
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			mod := func(c *config.Config) {
				c.Actor.Mailbox = 1 << 16
				c.Actor.PeerRate, c.Actor.PeerBurst = 1e9, 1<<20
				c.Telemetry.Sampling = bc.sampling
				c.Telemetry.OTLPEndpoint = collector.URL
			}
			var sender, receiver *testNode
			switch {
			case bc.traced:
				sender, receiver = newTracedNode(b, mod), newTracedNode(b, mod)
			case bc.store:
				sender, receiver = newStoreNode(b, mod, false), newStoreNode(b, mod, false)
			default:
				sender, receiver = newTestNode(b, mod), newTestNode(b, mod)
			}
			sender.connect(b, receiver)
			trustSender(b, sender, receiver)
			var got atomic.Int64
			for _, bh := range []string{benchBehavior, tracedBench} {
				receiver.root.AddBehavior(bh, func(ctx context.Context, m *actor.Message) (any, error) {
					got.Add(1)
					return nil, nil
				})
			}
			from, to := sender.root, receiver.root.Handle()
			if err := from.Invoke(context.Background(), to, bc.behavior, payload100, nil); err != nil {
				b.Fatal(err)
			}
			// Untimed warm-up, untraced, so that the first case does not
			// pay alone for what the process sets up once.
			const warmup = 2000
			for range warmup {
				if err := from.Send(context.Background(), to, bc.behavior, payload100); err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for got.Load() < warmup+1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			got.Store(0)
			// The traces the Sends are made in: one root span each,
			// sampled at the ratio when it starts.
			const traces = 1000
			ctxs := make([]context.Context, traces)
			spans := make([]trace.Span, 0, traces)
			sampled := 0
			for i := range ctxs {
				ctxs[i] = context.Background()
				if bc.traced {
					var span trace.Span
					ctxs[i], span = sender.tracer.Start(ctxs[i], "deployment")
					spans = append(spans, span)
					if span.SpanContext().IsSampled() {
						sampled++
					}
				}
			}
			const senders = 8
			b.ReportAllocs()
			b.ResetTimer()
			t0, cpu0 := time.Now(), cpuTime()
			var wg sync.WaitGroup
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := s; i < b.N; i += senders {
						if err := from.Send(ctxs[i%traces], to, bc.behavior, payload100); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			deadline = time.Now().Add(60 * time.Second)
			for got.Load() < int64(b.N) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			for _, span := range spans {
				span.End()
			}
			if n := got.Load(); n < int64(b.N) {
				b.Fatalf("delivered %d of %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			// CPU time of the process per message (both nodes): on a busy
			// machine a steadier measure of the cost than the rate.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1000, "cpu-µs/msg")
			if bc.traced {
				b.ReportMetric(float64(sampled)/traces*100, "%-traces-sampled")
				st := receiver.tracing.Stats()
				b.ReportMetric(float64(st["dropped"]+st["record_dropped"]), "spans-dropped")
			}
		})
	}
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
