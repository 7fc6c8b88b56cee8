//go:build integration

package vm_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/executor/vm"
)

func newExecutor(t testing.TB, cfg vm.Config) *vm.Executor {
	t.Helper()
	requireVM(t)
	ex, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

func run(t *testing.T, ex *vm.Executor, s executor.Spec) (executor.Result, string, string) {
	t.Helper()
	id, err := ex.Start(t.Context(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer ex.Remove(context.Background(), id)
	res, err := ex.Wait(t.Context(), id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var out, errb bytes.Buffer
	ex.Logs(t.Context(), id, executor.LogOptions{}, &out, &errb)
	return res, out.String(), errb.String()
}

func TestConformance(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	executortest.Conformance(t, executortest.Harness{
		Executor: ex,
		Spec:     spec,
		Boot:     2*bootTime + 2*time.Second,
		New:      func(t *testing.T) executor.Executor { return newExecutor(t, vm.Config{}) },
	})
}

func TestBootRecordsAccelAndTime(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	res, out, _ := run(t, ex, spec("print=booted", "exit=9"))
	if res.Reason != executor.ReasonExited || res.ExitCode != 9 || out != "booted\n" {
		t.Fatalf("run = %+v, %q", res, out)
	}
	if res.Accel != vm.AccelTCG || res.Boot <= 0 || res.Boot > res.FinishedAt.Sub(res.StartedAt) {
		t.Errorf("accel %q, boot %v of a %v run", res.Accel, res.Boot, res.FinishedAt.Sub(res.StartedAt))
	}
	if res.Usage.CPUTime <= 0 || res.Usage.MemoryPeak <= 0 {
		t.Errorf("usage %+v", res.Usage)
	}
	t.Logf("boot-to-payload %v with %s, whole run %v", res.Boot, res.Accel, res.FinishedAt.Sub(res.StartedAt))
}

func TestShellInGuest(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	s := spec()
	s.Command = []string{"sh", "-c", "echo $((6*7)); echo oops >&2; exit 3"}
	s.Resources.CPU = 2000
	res, out, errs := run(t, ex, s)
	if res.ExitCode != 3 || out != "42\n" || errs != "oops\n" {
		t.Errorf("run = %d, %q, %q; want 3, 42, oops", res.ExitCode, out, errs)
	}
}

func TestGuestOOM(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	s := spec("alloc=512", "print=survived")
	s.Resources.Memory = 128 << 20
	res, out, _ := run(t, ex, s)
	if res.Reason != executor.ReasonOOMKilled || strings.Contains(out, "survived") {
		t.Errorf("run = %s %d (%s), %q; want oom-killed", res.Reason, res.ExitCode, res.Error, out)
	}
}

func TestRootfs(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no mkfs.ext4 (Debian's e2fsprogs) to build a root filesystem")
	}
	ex := newExecutor(t, vm.Config{})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hello"), []byte("from the rootfs\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	bin, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bin, 0o755)
	os.Symlink("busybox", filepath.Join(root, "bin", "cat"))
	image := filepath.Join(t.TempDir(), "root.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", root, image, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	before, _ := os.ReadFile(image)
	s := spec()
	s.VM.Rootfs = image
	s.Command = []string{"cat", "/etc/hello"}
	res, out, errs := run(t, ex, s)
	if res.Reason != executor.ReasonExited || res.ExitCode != 0 || out != "from the rootfs\n" {
		t.Errorf("run = %+v, %q, %q", res, out, errs)
	}
	if after, _ := os.ReadFile(image); !bytes.Equal(before, after) {
		t.Errorf("the rootfs image was written to")
	}
}

func TestGuestWithoutInitFails(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	empty, err := writeInitramfs(filepath.Join(t.TempDir(), "empty.cpio"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := spec("exit=0")
	s.VM.Initrd = empty
	res, _, _ := run(t, ex, s)
	if res.Reason != executor.ReasonFailed || !strings.Contains(res.Error, "never started") {
		t.Errorf("run = %s (%s), want failed: never started", res.Reason, res.Error)
	}
	t.Logf("error: %.300s", res.Error)
}

func TestPauseResumeStats(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	ctx := t.Context()
	id, err := ex.Start(ctx, spec("print=up", "sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	if err := ex.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	u1, _ := ex.Stats(ctx, id)
	time.Sleep(500 * time.Millisecond)
	u2, err := ex.Stats(ctx, id)
	if err != nil || u2.CPUTime-u1.CPUTime > 50*time.Millisecond || u2.Memory == 0 {
		t.Errorf("paused VM: CPU %v then %v, memory %s (%v)", u1.CPUTime, u2.CPUTime, u2.Memory, err)
	}
	if err := ex.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := ex.Stop(ctx, id, time.Second); err != nil || time.Since(began) > 2*time.Second {
		t.Errorf("Stop = %v after %v", err, time.Since(began))
	}
}

// KVM is opt-in: on these machines /dev/kvm is a nested PVM where a
// stock kernel hangs. DMS_TEST_KVM=1 runs this test.
func TestKVM(t *testing.T) {
	if os.Getenv("DMS_TEST_KVM") != "1" {
		t.Skip("KVM is opt-in: set DMS_TEST_KVM=1")
	}
	ex := newExecutor(t, vm.Config{Accel: vm.AccelKVM})
	s := spec("exit=0")
	s.Timeout = 30 * time.Second
	res, _, _ := run(t, ex, s)
	if res.Accel != vm.AccelKVM || res.Reason != executor.ReasonExited {
		t.Errorf("run = %+v", res)
	}
	t.Logf("KVM: boot %v", res.Boot)
}
