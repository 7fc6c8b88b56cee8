package wasm_test

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
	"github.com/dmsnet/dms/internal/match"
)

// BenchmarkStart measures start-to-exit of the Go test workload printing
// one line: warm (compiled module in memory), restart (a new executor
// with a warm CacheDir, as after a daemon restart), cold (compiling), and
// the anchor, the same program run natively as a process.
func BenchmarkStart(b *testing.B) {
	runOnce := func(b *testing.B, ex *wasm.Executor) {
		id, err := ex.Start(b.Context(), spec("print=hi"))
		if err != nil {
			b.Fatal(err)
		}
		res, err := ex.Wait(b.Context(), id)
		if err != nil || res.Reason != executor.ReasonExited || res.ExitCode != 0 {
			b.Fatalf("Wait = %+v, %v", res, err)
		}
		ex.Remove(b.Context(), id)
	}
	b.Run("warm", func(b *testing.B) {
		ex := newExecutor(b, wasm.Config{})
		runOnce(b, ex)
		for b.Loop() {
			runOnce(b, ex)
		}
		reportMillis(b)
	})
	b.Run("restart", func(b *testing.B) {
		for b.Loop() {
			ex, err := wasm.New(wasm.Config{CacheDir: cacheDir})
			if err != nil {
				b.Fatal(err)
			}
			runOnce(b, ex)
			ex.Close()
		}
		reportMillis(b)
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			ex, err := wasm.New(wasm.Config{})
			if err != nil {
				b.Fatal(err)
			}
			runOnce(b, ex)
			ex.Close()
		}
		reportMillis(b)
	})
	b.Run("anchor-native-process", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command(native, "print=hi").Output(); err != nil || string(out) != "hi\n" {
				b.Fatalf("native run = %q, %v", out, err)
			}
		}
		reportMillis(b)
	})
}

func reportMillis(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}

// BenchmarkSpin measures the work a module does in a second of busy wall
// time (rounds/s, "spun N" of the workload): unlimited, limited to half a
// core (a cgroup quota on its thread, where available), and the anchor,
// the same program run natively as a process.
func BenchmarkSpin(b *testing.B) {
	rounds := func(b *testing.B, out string) float64 {
		var n float64
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "spun %g", &n); err != nil {
			b.Fatalf("output %q: %v", out, err)
		}
		return n
	}
	for _, cpu := range []match.MilliCPU{0, 500} {
		b.Run("cpu-"+cpu.String(), func(b *testing.B) {
			ex := newExecutor(b, wasm.Config{})
			var total float64
			for b.Loop() {
				s := spec("spin=1s")
				s.Resources.CPU = cpu
				id, err := ex.Start(b.Context(), s)
				if err != nil {
					b.Fatal(err)
				}
				if res, err := ex.Wait(b.Context(), id); err != nil || res.ExitCode != 0 {
					b.Fatalf("Wait = %+v, %v", res, err)
				}
				var out bytes.Buffer
				ex.Logs(b.Context(), id, executor.LogOptions{}, &out, io.Discard)
				ex.Remove(b.Context(), id)
				total += rounds(b, out.String())
			}
			b.ReportMetric(total/float64(b.N), "rounds/s")
		})
	}
	b.Run("anchor-native-process", func(b *testing.B) {
		var total float64
		for b.Loop() {
			out, err := exec.Command(native, "spin=1s").Output()
			if err != nil {
				b.Fatal(err)
			}
			total += rounds(b, string(out))
		}
		b.ReportMetric(total/float64(b.N), "rounds/s")
	})
}
