package resource

import (
	"context"
	"flag"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// TestCPUWorkloadFixed pins the CPU workload: points are only comparable
// between machines (and runs) if the work is the same everywhere.
func TestCPUWorkloadFixed(t *testing.T) {
	var table [cpuTableSize]uint32
	for i := range table {
		table[i] = uint32(i) * 2654435761
	}
	const want uint64 = 0xfe209d5407d74c5e
	if got := cpuUnit(&table, 42); got != want {
		t.Fatalf("cpuUnit checksum = %#x, want %#x: the workload changed; bump BenchmarkVersion and update this test", got, want)
	}
}

func TestRunShort(t *testing.T) {
	dir := t.TempDir()
	stamp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	gpus := []GPU{
		{GPU: match.GPU{Index: 0, Vendor: "nvidia"}, Source: "nvidia-smi"},
		{GPU: match.GPU{Index: 1, Vendor: "amd"}, Source: "sysfs"},
	}
	s, err := Run(t.Context(), BenchConfig{
		DataDir: dir, Budget: 600 * time.Millisecond, MaxDisk: 8 << 20, GPUs: gpus,
		Command: fakeCommands(map[string]string{"nvidia-smi": "1590, 3\n"}),
		Now:     func() time.Time { return stamp },
	})
	if err != nil {
		t.Fatal(err)
	}
	figures := map[string]float64{
		"cpu_single": s.CPUSingle, "cpu_multi": s.CPUMulti, "memory": s.MemoryMBps,
		"disk_write": s.DiskWriteMBps, "disk_read": s.DiskReadMBps, "fsync_p50": s.FsyncP50, "fsync_p99": s.FsyncP99,
	}
	for name, v := range figures {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if s.Version != BenchmarkVersion || !s.Time.Equal(stamp) || s.Seconds <= 0 || s.Threads < 1 || s.DiskBytes == 0 {
		t.Errorf("Run = %+v, want version, injected time, duration, threads and disk bytes", s)
	}
	if s.FsyncP99 < s.FsyncP50 {
		t.Errorf("fsync p99 %v < p50 %v", s.FsyncP99, s.FsyncP50)
	}
	if len(s.GPUs) != 2 || !s.GPUs[0].OK || s.GPUs[0].MaxClockMHz != 1590 || s.GPUs[1].OK || s.GPUs[1].Error == "" {
		t.Errorf("GPU probes = %+v, want #0 answering at 1590 MHz and #1 without a tool", s.GPUs)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Run left files in the data directory: %v", entries)
	}
}

func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	if _, err := Run(ctx, BenchConfig{DataDir: dir, Budget: 100 * time.Millisecond}); err == nil {
		t.Error("Run with a cancelled context succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a cancelled Run left files: %v", entries)
	}
	if _, err := Run(t.Context(), BenchConfig{DataDir: "/nonexistent/dms", Budget: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "benchmark") {
		t.Errorf("Run in a missing directory = %v, want an error", err)
	}
	if _, err := Run(t.Context(), BenchConfig{}); err == nil {
		t.Error("Run without a data directory succeeded")
	}
}

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{0.5: 5, 0.99: 10, 0: 1, 1: 10} {
		if got := percentile(s, p); got != want {
			t.Errorf("percentile(1..10, %v) = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile(nil) != 0")
	}
}

// BenchmarkRun runs the whole machine benchmark with its default 10 s budget
// and reports its figures; run it with -benchtime 1x:
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 1x -count 5 ./internal/resource/
//
// The anchor is the budget itself: seconds/run must stay ≤ 10.
func BenchmarkRun(b *testing.B) {
	dir := b.TempDir()
	var s Scores
	for b.Loop() {
		var err error
		if s, err = Run(context.Background(), BenchConfig{DataDir: dir}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(s.Seconds, "seconds/run")
	b.ReportMetric(DefaultBudget.Seconds(), "budget-seconds")
	b.ReportMetric(s.CPUSingle, "cpu-single")
	b.ReportMetric(s.CPUMulti, "cpu-multi")
	b.ReportMetric(s.MemoryMBps, "mem-MB/s")
	b.ReportMetric(s.DiskWriteMBps, "write-MB/s")
	b.ReportMetric(s.DiskReadMBps, "read-MB/s")
	b.ReportMetric(s.FsyncP50, "fsync-p50-us")
}

var repeat = flag.Int("repeat", 0, "TestRepeatability: run the machine benchmark this many times (e.g. 5) with the default budget")

// TestRepeatability measures duration and run-to-run spread of the machine
// benchmark (docs/PERFORMANCE.md). It runs only when asked:
//
//	go test -run TestRepeatability -v ./internal/resource/ -args -repeat 5
func TestRepeatability(t *testing.T) {
	if *repeat < 2 {
		t.Skip("run with -args -repeat N (N ≥ 2); takes N × 10 s")
	}
	dir := t.TempDir()
	var runs []Scores
	for range *repeat {
		s, err := Run(t.Context(), BenchConfig{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, s)
	}
	t.Logf("%d runs, default budget %s, %d threads", len(runs), DefaultBudget, runs[0].Threads)
	t.Logf("%-16s %10s %10s %10s %10s %8s", "figure", "min", "median", "max", "mean", "cv%")
	row := func(name string, get func(Scores) float64) {
		var v []float64
		for _, s := range runs {
			v = append(v, get(s))
		}
		slices.Sort(v)
		mean, sd := meanSD(v)
		t.Logf("%-16s %10.1f %10.1f %10.1f %10.1f %8.1f", name, v[0], v[len(v)/2], v[len(v)-1], mean, 100*sd/mean)
	}
	row("seconds", func(s Scores) float64 { return s.Seconds })
	row("cpu_single", func(s Scores) float64 { return s.CPUSingle })
	row("cpu_multi", func(s Scores) float64 { return s.CPUMulti })
	row("memory_mbps", func(s Scores) float64 { return s.MemoryMBps })
	row("disk_write_mbps", func(s Scores) float64 { return s.DiskWriteMBps })
	row("disk_read_mbps", func(s Scores) float64 { return s.DiskReadMBps })
	row("fsync_p50_us", func(s Scores) float64 { return s.FsyncP50 })
	row("fsync_p99_us", func(s Scores) float64 { return s.FsyncP99 })
	for _, s := range runs {
		if len(s.Notes) > 0 {
			t.Logf("notes: %s", strings.Join(s.Notes, "; "))
		}
	}
}

func meanSD(v []float64) (mean, sd float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)-1))
}

func TestRobustRate(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		times []time.Duration
		want  float64
	}{
		{"none", nil, 0},
		{"few: mean", []time.Duration{ms, 3 * ms}, 500},
		{"preempted pieces count less", []time.Duration{ms, ms, ms, ms, ms, ms, 20 * ms, 30 * ms, 40 * ms, 50 * ms}, 1000},
		{"zero duration", []time.Duration{0}, 1e9},
	}
	for _, tc := range tests {
		if got := robustRate(tc.times); got != tc.want {
			t.Errorf("%s: robustRate(%v) = %v, want %v", tc.name, tc.times, got, tc.want)
		}
	}
}
