package allocation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/executor"
)

// Metering: what the allocations of a reservation really used, from the
// kernel's counters (executor.Statser), for the provider's notes.
//
// Per allocation, the Meter in its Record keeps:
//   - CPU: the CPU time of the runs that ended (each restart starts an
//     instance whose counter starts at 0), plus the highest reading of the
//     current instance. A run's end adds the larger of its Result's CPU
//     time and its last reading.
//   - memory: the memory in use integrated over time, in byte·seconds, by
//     trapezoids between consecutive samples of one instance. The memory
//     in use is the executor's Usage.Memory: for docker the cgroup's
//     working set (its inactive file cache left out, as docker stats
//     counts it), for vm QEMU's resident set, for wasm the module's
//     linear memory. The time from the run's start to its first sample
//     counts at the first sample's value, the time from its last sample
//     to its end at the last sample's value.
//   - wall: the time the workload ran, from its instance's start (as this
//     node saw Start return) to its end (the Result's FinishedAt).
//
// A sampler samples each running allocation every meterEvery; Usage
// samples the reservation's running allocations once more. The Meter is
// persisted at every state change and at least every meterPersistEvery,
// so after a restart the counters resume from the persisted values (a
// re-attached instance's counters continue) and never go back.

// Metering intervals.
const (
	meterEvery        = time.Second
	meterPersistEvery = 10 * time.Second
)

// ErrUnknownReservation is returned by Usage for a reservation this node
// holds no allocation of.
var ErrUnknownReservation = errors.New("no allocation of the reservation on this node")

// Meter is what an allocation's runs used so far; no counter of it ever
// goes back.
type Meter struct {
	// EndedCPU (µs) and EndedWall (ms) are the runs that ended.
	EndedCPU  uint64 `json:"ended_cpu_us,omitempty"`
	EndedWall uint64 `json:"ended_wall_ms,omitempty"`

	// Last is the instance of the last run that ended: it is never
	// metered again (a re-attach after a restart may find it).
	Last string `json:"last,omitempty"`
	// Instance is the run being metered ("" when none); RunCPU its highest
	// CPU reading (µs), RunWall its time so far (ms), RunStart its start.
	Instance string    `json:"instance,omitempty"`
	RunCPU   uint64    `json:"run_cpu_us,omitempty"`
	RunWall  uint64    `json:"run_wall_ms,omitempty"`
	RunStart time.Time `json:"run_start,omitzero"`

	// Memory is the memory in use (bytes) at the last sample of Instance,
	// taken at Sampled (zero: none yet).
	Memory  uint64    `json:"memory,omitempty"`
	Sampled time.Time `json:"sampled,omitzero"`

	// ByteSeconds is the memory integrated over time; Rem what is left
	// below one byte·second, in half byte·microseconds (< 2e6).
	ByteSeconds uint64 `json:"byte_s,omitempty"`
	Rem         uint64 `json:"rem,omitempty"`
}

// Usage is the meter's total.
func (m *Meter) Usage() contract.Usage {
	return contract.Usage{
		CPUMicros:         addSat(m.EndedCPU, m.RunCPU),
		MemoryByteSeconds: m.ByteSeconds,
		WallMillis:        addSat(m.EndedWall, m.RunWall),
	}
}

// begin starts metering instance at now. A re-attached instance (the same
// one) goes on where it was; a run left unfinished (it ended unseen) is
// closed as it was last seen.
func (m *Meter) begin(instance string, now time.Time) {
	if instance == "" || m.Instance == instance || m.Last == instance {
		return
	}
	if m.Instance != "" {
		m.close()
	}
	m.Instance, m.RunStart = instance, now
}

// sample takes a reading of instance at now; u nil means no reading (the
// executor cannot measure): only the run's time advances. Readings of
// another instance are ignored, and so is a reading older than the last
// one but for its CPU time (readings may race).
func (m *Meter) sample(instance string, u *executor.Usage, now time.Time) {
	if instance == "" || instance != m.Instance {
		return
	}
	if u != nil {
		m.RunCPU = max(m.RunCPU, micros(u.CPUTime))
	}
	m.RunWall = max(m.RunWall, millis(now.Sub(m.RunStart)))
	if u == nil {
		return
	}
	mem := uint64(u.Memory)
	switch {
	case m.Sampled.IsZero():
		// The first reading stands for the time since the start.
		m.integrate(mem, mem, now.Sub(m.RunStart))
	case now.After(m.Sampled):
		m.integrate(m.Memory, mem, now.Sub(m.Sampled))
	default:
		return
	}
	m.Memory, m.Sampled = mem, now
}

// end closes the run of instance, which ended with res, as seen at now.
// A nil res means the end is unknown (the instance vanished): the run
// then counts only what its samples saw.
func (m *Meter) end(instance string, res *executor.Result, now time.Time) {
	if instance == "" || instance != m.Instance {
		return
	}
	end := m.Sampled
	if res != nil {
		m.RunCPU = max(m.RunCPU, micros(res.Usage.CPUTime))
		end = now
		if f := res.FinishedAt; !f.IsZero() && f.Before(now) {
			end = f
		}
	}
	if end.After(m.RunStart) {
		m.RunWall = max(m.RunWall, millis(end.Sub(m.RunStart)))
	}
	if !m.Sampled.IsZero() && end.After(m.Sampled) {
		m.integrate(m.Memory, m.Memory, end.Sub(m.Sampled)) // the last reading stands until the end
	}
	m.close()
}

