package orchestrator_test

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"
)

// BenchmarkScale grows the in-process network of BenchmarkPlacements and
// BenchmarkBidRound1000 to 100, 1,000 and 10,000 simulated providers: real
// actors on the in-memory transport, signed bids, a resource ledger and the
// fake executor on every node, the orchestrator on node 0. For each size it
// reports placements per second (one-allocation deployments, 64 in flight,
// as BenchmarkPlacements) and a bid round broadcast to every provider (p50
// and p99 from submit to the placement decision, as BenchmarkBidRound1000).
// Provider nodes run their root actor on 4 goroutines instead of 64 so that
// 10,000 of them fit in memory; the orchestrator's node keeps 64.
//
//	go test -c -o /tmp/orch.test ./internal/orchestrator
//	cd internal/orchestrator && /tmp/orch.test -test.run '^$' -test.bench 'Scale' -test.benchtime 300x
//
// -test.benchtime sets the placements counted; the bid rounds are
// min(b.N, scaleRounds) at every size. Besides the rates it reports the
// process's CPU time per placement and per round: on a shared, loaded
// machine the wall-clock rates move with the other processes, the CPU
// time much less.
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("providers=%d", n), func(b *testing.B) {
			t0 := time.Now()
			w := newWorld(b, n, worldOpts{cpu: 64000, ram: 64 << 30, bid: 10 * time.Second, workers: 4})
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.Logf("%d providers up in %v, heap %d MiB, %d goroutines", n, time.Since(t0).Round(time.Millisecond), ms.HeapAlloc>>20, runtime.NumGoroutine())
			spec := task("0.01", "exit=0")
			b.Run("placements", func(b *testing.B) {
				elapsed, cpu := placeAll(b, w, spec, 64)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "placements/s")
				b.ReportMetric(cpuMs(cpu, b.N), "cpu-ms/placement")
			})
			b.Run("bidround", func(b *testing.B) {
				rounds := min(b.N, scaleRounds)
				cpu0 := processCPU()
				lat := bidRounds(b, w, spec, rounds)
				b.ReportMetric(cpuMs(processCPU()-cpu0, rounds), "cpu-ms/round")
				b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
				b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Milliseconds()), "p99-ms")
				b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
			})
		})
	}
}

// scaleRounds is how many bid rounds BenchmarkScale times at each size.
const scaleRounds = 10

// bidRounds runs n bid rounds, each broadcast to every provider (the offer
// cache forgotten), one at a time, and returns their latencies from submit
// to the placement decision, sorted.
func bidRounds(b *testing.B, w *world, spec string, n int) []time.Duration {
	var lat []time.Duration
	b.ResetTimer()
	for range n {
		w.nodes[0].svc.ForgetOffers()
		t0 := time.Now()
		d := w.submit(spec)
		waitPlaced(b, w.nodes[0].svc, d.ID)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}
