//go:build integration

package allocation

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/wasm"
)

// buildWasmWorkload builds the executors' test workload for wasip1, as
// the wasm executor's own tests do.
func buildWasmWorkload(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "workload.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out,
		"github.com/dmsnet/dms/internal/executor/internal/workload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the wasip1 workload: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWasmEndToEnd runs allocations on the real wasm executor: the module
// is fetched from the orchestrator in chunks, runs, writes an output file
// into its volume, and its logs and result come back.
func TestWasmEndToEnd(t *testing.T) {
	module := buildWasmWorkload(t)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	ex, err := wasm.New(wasm.Config{CacheDir: filepath.Join(cache, "dms-test", "wazero")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })

	h := newHarness(t)
	h.m.Close(context.Background())
	h.m = h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Wasm: ex})
	digest := h.orch.serve(module)

	spec := wasmTask(digest, "print=hello", "env=K", "tick=3x100ms", "write=/out/result.txt:42", "eprint=bye")
	spec.Volumes = map[string]ensemble.Volume{"out": {Path: "/out", Kind: ensemble.Local}}
	spec.Resources.RAM = 128 << 20

	run := func(id string) (started, ended time.Duration) {
		hd := h.create(h.m, id, "r-"+id, spec)
		t0 := time.Now()
		h.mustStart(hd)
		h.awaitState(id, deployproto.AllocRunning)
		started = time.Since(t0)
		final := h.awaitState(id, deployproto.AllocCompleted)
		ended = time.Since(t0)
		if final.Result == nil || final.Result.ExitCode != 0 {
			t.Errorf("%s: result = %+v, want exit 0", id, final.Result)
		}
		stdout, stderr := h.readLogs(hd)
		if stdout != "hello\nK=v\ntick 1\ntick 2\ntick 3\n" || stderr != "bye\n" {
			t.Errorf("%s: logs = %q / %q", id, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(h.dataDir, id, "volumes", "out", "result.txt"))
		if err != nil || string(b) != "42" {
			t.Errorf("%s: output file = %q, %v", id, b, err)
		}
		return started, ended
	}
	s1, e1 := run("a1")
	s2, e2 := run("a2")
	chunks := (len(module) + deployproto.ArtifactChunkSize - 1) / deployproto.ArtifactChunkSize
	if n := h.orch.artifactRequests(digest); n != chunks {
		t.Errorf("%d chunk requests, want %d (the second allocation uses the cache)", n, chunks)
	}
	t.Logf("module %d KiB in %d chunks; first allocation running after %s, completed after %s; second (cached, warm) running after %s, completed after %s",
		len(module)>>10, chunks, s1.Round(time.Millisecond), e1.Round(time.Millisecond), s2.Round(time.Millisecond), e2.Round(time.Millisecond))

	// The wasm executor keeps nothing across restarts: a running module is
	// reported lost after one.
	long := wasmTask(digest, "print=up", "sleep=1m")
	hd := h.create(h.m, "a3", "r-a3", long)
	h.mustStart(hd)
	h.awaitState("a3", deployproto.AllocRunning)
	h.m.Close(context.Background())
	ex2, err := wasm.New(wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex2.Close() })
	h.m = h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Wasm: ex2})
	if err := h.m.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.awaitState("a3", deployproto.AllocFailed)
	if r.Result == nil || !strings.Contains(r.Result.Error, "wasm instances do not survive a restart") {
		t.Errorf("after restart: %q %+v", r.Message, r.Result)
	}
}
