package wasm_test

import (
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
)

// TestWasmStats reads a spinning module's usage while it runs: its CPU
// time grows, never past its Result's, and its memory is its linear
// memory.
func TestWasmStats(t *testing.T) {
	ex := newExecutor(t, wasm.Config{})
	run(t, ex, spec("print=warm")) // compile first
	id, err := ex.Start(t.Context(), spec("alloc=8", "spin=1500ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(t.Context(), id)
	var last executor.Usage
	deadline := time.Now().Add(30 * time.Second)
	for last.CPUTime < 200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("Stats never reached 200ms of CPU; last %+v", last)
		}
		u, err := ex.Stats(t.Context(), id)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if u.CPUTime < last.CPUTime {
			t.Fatalf("CPU time went back from %v to %v", last.CPUTime, u.CPUTime)
		}
		last = u
		time.Sleep(10 * time.Millisecond) // poll the running module
	}
	if last.Memory < 8<<20 || last.MemoryPeak < last.Memory || last.PIDs != 1 {
		t.Errorf("Stats = %+v, want at least 8 MiB of memory, its peak, one thread", last)
	}
	res, err := ex.Wait(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Usage.CPUTime < last.CPUTime {
		t.Errorf("Result CPU %v below a reading while it ran, %v", res.Usage.CPUTime, last.CPUTime)
	}
	if u, err := ex.Stats(t.Context(), id); err != nil || u != res.Usage {
		t.Errorf("Stats of the ended instance = %+v, %v; want its Result's %+v", u, err, res.Usage)
	}
	if _, err := ex.Stats(t.Context(), "nope"); err == nil {
		t.Error("Stats of an unknown instance succeeded")
	}
}
