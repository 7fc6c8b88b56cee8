package orchestrator_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dmsnet/dms/internal/orchestrator"
)

// Whole-pipeline benchmarks in one process: N providers on the in-memory
// transport, each with resource accounting and the fake executor; an
// orchestrator on node 0. docs/PERFORMANCE.md records the results.

// BenchmarkPlacements measures deployments placed per second across 100
// providers: submit → bid round → placement → two-phase commit → started,
// 64 deployments in flight. The offer cache shortlists providers after the
// first rounds, as it would on a busy orchestrator.
func BenchmarkPlacements(b *testing.B) {
	w := newWorld(b, 100, worldOpts{cpu: 64000, ram: 64 << 30, bid: time.Second})
	spec := task("0.01", "exit=0")
	elapsed, cpu := placeAll(b, w, spec, 64)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(cpuMs(cpu, b.N), "cpu-ms/placement")
}

// BenchmarkPlacementsTraced is BenchmarkPlacements with every node
// tracing every deployment (sampling 1; the spans made, then dropped):
// the cost of tracing to placements, against BenchmarkPlacements run
// beside it.
func BenchmarkPlacementsTraced(b *testing.B) {
	w := newWorld(b, 100, worldOpts{cpu: 64000, ram: 64 << 30, bid: time.Second, spans: dropSpans{}})
	spec := task("0.01", "exit=0")
	elapsed, cpu := placeAll(b, w, spec, 64)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(cpuMs(cpu, b.N), "cpu-ms/placement")
}

// dropSpans is a span processor that drops what it is given.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// BenchmarkBidRound1000 measures one bid round across 1,000 providers: the
// request gossiped to all, each provider scoring and reserving, the
// replies collected (the round ends when all answered), rated and placed.
// It reports the time from submit to the placement decision.
func BenchmarkBidRound1000(b *testing.B) {
	w := newWorld(b, 1000, worldOpts{cpu: 64000, ram: 64 << 30, bid: 5 * time.Second})
	spec := task("0.01", "exit=0")
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		w.nodes[0].svc.ForgetOffers() // broadcast every round
		t0 := time.Now()
		d := w.submit(spec)
		waitPlaced(b, w.nodes[0].svc, d.ID)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Milliseconds()), "p99-ms")
}

// waitPlaced waits until the deployment has a committed placement.
func waitPlaced(t testing.TB, svc *orchestrator.Service, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var after uint64
	for {
		d, err := svc.Wait(ctx, id, after)
		if err != nil {
			t.Error(err)
			return
		}
		switch d.State {
		case orchestrator.Provisioning, orchestrator.Running, orchestrator.Completed:
			return
		case orchestrator.Failed, orchestrator.Stopped:
			t.Errorf("deployment %s: %s (%s)", id, d.State, d.Message)
			return
		}
		if ctx.Err() != nil {
			t.Errorf("deployment %s not placed: %s (%s)", id, d.State, d.Message)
			return
		}
		after = d.Version
	}
}

// BenchmarkPlacementsGang measures allocations placed per second when each
// deployment is a gang of 10 nodes (one allocation each, ten distinct
// providers out of 100): one bid round and one commit round place ten.
func BenchmarkPlacementsGang(b *testing.B) {
	w := newWorld(b, 100, worldOpts{cpu: 64000, ram: 64 << 30, bid: time.Second})
	var spec strings.Builder
	spec.WriteString("version: v1\nallocations:\n")
	for i := range 10 {
		fmt.Fprintf(&spec, "  a%d: {executor: docker, resources: {cpu: 0.01, ram: 1MiB}, execution: {image: workload, cmd: [workload, exit=0]}}\n", i)
	}
	spec.WriteString("nodes:\n")
	for i := range 10 {
		fmt.Fprintf(&spec, "  n%d: {allocations: [a%d]}\n", i, i)
	}
	elapsed, cpu := placeAll(b, w, spec.String(), 16)
	b.ReportMetric(cpuMs(cpu, 10*b.N), "cpu-ms/placement")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deployments/s")
	b.ReportMetric(float64(10*b.N)/elapsed.Seconds(), "placements/s")
}

// placeAll submits spec b.N times from node 0, inFlight at a time, and
// returns how long until every deployment was placed and the CPU time the
// process spent meanwhile (all goroutines and the garbage collector: a
// figure that other processes on a loaded machine change far less than
// the wall-clock rate). One deployment first
// warms the links and the offer cache; the user's side (parsing, signing
// the delegations) is done before the clock starts: it runs on the users'
// machines.
func placeAll(b *testing.B, w *world, spec string, inFlight int) (time.Duration, time.Duration) {
	w.submit(spec)
	subs := make([]orchestrator.Submission, b.N)
	for i := range subs {
		subs[i] = w.submission(w.nodes[0], spec)
	}
	st0 := w.nodes[0].svc.Stats()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := w.nodes[0].svc.Submit(context.Background(), subs[i])
			if err != nil {
				b.Error(err)
				return
			}
			waitPlaced(b, w.nodes[0].svc, d.ID)
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	st := w.nodes[0].svc.Stats()
	b.ReportMetric(float64(st.Rounds-st0.Rounds)/float64(st.Placements-st0.Placements), "rounds/placement")
	b.ReportMetric(float64(st.Broadcasts-st0.Broadcasts)/float64(st.Placements-st0.Placements), "broadcasts/placement")
	return elapsed, cpu
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMs is cpu per operation in milliseconds.
func cpuMs(cpu time.Duration, n int) float64 {
	return float64(cpu.Microseconds()) / 1000 / float64(max(n, 1))
}
