package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// clock is a settable clock for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const gib = match.Bytes(1 << 30)

// testMachine has 4 threads, 8GiB of RAM, 100GiB free disk and two NVIDIA
// cards.
func testMachine() Machine {
	return Machine{
		CPU:  CPU{Vendor: "AuthenticAMD", Model: "test", Cores: 2, Threads: 4, Arch: "amd64"},
		RAM:  RAM{Total: 8 * gib},
		Disk: Disk{Path: "/data", Total: 200 * gib, Free: 100 * gib},
		GPUs: []GPU{
			{GPU: match.GPU{Index: 0, Vendor: "nvidia", Model: "A4000", VRAM: 16 * gib}, Source: "nvidia-smi"},
			{GPU: match.GPU{Index: 1, Vendor: "nvidia", Model: "T1000", VRAM: 8 * gib}, Source: "nvidia-smi", VendorIndex: 1},
		},
		Executors: []string{"docker", "wasm"},
		Location:  match.Location{Continent: "EU", Country: "DE"},
	}
}

func newTestLedger(t *testing.T, c *clock, p Persister) *Ledger {
	t.Helper()
	m, err := NewLedger(LedgerConfig{Machine: testMachine(), Reserve: DefaultReserve, Persister: p, Now: c.Now})
	if err != nil {
		t.Fatalf("NewLedger = %v", err)
	}
	return m
}

func ptr[T any](v T) *T { return &v }

func onboardAll(t *testing.T, m *Ledger) {
	t.Helper()
	_, err := m.Onboard(OnboardRequest{CPU: ptr(match.MilliCPU(2000)), RAM: ptr(4 * gib), Disk: ptr(10 * gib),
		GPUs: &[]match.GPU{{Index: 0}, {Index: 1}}, Price: &match.Price{CPU: 100_000}})
	if err != nil {
		t.Fatalf("Onboard = %v", err)
	}
}

