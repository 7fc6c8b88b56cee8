package resource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// BenchmarkVersion changes whenever a workload or a formula changes, so that
// scores of different versions are never compared.
const BenchmarkVersion = 1

// DefaultBudget bounds a whole benchmark run.
const DefaultBudget = 10 * time.Second

// Scores are the results of one benchmark run. The embedded Performance holds
// the figures the scoring formula uses (see match.Score).
type Scores struct {
	match.Performance
	Version  int       `json:"version"` // BenchmarkVersion of the run
	Time     time.Time `json:"time"`    // when the run started
	Seconds  float64   `json:"seconds"` // how long it took
	Threads  int       `json:"threads"` // workers of the multi-core CPU run
	FsyncP99 float64   `json:"fsync_p99_us"`
	// DiskBytes is how much was written and read back to measure the disk.
	DiskBytes match.Bytes `json:"disk_bytes"`
	GPUs      []GPUProbe  `json:"gpus,omitempty"`
	Notes     []string    `json:"notes,omitempty"` // caveats of this run
}

// GPUProbe is what the GPU probe found for one card: whether its management
// tool answered about it, how fast, and its maximum clock when reported.
type GPUProbe struct {
	Index       int     `json:"index"`
	OK          bool    `json:"ok"`
	Error       string  `json:"error,omitempty"`
	LatencyMS   float64 `json:"latency_ms"`
	MaxClockMHz float64 `json:"max_clock_mhz,omitempty"`
	UsePercent  float64 `json:"use_percent,omitempty"`
}

// BenchConfig says where and how long to run. Only DataDir is required.
type BenchConfig struct {
	// DataDir is where the disk is measured; the run writes its files in
	// a temporary directory there and removes it.
	DataDir string
	// Budget bounds the whole run; default DefaultBudget. Each part gets a
	// fixed share of it (see Run).
	Budget time.Duration
	// Threads is the number of workers of the multi-core run; default
	// runtime.GOMAXPROCS(0).
	Threads int
	// MaxDisk bounds the size of the sequential disk test file; default
	// 256MiB.
	MaxDisk match.Bytes
	// GPUs are the cards to probe (Machine.GPUs); none: no probe.
	GPUs []GPU
	// Command runs nvidia-smi or rocm-smi for the GPU probe; default
	// os/exec.
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Now gives the time stamp of the run; default time.Now. Durations
	// are always measured with the monotonic clock.
	Now    func() time.Time
	Logger *slog.Logger
}

// Shares of the budget, in the order the parts run.
var benchPlan = []struct {
	name  string
	share float64
}{
	{"warmup", 0.03},
	{"cpu-single", 0.15},
	{"cpu-multi", 0.15},
	{"memory", 0.12},
	{"disk-write", 0.20},
	{"disk-read", 0.10},
	{"fsync", 0.10},
	{"gpu", 0.10},
}

