package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
)

// fakeNode is the resource side of a node, in memory: onboarding checks
// against 4 cores and 8GiB; the benchmark "runs" when asked.
type fakeNode struct {
	mu        sync.Mutex
	onboarded *api.Onboarding
	scores    *api.Scores
	requests  []api.OnboardRequest
	benches   int
}

func (f *fakeNode) Snapshot(context.Context) (api.ResourceSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := api.ResourceSnapshot{
		Machine:           api.Machine{CPU: api.MachineCPU{Vendor: "GenuineIntel", Model: "Test CPU", Cores: 2, Threads: 4}, Executors: []string{"wasm"}},
		Capacity:          api.Resources{CPU: 4, RAM: 8 << 30, Disk: 100 << 30},
		Available:         api.Resources{CPU: 3.5, RAM: 7 << 30, Disk: 95 << 30},
		Onboarded:         f.onboarded,
		Benchmark:         f.scores,
		BenchmarkDue:      f.scores == nil,
		BenchmarkBudgetMS: 2500,
	}
	if f.onboarded != nil {
		s.Free = f.onboarded.Resources
	}
	return s, nil
}

func (f *fakeNode) Onboard(_ context.Context, req api.OnboardRequest) (api.OnboardResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if req.RAM != nil && *req.RAM == "109951162777600" {
		return api.OnboardResult{}, &apiserver.Refused{Err: errors.New("onboard: ram 100TiB exceeds available 7GiB (machine 8GiB minus reserve 1GiB)")}
	}
	on := api.Onboarding{}
	if f.onboarded != nil {
		on = *f.onboarded
	}
	if req.CPU != nil {
		on.Resources.CPU = 1
	}
	if req.RAM != nil {
		on.Resources.RAM = 512 << 20
	}
	f.onboarded = &on
	return api.OnboardResult{Onboarded: on, BenchmarkDue: f.scores == nil, Benchmark: f.scores}, nil
}

func (f *fakeNode) Offboard(context.Context) (api.OffboardResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onboarded == nil {
		return api.OffboardResult{}, &apiserver.Refused{Err: errors.New("offboard: not onboarded")}
	}
	prev := *f.onboarded
	f.onboarded = nil
	return api.OffboardResult{Offboarded: prev}, nil
}

func (f *fakeNode) Benchmark(_ context.Context, req api.BenchmarkRequest) (api.BenchmarkResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.benches++
	f.scores = &api.Scores{CPUSingle: 1000, CPUMulti: 3900, MemoryMBps: 9000, DiskWriteMBps: 500, DiskReadMBps: 900, FsyncP50: 300, Version: 1, Time: time.Now(), Seconds: 2.4}
	return api.BenchmarkResult{Scores: *f.scores, DataDir: "/node/data"}, nil
}

// serveFake runs a real API server with f behind it and writes a home that
// points at it.
func serveFake(t *testing.T, f *fakeNode) string {
	t.Helper()
	return serveAPI(t, apiserver.Config{Resources: f})
}

// serveAPI runs a real API server on a loopback port with cfg (its address
// and token set here) and writes a home that points at it.
func serveAPI(t *testing.T, cfg apiserver.Config) string {
	t.Helper()
	const token = "0123456789abcdef0123456789abcdef"
	cfg.Addr, cfg.Token = "127.0.0.1:0", token
	s, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, apiTokenFile), []byte(token+"\n"), 0o600)
	os.WriteFile(filepath.Join(home, apiAddrFile), []byte(addr.String()+"\n"), 0o600)
	return home
}

func TestOnboardFlags(t *testing.T) {
	home := t.TempDir() // no node: usage errors come first
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"nothing", []string{"onboard"}, "nothing to onboard"},
		{"space in size", []string{"onboard", "--ram", "4 GB"}, `--ram: "4 GB" is not a size`},
		{"negative cpu", []string{"onboard", "--cpu", "-1"}, `--cpu: "-1" is not a CPU amount`},
		{"words", []string{"onboard", "--cpu", "lots"}, `--cpu: "lots" is not a CPU amount`},
		{"exponent", []string{"onboard", "--ram", "1e400"}, `--ram: "1e400" is not a size`},
		{"disk unit", []string{"onboard", "--disk", "10 parsecs"}, "--disk:"},
		{"gpu", []string{"onboard", "--gpu", "first"}, `--gpu: "first" is not a GPU`},
		{"gpu none with others", []string{"onboard", "--gpu", "none", "--gpu", "0"}, "give it alone"},
		{"price", []string{"onboard", "--price", "cheap"}, "--price:"},
		{"argument", []string{"onboard", "4GiB"}, ""},
		{"offboard argument", []string{"offboard", "now"}, ""},
		{"resources argument", []string{"resources", "all"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"--home", home}, tt.args...)...)
			if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.wantErr) || stdout != "" {
				t.Fatalf("dms %v = exit %d, stderr %q; want exit 2 and one line containing %q", tt.args, code, stderr, tt.wantErr)
			}
		})
	}
}