func TestOnboard(t *testing.T) {
	tests := []struct {
		name string
		req  OnboardRequest
		want match.Resources // when it succeeds
		err  string          // the exact message when it fails
		is   error
	}{
		{name: "the acceptance example", req: OnboardRequest{CPU: ptr(match.MilliCPU(1000)), RAM: ptr(512 * gib / 1024), Disk: ptr(gib)},
			want: match.Resources{CPU: 1000, RAM: 512 << 20, Disk: gib}},
		{name: "exactly what is available", req: OnboardRequest{CPU: ptr(match.MilliCPU(3500)), RAM: ptr(7 * gib), Disk: ptr(95 * gib)},
			want: match.Resources{CPU: 3500, RAM: 7 * gib, Disk: 95 * gib}},
		{name: "too much ram", req: OnboardRequest{RAM: ptr(100 * 1024 * gib)},
			err: "onboard: ram 100TiB exceeds available 7GiB (machine 8GiB minus reserve 1GiB)"},
		{name: "one millicore too many", req: OnboardRequest{CPU: ptr(match.MilliCPU(3501))},
			err: "onboard: cpu 3.501 exceeds available 3.5 (machine 4 minus reserve 0.5)"},
		{name: "every dimension at once", req: OnboardRequest{CPU: ptr(match.MilliCPU(8000)), RAM: ptr(8 * gib), Disk: ptr(200 * gib)},
			err: "onboard: cpu 8 exceeds available 3.5 (machine 4 minus reserve 0.5); ram 8GiB exceeds available 7GiB (machine 8GiB minus reserve 1GiB); disk 200GiB exceeds available 95GiB (machine 100GiB minus reserve 5GiB)"},
		{name: "whole gpu", req: OnboardRequest{GPUs: &[]match.GPU{{Index: 1}}},
			want: match.Resources{GPUs: []match.GPU{{Index: 1, Vendor: "nvidia", Model: "T1000", VRAM: 8 * gib}}}},
		{name: "part of a gpu's vram", req: OnboardRequest{GPUs: &[]match.GPU{{Index: 0, VRAM: 10 * gib}}},
			want: match.Resources{GPUs: []match.GPU{{Index: 0, Vendor: "nvidia", Model: "A4000", VRAM: 10 * gib}}}},
		{name: "gpu not present", req: OnboardRequest{GPUs: &[]match.GPU{{Index: 7}}},
			err: "onboard: gpu #7 not found (machine has #0 A4000 16GiB, #1 T1000 8GiB)"},
		{name: "gpu vram too large", req: OnboardRequest{GPUs: &[]match.GPU{{Index: 1, VRAM: 9 * gib}}},
			err: "onboard: gpu #1 VRAM 9GiB exceeds its 8GiB"},
		{name: "gpu twice", req: OnboardRequest{GPUs: &[]match.GPU{{Index: 1}, {Index: 1}}},
			err: "onboard: gpu #1 listed twice"},
		{name: "nothing", req: OnboardRequest{}, is: ErrInvalid},
		{name: "all zero", req: OnboardRequest{CPU: ptr(match.MilliCPU(0))}, is: ErrInvalid},
		{name: "negative price", req: OnboardRequest{CPU: ptr(match.MilliCPU(1000)), Price: &match.Price{CPU: -1}}, is: match.ErrMoney},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestLedger(t, newClock(), nil)
			got, err := m.Onboard(tc.req)
			switch {
			case tc.err != "":
				var oe *OnboardError
				if err == nil || err.Error() != tc.err || !errors.As(err, &oe) {
					t.Fatalf("Onboard = %v, want %q", err, tc.err)
				}
			case tc.is != nil:
				if !errors.Is(err, tc.is) {
					t.Fatalf("Onboard = %v, want %v", err, tc.is)
				}
			default:
				if err != nil || !got.Resources.Equal(tc.want) {
					t.Fatalf("Onboard = %v, %v, want %v", got.Resources, err, tc.want)
				}
				if free := m.Free(); !free.Equal(tc.want) {
					t.Fatalf("Free() = %v after onboarding, want %v", free, tc.want)
				}
				return
			}
			if _, ok := m.Onboarded(); ok {
				t.Fatal("a refused Onboard left the machine onboarded")
			}
		})
	}
}

func TestReonboardInPlace(t *testing.T) {
	c := newClock()
	m := newTestLedger(t, c, nil)
	onboardAll(t, m)
	first, _ := m.Onboarded()
	if _, err := m.Allocate("a1", match.Resources{CPU: 1000, RAM: 2 * gib, GPUs: []match.GPU{{VRAM: 12 * gib}}}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	// Only the RAM changes; the rest stays.
	got, err := m.Onboard(OnboardRequest{RAM: ptr(3 * gib)})
	if err != nil {
		t.Fatal(err)
	}
	want := first.Resources
	want.RAM = 3 * gib
	if !got.Resources.Equal(want) || got.Price != first.Price || !got.Since.Equal(first.Since) || !got.Updated.After(first.Updated) {
		t.Fatalf("re-onboard = %+v, want %v, same price and since, later updated", got, want)
	}
	if free := m.Free(); free.RAM != gib || free.CPU != 1000 {
		t.Fatalf("Free() = %v, want 1GiB RAM and 1 core", free)
	}

	refusals := []struct {
		name string
		req  OnboardRequest
		err  string
	}{
		{"cpu below allocated", OnboardRequest{CPU: ptr(match.MilliCPU(500))}, "onboard: cpu 0.5 is below the 1 allocated or reserved"},
		{"ram below allocated", OnboardRequest{RAM: ptr(gib)}, "onboard: ram 1GiB is below the 2GiB allocated or reserved"},
		{"allocated gpu removed", OnboardRequest{GPUs: &[]match.GPU{{Index: 1}}}, "onboard: gpu #0 is allocated or reserved and must stay onboarded"},
	}
	for _, r := range refusals {
		if _, err := m.Onboard(r.req); err == nil || err.Error() != r.err {
			t.Errorf("%s: Onboard = %v, want %q", r.name, err, r.err)
		}
	}
	// Down to exactly what is allocated is fine (an exact fit).
	if _, err := m.Onboard(OnboardRequest{CPU: ptr(match.MilliCPU(1000)), RAM: ptr(2 * gib), GPUs: &[]match.GPU{{Index: 0}}}); err != nil {
		t.Fatalf("Onboard down to the allocation = %v", err)
	}
	if free := m.Free(); free.CPU != 0 || free.RAM != 0 || len(free.GPUs) != 0 {
		t.Fatalf("Free() = %v, want no CPU, RAM or GPU left", free)
	}
}

func TestOffboard(t *testing.T) {
	c := newClock()
	m := newTestLedger(t, c, nil)
	if err := m.Offboard(); !errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("Offboard before onboarding = %v, want ErrNotOnboarded", err)
	}
	onboardAll(t, m)
	if _, err := m.Allocate("job-1", match.Resources{CPU: 500}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve("bid-1", match.Resources{CPU: 500}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Offboard(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "job-1") {
		t.Fatalf("Offboard with an allocation = %v, want ErrBusy naming job-1", err)
	}
	if err := m.Release("job-1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Offboard(); err != nil {
		t.Fatalf("Offboard = %v", err)
	}
	if _, err := m.Commit("bid-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Commit after offboard = %v, want ErrNotFound (reservations dropped)", err)
	}
	if f := m.Free(); !f.IsZero() {
		t.Fatalf("Free() after offboard = %v, want zero", f)
	}
	if _, err := m.Reserve("bid-2", match.Resources{CPU: 1}, time.Minute); !errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("Reserve after offboard = %v, want ErrNotOnboarded", err)
	}
}

