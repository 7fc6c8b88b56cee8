package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

const mib = 1 << 20

// meterStep is one event of a Meter's life.
type meterStep struct {
	op   string // begin, sample, blind (a sample without a reading), end, lost (an end unseen)
	id   string
	at   time.Duration // since t0
	cpu  time.Duration
	mem  uint64
	done time.Duration // end: the Result's FinishedAt since t0 (0: none)
}

func TestMeter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps []meterStep
		want  contract.Usage
	}{
		{
			name: "one run: trapezoids, the first reading from the start, the last until the end",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: time.Second, cpu: 500 * time.Millisecond, mem: 100 * mib},          // 100 MiB·s
				{op: "sample", id: "i1", at: 3 * time.Second, cpu: 2 * time.Second, mem: 300 * mib},             // 400 MiB·s
				{op: "end", id: "i1", at: 5 * time.Second, cpu: 2500 * time.Millisecond, done: 4 * time.Second}, // 300 MiB·s
			},
			want: contract.Usage{CPUMicros: 2_500_000, MemoryByteSeconds: 800 * mib, WallMillis: 4000},
		},
		{
			name: "restarts add up: each instance's counter starts at 0",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: time.Second, cpu: time.Second},
				{op: "end", id: "i1", at: 2 * time.Second, cpu: 2 * time.Second, done: 2 * time.Second},
				{op: "begin", id: "i2", at: 10 * time.Second},
				{op: "sample", id: "i2", at: 11 * time.Second, cpu: 300 * time.Millisecond},
				{op: "end", id: "i2", at: 13 * time.Second, cpu: time.Second, done: 13 * time.Second},
			},
			want: contract.Usage{CPUMicros: 3_000_000, WallMillis: 5000},
		},
		{
			name: "a Result staler than the last reading does not take CPU back",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: 2 * time.Second, cpu: 1900 * time.Millisecond},
				{op: "end", id: "i1", at: 2 * time.Second, cpu: 1 * time.Second, done: 2 * time.Second},
			},
			want: contract.Usage{CPUMicros: 1_900_000, WallMillis: 2000},
		},
		{
			name: "readings of another instance, and late readings, are ignored",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: 2 * time.Second, cpu: time.Second, mem: 10 * mib}, // 20 MiB·s
				{op: "sample", id: "old", at: 3 * time.Second, cpu: time.Hour, mem: 1 << 40},
				{op: "sample", id: "i1", at: time.Second, cpu: 500 * time.Millisecond, mem: 1 << 40},
				{op: "end", id: "i1", at: 2 * time.Second, done: 2 * time.Second},
			},
			want: contract.Usage{CPUMicros: 1_000_000, MemoryByteSeconds: 20 * mib, WallMillis: 2000},
		},
		{
			name: "an instance that ended is not metered again (a re-attach finds it)",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "end", id: "i1", at: time.Second, cpu: time.Second, done: time.Second},
				{op: "begin", id: "i1", at: 5 * time.Second},
				{op: "end", id: "i1", at: 6 * time.Second, cpu: time.Second, done: time.Second},
			},
			want: contract.Usage{CPUMicros: 1_000_000, WallMillis: 1000},
		},
		{
			name: "a vanished instance counts what its samples saw",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: 2 * time.Second, cpu: time.Second, mem: 4 * mib},
				{op: "lost", id: "i1", at: time.Hour},
			},
			want: contract.Usage{CPUMicros: 1_000_000, MemoryByteSeconds: 8 * mib, WallMillis: 2000},
		},
		{
			name: "a run never closed is closed by the next one",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "sample", id: "i1", at: time.Second, cpu: time.Second},
				{op: "begin", id: "i2", at: time.Hour},
				{op: "sample", id: "i2", at: time.Hour + time.Second, cpu: time.Second},
			},
			want: contract.Usage{CPUMicros: 2_000_000, WallMillis: 2000},
		},
		{
			name: "no reading: only the run's time",
			steps: []meterStep{
				{op: "begin", id: "i1"},
				{op: "blind", id: "i1", at: 1500 * time.Millisecond},
			},
			want: contract.Usage{WallMillis: 1500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Meter
			var last contract.Usage
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				u := executor.Usage{CPUTime: s.cpu, Memory: match.Bytes(s.mem)}
				switch s.op {
				case "begin":
					m.begin(s.id, now)
				case "sample":
					m.sample(s.id, &u, now)
				case "blind":
					m.sample(s.id, nil, now)
				case "end":
					res := &executor.Result{Usage: u}
					if s.done > 0 {
						res.FinishedAt = t0.Add(s.done)
					}
					m.end(s.id, res, now)
				case "lost":
					m.end(s.id, nil, now)
				}
				// Through JSON, as the store keeps it.
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				m = Meter{}
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				got := m.Usage()
				if got.CPUMicros < last.CPUMicros || got.MemoryByteSeconds < last.MemoryByteSeconds || got.WallMillis < last.WallMillis {
					t.Fatalf("step %d (%s): usage went back from %+v to %+v", i, s.op, last, got)
				}
				last = got
			}
			if last != tt.want {
				t.Errorf("Usage = %+v, want %+v", last, tt.want)
			}
		})
	}
}

