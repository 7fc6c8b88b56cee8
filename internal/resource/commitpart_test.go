package resource

import (
	"errors"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

func TestCommitPart(t *testing.T) {
	mach := Machine{}
	mach.CPU.Threads = 8
	mach.RAM.Total = 8 << 30
	mach.Disk.Free = 8 << 30
	m, err := NewLedger(LedgerConfig{Machine: mach})
	if err != nil {
		t.Fatal(err)
	}
	cpu, ram, disk := match.MilliCPU(4000), match.Bytes(4<<30), match.Bytes(4<<30)
	if _, err := m.Onboard(OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk}); err != nil {
		t.Fatal(err)
	}
	start := m.Free()
	// Reserve the larger of two nodes; commit the smaller: the rest is free.
	if _, err := m.Reserve("r1", match.Resources{CPU: 2000, RAM: 2 << 30}, time.Minute); err != nil {
		t.Fatal(err)
	}
	a, err := m.CommitPart("r1", match.Resources{CPU: 500, RAM: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if a.Resources.CPU != 500 || m.Free().CPU != start.CPU-500 || m.Free().RAM != start.RAM-(1<<30) {
		t.Fatalf("allocation %v, free %v (start %v)", a.Resources, m.Free(), start)
	}
	// Retried commits return the allocation.
	if again, err := m.CommitPart("r1", match.Resources{CPU: 500, RAM: 1 << 30}); err != nil || again.Resources.CPU != 500 {
		t.Fatalf("second CommitPart = %v, %v", again, err)
	}
	// More than reserved is refused and the reservation kept.
	if _, err := m.Reserve("r2", match.Resources{CPU: 500}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CommitPart("r2", match.Resources{CPU: 1000}); err == nil {
		t.Fatal("CommitPart beyond the reservation succeeded")
	}
	if _, err := m.CommitPart("nope", match.Resources{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CommitPart(unknown) = %v", err)
	}
	m.Release("r1")
	m.Release("r2")
	if !m.Free().Equal(start) {
		t.Fatalf("free %v, want %v", m.Free(), start)
	}
}