func TestReservations(t *testing.T) {
	c := newClock()
	m := newTestLedger(t, c, nil)
	onboardAll(t, m)
	start := m.Free()

	r, err := m.Reserve("bid-1", match.Resources{CPU: 1500, RAM: gib, GPUs: []match.GPU{{VRAM: 8 * gib}}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Resources.GPUs) != 1 || r.Resources.GPUs[0].Index != 1 || !r.Expires.Equal(c.Now().Add(10*time.Second)) {
		t.Fatalf("Reserve = %+v, want the 8GiB card (#1), expiring in 10s", r)
	}
	if f := m.Free(); f.CPU != 500 || f.RAM != 3*gib || len(f.GPUs) != 1 || f.GPUs[0].Index != 0 {
		t.Fatalf("Free() = %v, want 0.5 core, 3GiB and card #0", f)
	}

	// Errors.
	if _, err := m.Reserve("bid-1", match.Resources{CPU: 1}, time.Second); !errors.Is(err, ErrExists) {
		t.Errorf("Reserve(same id) = %v, want ErrExists", err)
	}
	_, err = m.Reserve("bid-2", match.Resources{CPU: 1000, RAM: 4 * gib}, time.Second)
	if !errors.Is(err, match.ErrNoFit) || !strings.Contains(err.Error(), "cpu: need 1, have 0.5 free; ram: need 4GiB, have 3GiB free") {
		t.Errorf("Reserve(too much) = %v, want ErrNoFit with the reasons", err)
	}
	for _, bad := range []struct {
		id  string
		res match.Resources
		ttl time.Duration
	}{{"", match.Resources{}, time.Second}, {"x", match.Resources{}, 0}, {"x", match.Resources{CPU: -1}, time.Second}} {
		if _, err := m.Reserve(bad.id, bad.res, bad.ttl); !errors.Is(err, ErrInvalid) {
			t.Errorf("Reserve(%q, %v, %v) = %v, want ErrInvalid", bad.id, bad.res, bad.ttl, err)
		}
	}

	// A second GPU reservation gets the other card; a third finds none.
	if r2, err := m.Reserve("bid-3", match.Resources{GPUs: []match.GPU{{}}}, 20*time.Second); err != nil || r2.Resources.GPUs[0].Index != 0 {
		t.Fatalf("Reserve(another GPU) = %+v, %v, want card #0", r2, err)
	}
	if _, err := m.Reserve("bid-4", match.Resources{GPUs: []match.GPU{{}}}, time.Second); !errors.Is(err, match.ErrNoFit) {
		t.Fatalf("Reserve(a third GPU) = %v, want ErrNoFit", err)
	}

	// Expiry by the clock: exactly at the deadline it is gone.
	c.Advance(10 * time.Second)
	if _, err := m.Commit("bid-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Commit(expired) = %v, want ErrNotFound", err)
	}
	a, err := m.Commit("bid-3")
	if err != nil || a.Resources.GPUs[0].Index != 0 {
		t.Fatalf("Commit = %+v, %v", a, err)
	}
	if again, err := m.Commit("bid-3"); err != nil || again.ID != "bid-3" {
		t.Fatalf("Commit again = %+v, %v, want the same allocation", again, err)
	}
	// Allocations do not expire.
	c.Advance(time.Hour)
	if s := m.Snapshot(); len(s.Allocations) != 1 || len(s.Reservations) != 0 {
		t.Fatalf("Snapshot = %d allocations, %d reservations, want 1 and 0", len(s.Allocations), len(s.Reservations))
	}
	if err := m.Release("bid-3"); err != nil {
		t.Fatal(err)
	}
	if err := m.Release("bid-3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Release twice = %v, want ErrNotFound", err)
	}
	if f := m.Free(); !f.Equal(start) {
		t.Fatalf("Free() = %v at the end, want the start value %v", f, start)
	}
}

