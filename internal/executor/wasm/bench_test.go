package wasm_test

import (
	"os/exec"
	"testing"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
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