// Run measures this machine within cfg.Budget (default 10 s): CPU single-
// and multi-core points from a fixed integer workload and memory copy
// bandwidth (both from fast-quartile times, see robustRate), sequential disk write (synced) and read (page cache dropped) and
// fsync latency in the data directory, and a probe of each GPU. Each part
// ends at a fixed fraction of the budget, so an overrun of one part is taken
// from the next and the run ends close to the budget. It returns ctx.Err()
// when cancelled, and removes its files in every case.
func Run(ctx context.Context, cfg BenchConfig) (Scores, error) {
	if cfg.DataDir == "" {
		return Scores{}, errors.New("benchmark: no data directory")
	}
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.Threads <= 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxDisk == 0 {
		cfg.MaxDisk = 256 << 20
	}
	if cfg.Command == nil {
		cfg.Command = runCommand
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := Scores{Version: BenchmarkVersion, Time: cfg.Now(), Threads: cfg.Threads}
	start := time.Now()
	// deadline of part i: start + budget × (shares of parts 0..i).
	ends := make([]time.Time, len(benchPlan))
	cum := 0.0
	for i, p := range benchPlan {
		cum += p.share
		ends[i] = start.Add(time.Duration(cum * float64(cfg.Budget)))
	}
	end := func(name string) time.Time {
		for i, p := range benchPlan {
			if p.name == name {
				return ends[i]
			}
		}
		panic("benchmark: unknown part " + name) // a programming error caught by every test
	}

	cpuPoints(ctx, 1, end("warmup"))
	s.CPUSingle = cpuPoints(ctx, 1, end("cpu-single"))
	s.CPUMulti = cpuPoints(ctx, cfg.Threads, end("cpu-multi"))
	s.MemoryMBps = memoryBandwidth(ctx, end("memory"))
	if err := ctx.Err(); err != nil {
		return Scores{}, err
	}

	dir, err := os.MkdirTemp(cfg.DataDir, ".benchmark-")
	if err != nil {
		return Scores{}, fmt.Errorf("benchmark: %w", err)
	}
	defer os.RemoveAll(dir)
	d, err := diskSpeed(ctx, dir, uint64(cfg.MaxDisk), end("disk-write"), end("disk-read"))
	if err != nil {
		return Scores{}, fmt.Errorf("benchmark disk in %s: %w", cfg.DataDir, err)
	}
	s.DiskWriteMBps, s.DiskReadMBps, s.DiskBytes = d.writeMBps, d.readMBps, match.Bytes(d.bytes)
	s.Notes = append(s.Notes, d.notes...)
	p50, p99, err := fsyncLatency(ctx, dir, end("fsync"))
	if err != nil {
		return Scores{}, fmt.Errorf("benchmark fsync in %s: %w", cfg.DataDir, err)
	}
	s.FsyncP50, s.FsyncP99 = p50, p99
	if len(cfg.GPUs) > 0 {
		gctx, cancel := context.WithDeadline(ctx, end("gpu"))
		s.GPUs = probeGPUs(gctx, cfg.Command, cfg.GPUs)
		cancel()
	}
	if err := ctx.Err(); err != nil {
		return Scores{}, err
	}
	s.Seconds = time.Since(start).Seconds()
	cfg.Logger.Info("benchmark done", "seconds", s.Seconds, "cpu_single", s.CPUSingle, "cpu_multi", s.CPUMulti,
		"memory_mbps", s.MemoryMBps, "disk_write_mbps", s.DiskWriteMBps, "disk_read_mbps", s.DiskReadMBps, "fsync_p50_us", s.FsyncP50)
	return s, nil
}

// The CPU workload: one unit is cpuUnitIters rounds of a xorshift generator
// driving multiplies, rotations and data-dependent loads and stores in a
// 16 KiB table (L1-resident). It is the same on every machine, so units per
// second compare machines; one unit takes about 1 ms on the reference
// machine (an AMD EPYC core at 2.6 GHz), which makes points ≈ units per
// second ≈ 1000 there.
const (
	cpuUnitIters = 445_000
	cpuTableSize = 4096
)

// cpuUnit runs one unit of work and returns its checksum.
func cpuUnit(table *[cpuTableSize]uint32, seed uint64) uint64 {
	x := seed | 1
	var acc uint64
	for range cpuUnitIters {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		j := x & (cpuTableSize - 1)
		v := table[j]
		table[j] = uint32(x>>32) ^ v
		acc += uint64(v) * (x | 1)
		acc = bits.RotateLeft64(acc, 5)
	}
	return acc
}

// cpuSink keeps the checksums alive so that the compiler cannot drop the work.
var cpuSink struct {
	sync.Mutex
	sum uint64
}

// cpuPoints runs the workload on n workers until deadline and returns the
// units per second of all workers together. Each worker's rate is one unit
// over its fast-quartile unit time (robustRate), so units during which
// another process had the CPU count less; slowdowns the workers cause each
// other (shared cores, caches) still show.
func cpuPoints(ctx context.Context, n int, deadline time.Time) float64 {
	var wg sync.WaitGroup
	rates := make([]float64, n)
	for w := range n {
		wg.Go(func() {
			var table [cpuTableSize]uint32
			for i := range table {
				table[i] = uint32(i) * 2654435761
			}
			var sum uint64
			var times []time.Duration
			for u := 0; ; u++ {
				t := time.Now()
				sum += cpuUnit(&table, uint64(w)<<32|uint64(u))
				now := time.Now()
				times = append(times, now.Sub(t))
				if ctx.Err() != nil || !now.Before(deadline) {
					break
				}
			}
			rates[w] = robustRate(times)
			cpuSink.Lock()
			cpuSink.sum += sum
			cpuSink.Unlock()
		})
	}
	wg.Wait()
	total := 0.0
	for _, r := range rates {
		total += r
	}
	return total
}

// robustRate turns the durations of equal pieces of work into pieces per
// second: one over the 25th percentile duration when there are at least 8
// samples (so that pieces stretched by preemption count less), else over
// the mean.
func robustRate(times []time.Duration) float64 {
	if len(times) == 0 {
		return 0
	}
	var d time.Duration
	if len(times) >= 8 {
		s := slices.Clone(times)
		slices.Sort(s)
		d = s[len(s)/4]
	} else {
		for _, t := range times {
			d += t
		}
		d /= time.Duration(len(times))
	}
	if d <= 0 {
		d = time.Nanosecond
	}
	return float64(time.Second) / float64(d)
}

// memoryBandwidth copies a 64 MiB buffer (larger than any cache) into
// another until deadline and returns MB/s counting bytes read plus bytes
// written, as STREAM's copy does, at the fast-quartile copy time
// (robustRate).
func memoryBandwidth(ctx context.Context, deadline time.Time) float64 {
	const size = 64 << 20
	src, dst := make([]byte, size), make([]byte, size)
	for i := 0; i < size; i += 4096 { // fault the pages in before timing
		src[i], dst[i] = byte(i), 1
	}
	var times []time.Duration
	for {
		t := time.Now()
		copy(dst, src)
		now := time.Now()
		times = append(times, now.Sub(t))
		if ctx.Err() != nil || !now.Before(deadline) {
			break
		}
	}
	return 2 * size * robustRate(times) / 1e6
}

type diskResult struct {
	writeMBps, readMBps float64
	bytes               uint64
	notes               []string
}

// diskSpeed writes a file of 1 MiB blocks (incompressible) until writeEnd or
// maxBytes, syncing every 16 MiB and at the end (the sync time counts); drops
// it from the page cache and reads it back until readEnd.
func diskSpeed(ctx context.Context, dir string, maxBytes uint64, writeEnd, readEnd time.Time) (diskResult, error) {
	const block, syncEvery = 1 << 20, 16 << 20
	var res diskResult
	buf := make([]byte, block)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i+8 <= len(buf); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for k := range 8 {
			buf[i+k] = byte(x >> (8 * k))
		}
	}
	path := dir + "/seq"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return res, err
	}
	defer f.Close()
	start := time.Now()
	var written uint64
	for written < maxBytes {
		buf[0]++ // every block differs
		if _, err := f.Write(buf); err != nil {
			return res, err
		}
		written += block
		if written%syncEvery == 0 {
			if err := f.Sync(); err != nil {
				return res, err
			}
		}
		if ctx.Err() != nil || !time.Now().Before(writeEnd) {
			break
		}
	}
	if err := f.Sync(); err != nil {
		return res, err
	}
	res.writeMBps = float64(written) / time.Since(start).Seconds() / 1e6
	res.bytes = written
	if err := ctx.Err(); err != nil {
		return res, err
	}

	if err := dropCache(f); err != nil {
		res.notes = append(res.notes, "disk read may come from the page cache: "+err.Error())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	start = time.Now()
	var read uint64
	for {
		n, err := f.Read(buf)
		read += uint64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		if ctx.Err() != nil || !time.Now().Before(readEnd) {
			break
		}
	}
	res.readMBps = float64(read) / time.Since(start).Seconds() / 1e6
	if written < 64<<20 {
		res.notes = append(res.notes, "disk: only "+match.Bytes(written).String()+" written within the budget; figures are rough")
	}
	return res, ctx.Err()
}