func TestBid(t *testing.T) {
	c := newClock()
	m := newTestLedger(t, c, nil)
	req := match.Request{Resources: match.Resources{CPU: 1000, RAM: gib}, Executors: []string{"docker"}}
	if _, err := m.Bid("b0", req, time.Second); !errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("Bid before onboarding = %v, want ErrNotOnboarded", err)
	}
	onboardAll(t, m)
	if err := m.SetScores(Scores{Performance: match.Performance{CPUSingle: 1000}}); err != nil {
		t.Fatal(err)
	}
	b, err := m.Bid("b1", req, 5*time.Second)
	if err != nil || !b.Rating.Eligible || b.Rating.Value <= 0 || b.Reservation.ID != "b1" || b.Rating.Cost != 100_000 {
		t.Fatalf("Bid = %+v, %v, want an eligible rating, cost 0.1/h and a reservation", b, err)
	}
	vm := req
	vm.Executors = []string{"vm"}
	vm.Location.Reject = []match.Location{{Country: "DE"}}
	b, err = m.Bid("b2", vm, 5*time.Second)
	if !errors.Is(err, match.ErrNoFit) || b.Rating.Eligible || len(b.Rating.Reasons) != 2 {
		t.Fatalf("Bid(vm, not DE) = %+v, %v, want ErrNoFit with 2 reasons", b, err)
	}
	if _, err := m.Commit("b2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an ineligible bid reserved something: Commit = %v", err)
	}
	bad := req
	bad.Prefer.Weights.Price = -1
	if _, err := m.Bid("b3", bad, time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Bid(bad request) = %v, want ErrInvalid", err)
	}
}

