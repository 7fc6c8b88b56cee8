// Command hollywood measures the unauthenticated actor framework anchor of
// docs/PERFORMANCE.md: two Hollywood engines in one process talking over
// loopback TCP through Hollywood's remote (dRPC streams, protobuf).
//
// It reports, in Go benchmark format so bench/run-messaging.sh can tabulate
// it beside our own benchmarks:
//
//   - BenchmarkHollywoodSend: one-way Send throughput from an actor-less
//     sender on engine A to an actor on engine B, 100-byte payloads, until
//     -n messages or -d, whichever comes first (msgs/s);
//   - BenchmarkHollywoodRTT: request/response round trips from A to an
//     echo actor on B, one at a time (p50/p99).
//
// It lives in its own module so that the main module does not depend on
// Hollywood.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/anthdm/hollywood/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	n := flag.Int("n", 1_000_000, "most messages sent one way")
	d := flag.Duration("d", 10*time.Second, "longest time spent sending one way")
	rttN := flag.Int("rtt-n", 20_000, "most request/response round trips")
	rttD := flag.Duration("rtt-d", 10*time.Second, "longest time spent on round trips")
	size := flag.Int("size", 100, "payload bytes")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err := run(*n, *d, *rttN, *rttD, *size); err != nil {
		fmt.Fprintln(os.Stderr, "hollywood:", err)
		os.Exit(1)
	}
}

// sink counts the messages it receives and closes done at the target.
type sink struct {
	count  *atomic.Int64
	target *atomic.Int64
	done   chan struct{}
}

func (s *sink) Receive(c *actor.Context) {
	if _, ok := c.Message().(*wrapperspb.BytesValue); ok {
		if s.count.Add(1) == s.target.Load() {
			close(s.done)
		}
	}
}

// echo answers every request with the request.
type echo struct{}

func (echo) Receive(c *actor.Context) {
	if m, ok := c.Message().(*wrapperspb.BytesValue); ok {
		c.Respond(m)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func newEngine() (*actor.Engine, *remote.Remote, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	r := remote.New(addr, remote.NewConfig())
	e, err := actor.NewEngine(actor.NewEngineConfig().WithRemote(r))
	if err != nil {
		return nil, nil, fmt.Errorf("engine: %w", err)
	}
	return e, r, nil
}

func run(n int, d time.Duration, rttN int, rttD time.Duration, size int) error {
	a, ra, err := newEngine()
	if err != nil {
		return err
	}
	defer func() { ra.Stop().Wait() }()
	b, rb, err := newEngine()
	if err != nil {
		return err
	}
	defer func() { rb.Stop().Wait() }()

	var count, target atomic.Int64
	target.Store(-1)
	done := make(chan struct{})
	sinkPID := b.Spawn(func() actor.Receiver { return &sink{count: &count, target: &target, done: done} }, "sink")
	echoPID := b.Spawn(func() actor.Receiver { return echo{} }, "echo")
	msg := &wrapperspb.BytesValue{Value: make([]byte, size)}

	// Warm up the connection and check both actors answer.
	if _, err := a.Request(echoPID, msg, 5*time.Second).Result(); err != nil {
		return fmt.Errorf("warm-up request: %w", err)
	}

	// One-way throughput.
	start := time.Now()
	deadline := start.Add(d)
	sent := 0
	for sent < n && (sent%1024 != 0 || time.Now().Before(deadline)) {
		a.Send(sinkPID, msg)
		sent++
	}
	target.Store(int64(sent))
	if count.Load() >= int64(sent) {
		close(done)
	}
	select {
	case <-done:
	case <-time.After(d + 30*time.Second):
		return fmt.Errorf("one-way: %d of %d messages arrived", count.Load(), sent)
	}
	elapsed := time.Since(start)
	fmt.Printf("BenchmarkHollywoodSend\t%d\t%.0f ns/op\t%.0f msgs/s\n",
		sent, float64(elapsed.Nanoseconds())/float64(sent), float64(sent)/elapsed.Seconds())

	// Request/response round trips.
	lat := make([]time.Duration, 0, rttN)
	rttDeadline := time.Now().Add(rttD)
	for len(lat) < rttN && time.Now().Before(rttDeadline) {
		t0 := time.Now()
		res, err := a.Request(echoPID, msg, 5*time.Second).Result()
		if err != nil {
			return fmt.Errorf("request %d: %w", len(lat), err)
		}
		if _, ok := res.(*wrapperspb.BytesValue); !ok {
			return errors.New("unexpected response type")
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	var total time.Duration
	for _, l := range lat {
		total += l
	}
	fmt.Printf("BenchmarkHollywoodRTT\t%d\t%d ns/op\t%s p50-ns\t%s p99-ns\n",
		len(lat), total.Nanoseconds()/int64(len(lat)),
		strconv.FormatInt(pct(lat, 50).Nanoseconds(), 10), strconv.FormatInt(pct(lat, 99).Nanoseconds(), 10))
	return nil
}

// pct returns the p-th percentile of sorted.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
