package e2e

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/match"
)

// newProviderHome is a home whose benchmark budget is 2 s, to keep the
// suite short (the default is 10 s).
func newProviderHome(t *testing.T, bin string) *e2etest.Home {
	h := e2etest.NewHome(t, bin)
	h.MustRun(t, "config", "set", "resources.benchmark_budget", "2s")
	return h
}

func resourcesOf(t *testing.T, h *e2etest.Home) api.ResourceSnapshot {
	t.Helper()
	var s api.ResourceSnapshot
	h.JSON(t, &s, "resources")
	return s
}

func checkScores(t *testing.T, b *api.Scores) {
	t.Helper()
	if b == nil || b.CPUSingle <= 0 || b.CPUMulti <= 0 || b.MemoryMBps <= 0 || b.DiskWriteMBps <= 0 || b.DiskReadMBps <= 0 || b.FsyncP50 <= 0 || b.Version < 1 || b.Time.IsZero() {
		t.Fatalf("benchmark = %+v, want every score > 0, a version and a time", b)
	}
}

// The acceptance, as a user runs it: onboard, see the onboarded
// values and the scores, restart and find them again, be refused 100TiB
// with the available amount, and malformed flags, in place changes,
// kill -9 and offboarding.
func TestOnboarding(t *testing.T) {
	bin := e2etest.Binary(t)
	h := newProviderHome(t, bin)
	n := h.Start(t)

	before := resourcesOf(t, h)
	if before.Onboarded != nil || !before.BenchmarkDue || before.Benchmark != nil || before.Capacity.CPU <= 0 || before.Machine.CPU.Threads <= 0 || before.Machine.Disk.Free == 0 {
		t.Fatalf("fresh node resources = %+v; want a detected machine, nothing onboarded, a benchmark due", before)
	}

	r := h.Run(t, "onboard", "--cpu", "1", "--ram", "512MiB", "--disk", "1GiB")
	if r.Code != 0 || !strings.Contains(r.Stderr, "benchmarking this machine (≤ 2 s)...") || !strings.Contains(r.Stdout, "cpu 1, ram 512MiB, disk 1GiB") {
		t.Fatalf("dms onboard: %s\nwant the progress line on stderr and the onboarded amounts", r)
	}
	s := resourcesOf(t, h)
	want := api.Resources{CPU: 1, RAM: 512 << 20, Disk: 1 << 30}
	if s.Onboarded == nil || !reflect.DeepEqual(s.Onboarded.Resources, want) || !reflect.DeepEqual(s.Free, want) || s.BenchmarkDue {
		t.Fatalf("dms resources -o json after onboarding: onboarded %+v, free %+v, due %v; want %+v", s.Onboarded, s.Free, s.BenchmarkDue, want)
	}
	checkScores(t, s.Benchmark)

	// Refused: more than the machine has, with the available amount.
	r = h.Run(t, "onboard", "--ram", "100TiB")
	avail := match.Bytes(s.Available.RAM).String()
	if r.Code != 1 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "exceeds available "+avail) {
		t.Fatalf("dms onboard --ram 100TiB: %s\nwant exit 1 and one line naming the available %s", r, avail)
	}

	// Malformed flags: usage errors, one line, nothing sent.
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"space in size", []string{"--ram", "4 GB"}, `--ram: "4 GB" is not a size`},
		{"negative cpu", []string{"--cpu", "-1"}, `--cpu: "-1" is not a CPU amount`},
		{"words", []string{"--cpu", "lots"}, `--cpu: "lots" is not a CPU amount`},
		{"exponent", []string{"--ram", "1e400"}, `--ram: "1e400" is not a size`},
		{"gpu", []string{"--gpu", "x:1GiB"}, `--gpu: "x:1GiB" is not a GPU`},
		{"no flags", nil, "nothing to onboard"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.Run(t, append([]string{"onboard"}, tt.args...)...)
			if r.Code != 2 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, tt.want) {
				t.Fatalf("dms onboard %v: %s\nwant exit 2 and one line containing %q", tt.args, r, tt.want)
			}
		})
	}
	// A GPU this machine does not have is the node's refusal.
	if r := h.Run(t, "onboard", "--gpu", "7"); r.Code != 1 || !strings.Contains(r.Stderr, "#7 not found") {
		t.Fatalf("dms onboard --gpu 7: %s; want a refusal naming the card", r)
	}
	if got := resourcesOf(t, h); !reflect.DeepEqual(got.Onboarded, s.Onboarded) {
		t.Fatalf("after refused requests onboarded = %+v, want unchanged %+v", got.Onboarded, s.Onboarded)
	}

	// A restart (SIGTERM) brings the same values and scores back.
	if err := n.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	n = h.Start(t)
	after := resourcesOf(t, h)
	if !reflect.DeepEqual(after.Onboarded, s.Onboarded) || !reflect.DeepEqual(after.Benchmark, s.Benchmark) || after.BenchmarkDue {
		t.Fatalf("after restart: onboarded %+v, benchmark %+v\nwant %+v, %+v", after.Onboarded, after.Benchmark, s.Onboarded, s.Benchmark)
	}

	// In place: only RAM changes, no second benchmark.
	r = h.Run(t, "onboard", "--ram", "256MiB")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("dms onboard --ram 256MiB: %s; want no benchmark", r)
	}
	got := resourcesOf(t, h)
	if g := got.Onboarded; g == nil || g.Resources.RAM != 256<<20 || g.Resources.CPU != 1 || g.Resources.Disk != 1<<30 || !g.Since.Equal(s.Onboarded.Since) || !g.Updated.After(s.Onboarded.Updated) || !reflect.DeepEqual(got.Benchmark, s.Benchmark) {
		t.Fatalf("after dms onboard --ram 256MiB: %+v", g)
	}

	// kill -9 right after a change the CLI saw succeed: it is there.
	h.MustRun(t, "onboard", "--disk", "2GiB")
	n.Kill()
	n = h.Start(t)
	if g := resourcesOf(t, h).Onboarded; g == nil || g.Resources.Disk != 2<<30 || g.Resources.RAM != 256<<20 {
		t.Fatalf("after kill -9: onboarded %+v, want disk 2GiB and ram 256MiB", g)
	}

	// dms benchmark runs in the node and stores a new run.
	r = h.Run(t, "benchmark", "--budget", "1s")
	if r.Code != 0 || !strings.Contains(r.Stdout, "stored in the running node") {
		t.Fatalf("dms benchmark: %s", r)
	}
	if b := resourcesOf(t, h).Benchmark; b == nil || !b.Time.After(s.Benchmark.Time) {
		t.Fatalf("after dms benchmark: %+v, want a newer run than %s", b, s.Benchmark.Time)
	}
	checkScores(t, resourcesOf(t, h).Benchmark)

	// Table form.
	out := h.MustRun(t, "resources")
	for _, w := range []string{"machine", "capacity", "reserve", "available", "onboarded", "allocated", "reserved", "free", "benchmark"} {
		if !strings.Contains(out, w) {
			t.Fatalf("dms resources lacks %q:\n%s", w, out)
		}
	}

	out = h.MustRun(t, "offboard")
	if !strings.Contains(out, "offboarded: cpu 1, ram 256MiB, disk 2GiB") {
		t.Fatalf("dms offboard = %q", out)
	}
	if g := resourcesOf(t, h); g.Onboarded != nil || g.Benchmark == nil {
		t.Fatalf("after offboard: onboarded %+v (want none), benchmark %+v (kept)", g.Onboarded, g.Benchmark)
	}
	if r := h.Run(t, "offboard"); r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "not onboarded") {
		t.Fatalf("second dms offboard: %s", r)
	}
}