func TestPersistAcrossRestart(t *testing.T) {
	c := newClock()
	p := &FilePersister{Path: filepath.Join(t.TempDir(), "resources.json")}
	m := newTestLedger(t, c, p)
	onboardAll(t, m)
	if _, err := m.Allocate("job-1", match.Resources{CPU: 1000, RAM: gib, GPUs: []match.GPU{{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve("bid-short", match.Resources{CPU: 250}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve("bid-long", match.Resources{CPU: 250}, time.Hour); err != nil {
		t.Fatal(err)
	}
	scores := Scores{Performance: match.Performance{CPUSingle: 812, FsyncP50: 900}, Version: BenchmarkVersion, Time: c.Now(), Seconds: 9.1}
	if err := m.SetScores(scores); err != nil {
		t.Fatal(err)
	}
	before := m.Snapshot()

	// Restart within the short TTL: everything comes back.
	m2 := newTestLedger(t, c, p)
	if after := m2.Snapshot(); !sameBooks(before, after) {
		t.Fatalf("after restart:\n%s\nwant\n%s", js(after), js(before))
	}
	if got, ok := m2.Scores(); !ok || got.CPUSingle != 812 || got.Version != BenchmarkVersion || !got.Time.Equal(scores.Time) {
		t.Fatalf("Scores() after restart = %+v, %v", got, ok)
	}

	// Restart after the short TTL: that reservation is gone, and not
	// turned into an allocation.
	c.Advance(time.Minute)
	m3 := newTestLedger(t, c, p)
	s := m3.Snapshot()
	var ids []string
	for _, r := range s.Reservations {
		ids = append(ids, r.ID)
	}
	if len(s.Allocations) != 1 || s.Allocations[0].ID != "job-1" || !slices.Equal(ids, []string{"bid-long"}) {
		t.Fatalf("after expiry and restart: allocations %v reservations %v, want job-1 and bid-long", s.Allocations, ids)
	}
	if s.Free.CPU != 750 {
		t.Fatalf("Free().CPU = %v, want 0.75", s.Free.CPU)
	}
}

func sameBooks(a, b Snapshot) bool {
	return js(a.Onboarded) == js(b.Onboarded) && js(a.Allocations) == js(b.Allocations) &&
		js(a.Reservations) == js(b.Reservations) && a.Free.Equal(b.Free) && js(a.Benchmark) == js(b.Benchmark)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// failing is a Persister whose Save fails once armed.
type failing struct {
	MemPersister
	fail bool
}

func (f *failing) Save(data []byte) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.MemPersister.Save(data)
}

func TestPersistFailureChangesNothing(t *testing.T) {
	c := newClock()
	p := &failing{}
	m := newTestLedger(t, c, p)
	onboardAll(t, m)
	if _, err := m.Allocate("job-1", match.Resources{CPU: 500}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve("bid-1", match.Resources{CPU: 500}, time.Minute); err != nil {
		t.Fatal(err)
	}
	before := m.Snapshot()
	p.fail = true
	steps := map[string]func() error{
		"onboard":  func() error { _, err := m.Onboard(OnboardRequest{CPU: ptr(match.MilliCPU(3000))}); return err },
		"offboard": func() error { return m.Release("job-1") },
		"reserve":  func() error { _, err := m.Reserve("bid-2", match.Resources{CPU: 1}, time.Minute); return err },
		"allocate": func() error { _, err := m.Allocate("job-2", match.Resources{CPU: 1}); return err },
		"commit":   func() error { _, err := m.Commit("bid-1"); return err },
		"release":  func() error { return m.Release("bid-1") },
		"scores":   func() error { return m.SetScores(Scores{Version: 1}) },
	}
	for name, step := range steps {
		if err := step(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s with a failing store = %v, want the store's error", name, err)
		}
		if after := m.Snapshot(); !sameBooks(before, after) {
			t.Fatalf("%s with a failing store changed the books:\n%s\nwant\n%s", name, js(after), js(before))
		}
	}
	if err := m.Offboard(); err == nil {
		t.Error("Offboard with allocations and a failing store succeeded")
	}
}

func TestLoadRefusesBadDocuments(t *testing.T) {
	for _, doc := range []string{"{", `{"version": 99}`, `{"version": 1, "allocations": []}`} {
		p := &MemPersister{}
		_ = p.Save([]byte(doc))
		if _, err := NewLedger(LedgerConfig{Machine: testMachine(), Persister: p}); err == nil {
			t.Errorf("NewLedger(%s) = nil error", doc)
		}
		if got, _ := p.Load(); string(got) != doc {
			t.Errorf("NewLedger(%s) overwrote the document with %s", doc, got)
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	m := newTestLedger(t, newClock(), nil)
	var doc map[string]any
	if err := json.Unmarshal([]byte(js(m.Snapshot())), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "machine", "capacity", "reserve", "available", "onboarded", "allocated", "reserved", "free", "allocations", "reservations", "benchmark"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("Snapshot JSON has no %q: %v", k, doc)
		}
	}
	onboardAll(t, m)
	_ = m.SetScores(Scores{Performance: match.Performance{CPUSingle: 900, MemoryMBps: 12000}, Version: BenchmarkVersion})
	_ = json.Unmarshal([]byte(js(m.Snapshot())), &doc)
	bench, _ := doc["benchmark"].(map[string]any)
	if bench["cpu_single"] != 900.0 || bench["memory_mbps"] != 12000.0 || bench["version"] != 1.0 {
		t.Errorf("benchmark JSON = %v, want flat cpu_single, memory_mbps, version", bench)
	}
	on, _ := doc["onboarded"].(map[string]any)
	res, _ := on["resources"].(map[string]any)
	if res["ram"] != float64(4*gib) || res["cpu"] != 2.0 {
		t.Errorf("onboarded JSON = %v, want ram in bytes and cpu in cores", on)
	}
}

// TestConcurrentAccounting: many goroutines reserve, commit, allocate and
// release while the clock moves and reservations expire; free never goes
// negative nor above what is onboarded, and returns to its start value.
func TestConcurrentAccounting(t *testing.T) {
	c := newClock()
	p := &MemPersister{}
	m := newTestLedger(t, c, p)
	onboardAll(t, m)
	start := m.Free()

	const workers, rounds = 16, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var checkErr error
	var checkMu sync.Mutex
	var checker sync.WaitGroup
	checker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			f := m.Free()
			if f.CPU < 0 || f.CPU > start.CPU || f.RAM > start.RAM || f.Disk > start.Disk || len(f.GPUs) > len(start.GPUs) {
				checkMu.Lock()
				checkErr = fmt.Errorf("Free() = %v, outside [0, %v]", f, start)
				checkMu.Unlock()
				return
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range rounds {
				id := fmt.Sprintf("w%d-%d", w, i)
				want := match.Resources{CPU: match.MilliCPU(1 + rng.IntN(800)), RAM: match.Bytes(rng.IntN(1 << 30)), Disk: match.Bytes(rng.IntN(1 << 30))}
				if rng.IntN(4) == 0 {
					want.GPUs = []match.GPU{{}}
				}
				switch rng.IntN(4) {
				case 0: // reserve and let it expire
					_, _ = m.Reserve(id, want, time.Duration(1+rng.IntN(3))*time.Second)
				case 1: // reserve, commit, release
					if _, err := m.Reserve(id, want, time.Minute); err == nil {
						_, _ = m.Commit(id)
						_ = m.Release(id)
					}
				case 2: // reserve and release (a lost bid)
					if _, err := m.Reserve(id, want, time.Minute); err == nil {
						_ = m.Release(id)
					}
				case 3: // allocate directly, release
					if _, err := m.Allocate(id, want); err == nil {
						_ = m.Release(id)
					}
				}
				if rng.IntN(10) == 0 {
					c.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	checker.Wait()
	if checkErr != nil {
		t.Fatal(checkErr)
	}
	c.Advance(time.Hour) // every leftover reservation expires
	if f := m.Free(); !f.Equal(start) {
		t.Fatalf("Free() = %v after the storm, want the start value %v", f, start)
	}
	// The persisted books agree.
	if f := newTestLedger(t, c, p).Free(); !f.Equal(start) {
		t.Fatalf("Free() after restart = %v, want %v", f, start)
	}
}

// Releasing an unknown id is the common case of a broadcast round's
// release (the allocation manager released it first): the same error as
// before (ErrNotFound, the same text), without fmt's formatting.
func TestReleaseNotFoundCheap(t *testing.T) {
	l, err := NewLedger(LedgerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Release("dep.1")
	if !errors.Is(err, ErrNotFound) || err.Error() != "release dep.1: not found" {
		t.Fatalf("Release of an unknown id = %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = l.Release("dep.1") }); n > 1 {
		t.Fatalf("Release of an unknown id allocates %v times, want at most 1", n)
	}
}