func TestOnboardCommands(t *testing.T) {
	f := &fakeNode{}
	home := serveFake(t, f)
	dms := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append([]string{"--home", home}, args...)...)
	}

	code, stdout, stderr := dms("resources")
	if code != 0 || !strings.Contains(stdout, "Test CPU") || !strings.Contains(stdout, "onboarded  nothing") || !strings.Contains(stdout, "none yet") {
		t.Fatalf("dms resources before onboarding = %d, %q, %q", code, stdout, stderr)
	}

	// First onboarding: accepted, then the benchmark with its progress line.
	code, stdout, stderr = dms("onboard", "--cpu", "1", "--ram", "512MiB", "--gpu", "0:8GiB", "--price", "0.5")
	if code != 0 || stderr != "benchmarking this machine (≤ 2.5 s)...\n" || !strings.Contains(stdout, "cpu 1, ram 512MiB") || !strings.Contains(stdout, "cpu 1000 single") {
		t.Fatalf("dms onboard = %d, %q, %q; want the progress line on stderr and the scores", code, stdout, stderr)
	}
	got := f.requests[0]
	if !got.NoBenchmark || *got.CPU != "1" || *got.RAM != "536870912" || (*got.GPUs)[0] != "0:8589934592" || *got.Price != "cpu=0.5" || got.Disk != nil {
		t.Fatalf("request = %+v, want the flags given, exact, and the benchmark left to the CLI", got)
	}
	if f.benches != 1 {
		t.Fatalf("benchmarks = %d, want 1", f.benches)
	}

	// Again: no benchmark, no progress; JSON output.
	code, stdout, stderr = dms("-o", "json", "onboard", "--ram", "512MiB")
	var res api.OnboardResult
	if code != 0 || stderr != "" || json.Unmarshal([]byte(stdout), &res) != nil || res.Onboarded.Resources.RAM != 512<<20 || res.Benchmark == nil || f.benches != 1 {
		t.Fatalf("second dms onboard = %d, %q, %q; want no second benchmark", code, stdout, stderr)
	}
	if r := f.requests[1]; r.CPU != nil || r.RAM == nil {
		t.Fatalf("second request = %+v, want only --ram", r)
	}
	code, _, stderr = dms("onboard", "--gpu", "none")
	if code != 0 || f.requests[2].GPUs == nil || len(*f.requests[2].GPUs) != 0 {
		t.Fatalf("dms onboard --gpu none = %d, %q, request %+v; want an empty GPU list", code, stderr, f.requests[2])
	}

	code, stdout, stderr = dms("onboard", "--ram", "100TiB")
	if code != exitFailure || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "refused: onboard: ram 100TiB exceeds available 7GiB") {
		t.Fatalf("dms onboard --ram 100TiB = %d, %q, %q; want exit 1 and one line with the available amount", code, stdout, stderr)
	}

	code, stdout, _ = dms("resources")
	for _, want := range []string{"capacity", "available", "onboarded", "free", "benchmark  v1", "cpu 1000 single"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("dms resources = %d, %q; want %q in it", code, stdout, want)
		}
	}
	var snap api.ResourceSnapshot
	code, stdout, _ = dms("-o", "json", "resources")
	if code != 0 || json.Unmarshal([]byte(stdout), &snap) != nil || snap.Onboarded == nil || snap.Benchmark.CPUSingle != 1000 {
		t.Fatalf("dms resources -o json = %d, %q", code, stdout)
	}

	// dms benchmark goes to the running node.
	code, stdout, _ = dms("benchmark")
	if code != 0 || !strings.Contains(stdout, "stored in the running node") || f.benches != 2 {
		t.Fatalf("dms benchmark with a node = %d, %q; want it run by the node", code, stdout)
	}
	if code, _, stderr := dms("benchmark", "--budget", "300ms"); code != exitUsage || !strings.Contains(stderr, "--local") {
		t.Fatalf("dms benchmark --budget 300ms with a node = %d, %q; want a usage error pointing at --local", code, stderr)
	}

	code, stdout, _ = dms("offboard")
	if code != 0 || !strings.Contains(stdout, "offboarded: cpu 1, ram 512MiB") {
		t.Fatalf("dms offboard = %d, %q", code, stdout)
	}
	code, _, stderr = dms("offboard")
	if code != exitFailure || stderr != "refused: offboard: not onboarded\n" {
		t.Fatalf("second dms offboard = %d, %q; want a one-line refusal", code, stderr)
	}
}

func TestOnboardWithoutNode(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{{"onboard", "--cpu", "1"}, {"offboard"}, {"resources"}} {
		code, _, stderr := run(t, append([]string{"--home", home}, args...)...)
		if code != exitFailure || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no running node") {
			t.Errorf("dms %v without a node = %d, %q; want one line saying no node runs", args, code, stderr)
		}
	}
}
