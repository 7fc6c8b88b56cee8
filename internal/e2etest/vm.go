package e2etest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/executor/vm"
)

// DefaultTestKernel is where scripts/fetch-test-kernel.sh puts the kernel
// the vm executor tests boot; $DMS_TEST_KERNEL overrides it.
const DefaultTestKernel = "/var/cache/dms-test/kernel/vmlinux"

// TestKernel returns the kernel a microVM test boots, or "" and why there
// is none.
func TestKernel() (path, why string) {
	path = os.Getenv("DMS_TEST_KERNEL")
	if path == "" {
		path = DefaultTestKernel
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Sprintf("no test kernel at %s (run scripts/fetch-test-kernel.sh, or set DMS_TEST_KERNEL)", path)
	}
	return path, ""
}

var (
	initrdMu    sync.Mutex
	initrdBuilt = map[string][]byte{} // package → initramfs
)

// VMInitramfs returns a gzip-compressed initramfs for the vm executor: the
// dms guest init as /init and the Go package pkg (relative to the module
// root, e.g. Workload), built static for linux/amd64 and stripped, as
// /bin/<name>. It is built once per test process.
func VMInitramfs(t testing.TB, pkg string) []byte {
	t.Helper()
	initrdMu.Lock()
	defer initrdMu.Unlock()
	if b, ok := initrdBuilt[pkg]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "dms-e2e-initrd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name := filepath.Base(strings.TrimSuffix(pkg, "/"))
	build := func(pkg, out string) []byte {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
		cmd.Dir = ModuleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	initBin := build("./internal/executor/vm/guestinit", filepath.Join(dir, "init"))
	prog := build(pkg, filepath.Join(dir, name))
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	a := vm.NewInitramfs(z)
	a.File("init", 0o755, initBin)
	a.Dir("bin", 0o755)
	a.File("bin/"+name, 0o755, prog)
	if err := a.Close(); err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	if err := z.Close(); err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	initrdBuilt[pkg] = buf.Bytes()
	return buf.Bytes()
}
