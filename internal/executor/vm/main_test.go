//go:build integration

package vm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/testbuild"
	"github.com/dmsnet/dms/internal/executor/vm"
)

// DefaultKernel is where scripts/fetch-test-kernel.sh puts the kernel;
// DMS_TEST_KERNEL overrides it.
const DefaultKernel = "/var/cache/dms-test/kernel/vmlinux"

// Set by TestMain.
var (
	skipReason string // why the VM tests skip, when they do
	kernel     string
	initrd     string        // guestinit as /init, the workload as /bin/workload, busybox in /bin, modules
	bootTime   time.Duration // of a first VM, to scale the timeouts
	workdir    string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		kernel = os.Getenv("DMS_TEST_KERNEL")
		if kernel == "" {
			kernel = DefaultKernel
		}
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			skipReason = "no qemu-system-x86_64 (install Debian's qemu-system-x86)"
			return m.Run()
		}
		if _, err := os.Stat(kernel); err != nil {
			skipReason = fmt.Sprintf("no test kernel at %s (run scripts/fetch-test-kernel.sh, or set DMS_TEST_KERNEL)", kernel)
			return m.Run()
		}
		var err error
		if workdir, err = os.MkdirTemp("", "dms-vm-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(workdir)
		if initrd, err = buildInitramfs(workdir, filepath.Join(filepath.Dir(kernel), "modules")); err != nil {
			fmt.Fprintln(os.Stderr, "build initramfs:", err)
			return 1
		}
		// One boot, to know how long a boot takes on this machine.
		ex, _ := vm.New(vm.Config{})
		id, err := ex.Start(context.Background(), spec("exit=0"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "first VM:", err)
			return 1
		}
		res, _ := ex.Wait(context.Background(), id)
		ex.Close()
		if res.Reason != executor.ReasonExited {
			fmt.Fprintf(os.Stderr, "first VM: %+v\n", res)
			return 1
		}
		bootTime = res.Boot
		fmt.Printf("first VM: boot-to-payload %v (%s), ran %v\n", res.Boot, res.Accel, res.FinishedAt.Sub(res.StartedAt))
		return m.Run()
	}())
}

// buildInitramfs writes the test initramfs: the guest init, the workload,
// busybox and the kernel modules for 9p and ext4 when modules has them.
func buildInitramfs(dir, modules string) (string, error) {
	initBin, err := testbuild.Go(dir, testbuild.GuestInit, "linux", "amd64", "guestinit")
	if err != nil {
		return "", err
	}
	wl, err := testbuild.Go(dir, testbuild.Workload, "linux", "amd64", "workload")
	if err != nil {
		return "", err
	}
	files := []testbuild.File{}
	for _, f := range []struct{ path, src string }{{"init", initBin}, {"bin/workload", wl}} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return "", err
		}
		files = append(files, testbuild.File{Path: f.path, Mode: 0o755, Data: b})
	}
	bb, err := testbuild.Busybox(testbuild.BusyboxPath)
	if err != nil {
		return "", err
	}
	files = append(bb, files...) // bin/ first
	if order, err := os.ReadFile(filepath.Join(filepath.Dir(modules), "modules.order")); err == nil {
		files = append(files, testbuild.File{Path: "lib", Mode: os.ModeDir | 0o755},
			testbuild.File{Path: "lib/modules", Mode: os.ModeDir | 0o755},
			testbuild.File{Path: "etc", Mode: os.ModeDir | 0o755},
			testbuild.File{Path: "etc/dms", Mode: os.ModeDir | 0o755})
		var list strings.Builder
		for _, name := range strings.Fields(string(order)) {
			b, err := os.ReadFile(filepath.Join(modules, name))
			if err != nil {
				return "", err
			}
			files = append(files, testbuild.File{Path: "lib/modules/" + name, Mode: 0o644, Data: b})
			list.WriteString("/lib/modules/" + name + "\n")
		}
		files = append(files, testbuild.File{Path: "etc/dms/modules", Mode: 0o644, Data: []byte(list.String())})
	}
	return writeInitramfs(filepath.Join(dir, "initramfs.cpio"), files)
}

func writeInitramfs(path string, files []testbuild.File) (string, error) {
	var buf bytes.Buffer
	a := vm.NewInitramfs(&buf)
	for _, f := range files {
		switch {
		case f.Mode.IsDir():
			a.Dir(f.Path, f.Mode.Perm())
		case f.Mode&os.ModeSymlink != 0:
			a.Symlink(f.Path, f.Linkname)
		default:
			a.File(f.Path, f.Mode.Perm(), f.Data)
		}
	}
	if err := a.Close(); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

func requireVM(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// spec returns a spec booting the test kernel and initramfs and running
// the workload with steps.
func spec(steps ...string) executor.Spec {
	return executor.Spec{
		VM:      &executor.VMImage{Kernel: kernel, Initrd: initrd},
		Command: append([]string{"/bin/workload"}, steps...),
	}
}
