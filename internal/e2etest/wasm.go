package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	wasmMu    sync.Mutex
	wasmBuilt = map[string]string{} // package → module path
)

// Workload is the package of the executors' test workload: a program
// whose arguments are steps (print=TEXT, sleep=D, exit=N, alloc=MiB,
// write=PATH:TEXT, ...; see its doc comment).
const Workload = "./internal/executor/internal/workload"

// WasmModule builds the Go package pkg (relative to the module root, e.g.
// "./examples/hello" or Workload) as a WASI preview 1 module, once per test
// process, and returns the module's path.
func WasmModule(t testing.TB, pkg string) string {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if p, ok := wasmBuilt[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "dms-e2e-wasm")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-")+".wasm")
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ModuleRoot()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("build %s for wasip1: %v\n%s", pkg, err, b)
	}
	wasmBuilt[pkg] = out
	return out
}

// ModuleRoot is the directory of this checkout's go.mod.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// CopyFile copies src to dst (mode 0644), failing the test on error.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", src, err))
	}
}