func TestMeterIntegrateSaturates(t *testing.T) {
	var m Meter
	m.integrate(math.MaxUint64, math.MaxUint64, 1000*time.Hour)
	if m.ByteSeconds != math.MaxUint64 {
		t.Errorf("ByteSeconds = %d, want saturated", m.ByteSeconds)
	}
	m = Meter{}
	// Sub-byte·second steps add up through the remainder.
	for range 1000 {
		m.integrate(1, 1, time.Millisecond)
	}
	if m.ByteSeconds != 1 || m.Rem != 0 {
		t.Errorf("1000 × 1 byte·ms = %d byte·s rem %d, want 1 rem 0", m.ByteSeconds, m.Rem)
	}
}

// usage calls m.Usage, failing the test on an error.
func usage(t *testing.T, m *Manager, res string) (contract.Usage, bool) {
	t.Helper()
	u, ended, err := m.Usage(context.Background(), res)
	if err != nil {
		t.Fatalf("Usage(%s): %v", res, err)
	}
	return u, ended
}

// instanceOf returns the instance of allocation id's current run.
// instanceOf returns the instance of allocation id, as persisted. The
// report of a transition can reach the orchestrator before the record is
// written (a report sender already running takes it from the queue), so it
// waits for the record: in a bubble until every goroutine is blocked (no
// time passes), else for up to 10 s.
func (h *harness) instanceOf(id string) string {
	h.t.Helper()
	deadline, waited := time.Now().Add(10*time.Second), false
	for {
		recs, _ := h.store.List()
		for _, r := range recs {
			if r.ID == id && r.InstanceID != "" {
				return r.InstanceID
			}
		}
		switch {
		case h.bubble && !waited:
			waited = true
			synctest.Wait()
			continue
		case !h.bubble && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		}
		h.t.Fatalf("allocation %s has no instance", id)
		return ""
	}
}

func TestUsageRestartsAccumulate(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := task("sleep=5s", "exit=1") // the fake's CPU time is its run time
		spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 2, Backoff: time.Second}
		hd := h.create(h.m, "a1", "r1", spec)
		if _, ended, err := h.m.Usage(context.Background(), "r1"); err != nil || ended {
			t.Errorf("Usage before the start = ended %v, %v; want not ended", ended, err)
		}
		h.mustStart(hd)
		// Poll through the three runs: the counters never go back.
		var last contract.Usage
		for range 40 {
			time.Sleep(500 * time.Millisecond)
			u, _ := usage(t, h.m, "r1")
			if u.CPUMicros < last.CPUMicros || u.WallMillis < last.WallMillis || u.MemoryByteSeconds < last.MemoryByteSeconds {
				t.Fatalf("usage went back from %+v to %+v", last, u)
			}
			last = u
		}
		h.awaitState("a1", deployproto.AllocFailed)
		u, ended := usage(t, h.m, "r1")
		want := contract.Usage{CPUMicros: 15_000_000, WallMillis: 15_000}
		if u != want || !ended {
			t.Errorf("Usage after 3 runs of 5s = %+v, ended %v; want %+v, ended", u, ended, want)
		}
		if recs, _ := h.store.List(); len(recs) != 1 || recs[0].Meter.Usage() != want {
			t.Errorf("persisted meter = %+v, want %+v", recs, want)
		}
		// Removed, the allocation still counts in its reservation's usage.
		if err := h.m.Revert(context.Background(), "r1"); err != nil {
			t.Fatal(err)
		}
		if u, ended := usage(t, h.m, "r1"); u != want || !ended {
			t.Errorf("Usage after the revert = %+v, ended %v; want %+v, ended", u, ended, want)
		}
		if _, _, err := h.m.Usage(context.Background(), "r-none"); !errors.Is(err, ErrUnknownReservation) {
			t.Errorf("Usage of an unknown reservation: %v, want ErrUnknownReservation", err)
		}
	})
}