// fsyncLatency rewrites one 4 KiB block and fsyncs it, until deadline or
// 2,000 samples (at least 5), and returns the p50 and p99 latency in µs.
func fsyncLatency(ctx context.Context, dir string, deadline time.Time) (p50, p99 float64, err error) {
	f, err := os.OpenFile(dir+"/fsync", os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var samples []float64
	for i := 0; i < 2000; i++ {
		buf[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		samples = append(samples, float64(time.Since(t).Nanoseconds())/1e3)
		if ctx.Err() != nil || (len(samples) >= 5 && !time.Now().Before(deadline)) {
			break
		}
	}
	slices.Sort(samples)
	return percentile(samples, 0.50), percentile(samples, 0.99), ctx.Err()
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// probeGPUs asks each card's management tool for its clocks and use: a
// card that answers is usable by its driver. A real compute test needs
// CUDA or ROCm libraries, which dms does not link.
func probeGPUs(ctx context.Context, command func(context.Context, string, ...string) ([]byte, error), gpus []GPU) []GPUProbe {
	var out []GPUProbe
	for _, g := range gpus {
		p := GPUProbe{Index: g.Index}
		t := time.Now()
		var data []byte
		var err error
		switch g.Source {
		case "nvidia-smi":
			data, err = command(ctx, "nvidia-smi", "--id="+strconv.Itoa(g.VendorIndex),
				"--query-gpu=clocks.max.sm,utilization.gpu", "--format=csv,noheader,nounits")
			if err == nil {
				f := strings.Split(strings.TrimSpace(string(data)), ",")
				if len(f) >= 2 {
					p.MaxClockMHz, _ = strconv.ParseFloat(strings.TrimSpace(f[0]), 64)
					p.UsePercent, _ = strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
				}
			}
		case "rocm-smi":
			_, err = command(ctx, "rocm-smi", "-d", strconv.Itoa(g.VendorIndex), "--showuse", "--json")
		default:
			err = errors.New("no management tool to probe it (install nvidia-smi or rocm-smi)")
		}
		p.LatencyMS = float64(time.Since(t).Microseconds()) / 1000
		if err != nil {
			p.Error = err.Error()
		} else {
			p.OK = true
		}
		out = append(out, p)
	}
	return out
}