// The owner onboards a provider from another machine, through the
// behaviors, once the provider trusts the owner for /dms/node/onboarding.
func TestOnboardingRemote(t *testing.T) {
	bin := e2etest.Binary(t)
	owner, provider := e2etest.NewHome(t, bin), newProviderHome(t, bin)
	owner.Start(t)
	np := provider.Start(t)
	idP := np.PeerID(t)
	owner.MustRun(t, "peers", "connect", np.Addr(t))

	r := owner.Run(t, "invoke", api.BehaviorOnboardStatus, "--to", idP)
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "denied:") {
		t.Fatalf("status before the anchor: %s; want exit 1 and denied:", r)
	}
	provider.MustRun(t, "cap", "anchor", "--root", owner.DID(t, "user"), "--cmd", "/dms/node/onboarding")

	var snap api.ResourceSnapshot
	out := owner.MustRun(t, "invoke", api.BehaviorOnboardStatus, "--to", idP)
	if err := json.Unmarshal([]byte(out), &snap); err != nil || snap.Onboarded != nil || snap.Capacity.CPU <= 0 {
		t.Fatalf("status = %s (%v); want the provider's machine, nothing onboarded", out, err)
	}

	var res api.OnboardResult
	out = owner.MustRun(t, "invoke", api.BehaviorOnboard, "--to", idP, "--data", `{"cpu": 1, "ram": "256MiB", "disk": "512MiB"}`)
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Onboarded.Resources.RAM != 256<<20 || !res.Benchmarked {
		t.Fatalf("remote onboard = %s (%v); want onboarded and benchmarked", out, err)
	}
	checkScores(t, res.Benchmark)
	if g := resourcesOf(t, provider).Onboarded; g == nil || g.Resources.CPU != 1 || g.Resources.Disk != 512<<20 {
		t.Fatalf("provider's own view after the remote onboard: %+v", g)
	}

	r = owner.Run(t, "invoke", api.BehaviorOnboard, "--to", idP, "--data", `{"ram": "100TiB"}`)
	if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "exceeds available") {
		t.Fatalf("remote onboard 100TiB: %s", r)
	}
	r = owner.Run(t, "invoke", api.BehaviorOnboard, "--to", idP, "--data", `{"ram": "4 GB"}`)
	if r.Code != 1 || !strings.Contains(r.Stderr, `"4 GB" is not a size`) {
		t.Fatalf("remote onboard with a malformed size: %s", r)
	}
	// The anchor covers onboarding, not /dms/node/resources.
	if r := owner.Run(t, "invoke", api.BehaviorResourcesFree, "--to", idP); r.Code != 1 || !strings.HasPrefix(r.Stderr, "denied:") {
		t.Fatalf("resources/free outside the anchor: %s", r)
	}
	provider.MustRun(t, "cap", "anchor", "--root", owner.DID(t, "user"), "--cmd", "/dms/node/resources")
	var free api.Resources
	out = owner.MustRun(t, "invoke", api.BehaviorResourcesFree, "--to", idP)
	if err := json.Unmarshal([]byte(out), &free); err != nil || free.CPU != 1 || free.RAM != 256<<20 {
		t.Fatalf("resources/free = %s (%v)", out, err)
	}

	owner.MustRun(t, "invoke", api.BehaviorOffboard, "--to", idP)
	if g := resourcesOf(t, provider).Onboarded; g != nil {
		t.Fatalf("after remote offboard: %+v", g)
	}
}