func TestUsageSurvivesRestart(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := task("sleep=1h")
		spec.Type = ensemble.Service
		hd := h.create(h.m, "a1", "r1", spec)
		h.create(h.m, "a2", "r1", task("sleep=1h"))
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		id := h.instanceOf("a1")
		if err := h.ex.SetUsage(id, 3*time.Second, 100*mib); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		before, ended := usage(t, h.m, "r1")
		// a2 never started: it adds nothing, and a1 runs.
		if before.CPUMicros != 3_000_000 || before.WallMillis != 20_000 || ended {
			t.Errorf("Usage after 20s = %+v, ended %v; want 3s of CPU, 20s run, not ended", before, ended)
		}
		if min, max := uint64(19*100*mib), uint64(20*100*mib); before.MemoryByteSeconds < min || before.MemoryByteSeconds > max {
			t.Errorf("memory = %d byte·s, want between %d and %d (100 MiB for 19-20s)", before.MemoryByteSeconds, min, max)
		}
		// The meter was persisted while the workload ran.
		if recs, _ := h.store.List(); recs[0].Meter.RunCPU == 0 || recs[0].Meter.Instance != id {
			t.Errorf("persisted meter = %+v, want the run's readings", recs[0].Meter)
		}

		m := h.restart(docker(h.ex))
		after, _ := usage(t, m, "r1")
		if after.CPUMicros < before.CPUMicros || after.WallMillis < before.WallMillis || after.MemoryByteSeconds < before.MemoryByteSeconds {
			t.Errorf("usage went back over the restart: %+v, then %+v", before, after)
		}
		// The re-attached instance's counter goes on: 5s in all, not 3+5.
		if err := h.ex.SetUsage(id, 5*time.Second, 100*mib); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		if u, _ := usage(t, m, "r1"); u.CPUMicros != 5_000_000 || u.WallMillis != 30_000 {
			t.Errorf("Usage after the restart = %+v, want 5s of CPU and a 30s run", u)
		}
		if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
			t.Fatal(err)
		}
		h.awaitState("a1", deployproto.AllocStopped)
		final, _ := usage(t, m, "r1")
		if final.CPUMicros != 5_000_000 || final.WallMillis < 30_000 {
			t.Errorf("final usage = %+v, want 5s of CPU, a run of 30s or more", final)
		}
	})
}

// BenchmarkMeterSample is the cost of applying one reading to a meter
// (the sampler's work per allocation per second, Stats aside). The anchor
// is a time.Now.
func BenchmarkMeterSample(b *testing.B) {
	b.Run("anchor-now", func(b *testing.B) {
		for b.Loop() {
			time.Now()
		}
	})
	b.Run("sample", func(b *testing.B) {
		b.ReportAllocs()
		var m Meter
		t0 := time.Now()
		m.begin("i1", t0)
		u := executor.Usage{CPUTime: time.Second, Memory: 100 * mib}
		var i time.Duration
		for b.Loop() {
			i++
			u.CPUTime += time.Millisecond
			m.sample("i1", &u, t0.Add(i*time.Second))
		}
	})
}
