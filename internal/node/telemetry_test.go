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
	"github.com/dmsnet/dms/internal/store"
)

// newTracedNode is newTestNode with a store and tracing started from cfg
// (sampling, OTLP endpoint), as Run starts them.
func newTracedNode(t testing.TB, mod func(*config.Config)) *testNode {
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
	stopTracing, err := n.startTracing()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopTracing() })
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

// A traced node's root span and the server span of the behavior it sends
// to on another node are one trace, kept in each node's local record.
func TestNodeTracing(t *testing.T) {
	traced := func(c *config.Config) { c.Telemetry.Sampling = 1 }
	sender, receiver := newTracedNode(t, traced), newTracedNode(t, traced)
	sender.connect(t, receiver)
	trustSender(t, sender, receiver)
	got := make(chan string, 1)
	receiver.root.AddBehavior(benchBehavior, func(ctx context.Context, m *actor.Message) (any, error) {
		got <- actor.TraceFrom(ctx)
		return nil, nil
	})
	ctx, root := sender.tracer.Start(context.Background(), "deploy")
	if err := sender.root.Invoke(ctx, receiver.root.Handle(), benchBehavior, nil, nil); err != nil {
		t.Fatal(err)
	}
	root.End()
	if tp := <-got; tp != actor.FormatTraceparent(root.SpanContext()) {
		t.Fatalf("the behavior saw traceparent %q, want the root's", tp)
	}
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
	if err != nil || len(theirs) != 1 || theirs[0].Name != benchBehavior || theirs[0].ParentID != mine[0].SpanID || theirs[0].Node != receiver.host.ID() {
		t.Fatalf("receiver's record = %+v, %v; want the behavior's span under the root", theirs, err)
	}
}

// trustSender makes receiver accept the sender node's /dms/bench invocations.
func trustSender(t testing.TB, sender, receiver *testNode) {
	t.Helper()
	trust, err := cap.NewTrust(
		cap.Anchor{Root: receiver.user.DID(), Cmd: "/dms"},
		cap.Anchor{Root: sender.cfg.Key.DID(), Cmd: "/dms/bench"},
	)
	if err != nil {
		t.Fatal(err)
	}
	receiver.verify.SetTrust(trust)
}

// BenchmarkSendTracing is BenchmarkSendThroughput (authenticated one-way
// envelopes, 8 concurrent senders, two nodes over libp2p on loopback) with
// tracing off — the anchor — and on at 10 % and 100 % sampling. With
// tracing on, both nodes run it as `dms run` does (local record of spans
// in the store, export over OTLP/HTTP to an in-process collector that
// accepts everything), and every Send is made within a fresh root span
// that the sender's sampler keeps at the ratio; the receiver continues
// sampled traces with a server span. Results: docs/PERFORMANCE.md,
// "Tracing overhead".
func BenchmarkSendTracing(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	for _, bc := range []struct {
		name     string
		traced   bool
		sampling float64
	}{
		{"off", false, 0},
		{"sampled-0pct", true, 0}, // every Send carries an unsampled traceparent
		{"sampled-10pct", true, 0.1},
		{"sampled-100pct", true, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mod := func(c *config.Config) {
				c.Actor.Mailbox = 1 << 16
				c.Actor.PeerRate, c.Actor.PeerBurst = 1e9, 1<<20
				c.Telemetry.Sampling = bc.sampling
				c.Telemetry.OTLPEndpoint = collector.URL
			}
			var sender, receiver *testNode
			if bc.traced {
				sender, receiver = newTracedNode(b, mod), newTracedNode(b, mod)
			} else {
				sender, receiver = newTestNode(b, mod), newTestNode(b, mod)
			}
			sender.connect(b, receiver)
			trustSender(b, sender, receiver)
			var got atomic.Int64
			receiver.root.AddBehavior(benchBehavior, func(ctx context.Context, m *actor.Message) (any, error) {
				got.Add(1)
				return nil, nil
			})
			from, to := sender.root, receiver.root.Handle()
			if err := from.Invoke(context.Background(), to, benchBehavior, payload100, nil); err != nil {
				b.Fatal(err)
			}
			got.Store(0)
			tracer := sender.tracer
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
						ctx := context.Background()
						if bc.traced {
							var span trace.Span
							ctx, span = tracer.Start(ctx, "bench.send")
							err := from.Send(ctx, to, benchBehavior, payload100)
							span.End()
							if err != nil {
								b.Error(err)
								return
							}
							continue
						}
						if err := from.Send(ctx, to, benchBehavior, payload100); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			deadline := time.Now().Add(60 * time.Second)
			for got.Load() < int64(b.N) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			if n := got.Load(); n < int64(b.N) {
				b.Fatalf("delivered %d of %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			// CPU time of the process per message (both nodes): on a busy
			// machine a steadier measure of the cost than the rate.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1000, "cpu-µs/msg")
			if bc.traced {
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