// close adds the run to the ended runs.
func (m *Meter) close() {
	m.EndedCPU = addSat(m.EndedCPU, m.RunCPU)
	m.EndedWall = addSat(m.EndedWall, m.RunWall)
	m.Last = m.Instance
	m.Instance, m.RunCPU, m.RunWall, m.RunStart = "", 0, 0, time.Time{}
	m.Memory, m.Sampled = 0, time.Time{}
}

// integrate adds the trapezoid of memory m0 to m1 (bytes) over d.
func (m *Meter) integrate(m0, m1 uint64, d time.Duration) {
	if d <= 0 {
		return
	}
	us := uint64(d / time.Microsecond)
	// 2·area in byte·µs, 128 bits: m0·us + m1·us + Rem.
	h0, l0 := bits.Mul64(m0, us)
	h1, l1 := bits.Mul64(m1, us)
	lo, c := bits.Add64(l0, l1, 0)
	hi, c2 := bits.Add64(h0, h1, c)
	lo, c = bits.Add64(lo, m.Rem, 0)
	hi, c3 := bits.Add64(hi, 0, c)
	const div = 2_000_000 // 2·10⁶ half byte·µs in one byte·s
	if c2 != 0 || c3 != 0 || hi >= div {
		m.ByteSeconds, m.Rem = math.MaxUint64, 0
		return
	}
	q, r := bits.Div64(hi, lo, div)
	m.ByteSeconds, m.Rem = addSat(m.ByteSeconds, q), r
}

func addSat(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return math.MaxUint64
	}
	return s
}

func micros(d time.Duration) uint64 { return uint64(max(d, 0) / time.Microsecond) }
func millis(d time.Duration) uint64 { return uint64(max(d, 0) / time.Millisecond) }

// Usage returns the cumulative usage of the allocations of reservation on
// this node (their sum, those removed included), taking a fresh reading
// of the running ones; ended is true once all of them have ended (or were
// removed). A reservation this node holds no allocation of returns
// ErrUnknownReservation; usage of allocations removed before a restart of
// the node is not kept.
func (m *Manager) Usage(ctx context.Context, reservation string) (contract.Usage, bool, error) {
	// One snapshot of both: an allocation being removed is in one of them.
	m.mu.Lock()
	group := m.ofReservationLocked(reservation)
	sum, found := m.removedUsage[reservation]
	m.mu.Unlock()
	if len(group) == 0 && !found {
		return contract.Usage{}, false, fmt.Errorf("usage of %s: %w", reservation, ErrUnknownReservation)
	}
	ended := true
	for _, a := range group {
		if err := a.meterSample(ctx); err != nil {
			return contract.Usage{}, false, fmt.Errorf("usage of %s: %w", reservation, err)
		}
		a.mu.Lock()
		sum = addUsage(sum, a.rec.Meter.Usage())
		ended = ended && a.rec.State.Terminal()
		a.mu.Unlock()
	}
	return sum, ended, nil
}

// keepRemovedLocked adds u, the usage of an allocation of reservation
// being removed, to the reservation's total. m.mu is held.
func (m *Manager) keepRemovedLocked(reservation string, u contract.Usage) {
	if m.removedUsage == nil {
		m.removedUsage = map[string]contract.Usage{}
	}
	m.removedUsage[reservation] = addUsage(m.removedUsage[reservation], u)
}

func addUsage(a, b contract.Usage) contract.Usage {
	return contract.Usage{
		CPUMicros:         addSat(a.CPUMicros, b.CPUMicros),
		MemoryByteSeconds: addSat(a.MemoryByteSeconds, b.MemoryByteSeconds),
		WallMillis:        addSat(a.WallMillis, b.WallMillis),
		NetBytes:          addSat(a.NetBytes, b.NetBytes),
	}
}

// meterBegin starts metering the run of instance id.
func (a *alloc) meterBegin(id string) {
	a.mu.Lock()
	a.rec.Meter.begin(id, a.m.cfg.Now())
	a.mu.Unlock()
}

// meterEnd closes the run of instance id, which ended with res.
func (a *alloc) meterEnd(id string, res *executor.Result) {
	a.mu.Lock()
	a.rec.Meter.end(id, res, a.m.cfg.Now())
	a.mu.Unlock()
}

// meterSample samples the current run, if any. A reading that fails
// (the instance is ending) only advances the run's time; the error
// returned is ctx's.
func (a *alloc) meterSample(ctx context.Context) error {
	a.mu.Lock()
	id := a.rec.Meter.Instance
	running := !a.rec.State.Terminal()
	a.mu.Unlock()
	if id == "" || !running {
		return nil
	}
	var u *executor.Usage
	if s, ok := a.ex.(executor.Statser); ok {
		got, err := s.Stats(ctx, id)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			u = &got
		}
	}
	now := a.m.cfg.Now()
	a.mu.Lock()
	a.rec.Meter.sample(id, u, now)
	a.mu.Unlock()
	return nil
}

// meterRun samples the run of instance id every meterEvery and persists
// the meter every meterPersistEvery, until the returned stop is called
// (stop waits for it).
func (a *alloc) meterRun(ctx context.Context, id string) (stop func()) {
	a.meterBegin(id)
	if _, ok := a.ex.(executor.Statser); !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	if !a.m.goTracked(func() {
		defer close(done)
		tick := time.NewTicker(meterEvery)
		defer tick.Stop()
		persisted := time.Now()
		for {
			a.meterSample(ctx)
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			if time.Since(persisted) >= meterPersistEvery {
				a.persist()
				persisted = time.Now()
			}
		}
	}) {
		close(done)
	}
	return func() {
		cancel()
		<-done
	}
}
