//go:build integration

package vm_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm"
)

// TestExecStreamVM boots one VM whose payload sleeps and runs commands in
// it over the exec port.
func TestExecStreamVM(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	if order, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "modules.order")); err == nil && !strings.Contains(string(order), "virtio_console.ko") {
		t.Skip("the test kernel's modules have no virtio_console: run scripts/fetch-test-kernel.sh again")
	}
	s := spec()
	s.Command = []string{"sleep", "600"}
	s.Env = map[string]string{"GREETING": "hello from the payload's env"}
	id, err := ex.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	// The first exec waits for the guest's agent: a boot's time.
	timeout := 4*bootTime + 30*time.Second

	type result struct {
		code        int
		out, errOut string
	}
	run := func(t *testing.T, opts executor.ExecOptions) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		var out, errOut bytes.Buffer
		opts.Stdout, opts.Stderr = &out, &errOut
		code, err := ex.ExecStream(ctx, id, opts)
		if err != nil {
			t.Fatalf("ExecStream(%q): %v", opts.Cmd, err)
		}
		return result{code, out.String(), errOut.String()}
	}

	for _, tc := range []struct {
		name string
		opts executor.ExecOptions
		want result
	}{
		{"echo", executor.ExecOptions{Cmd: []string{"echo", "hello"}}, result{0, "hello\n", ""}},
		{"payload's environment", executor.ExecOptions{Cmd: []string{"sh", "-c", "echo $GREETING"}}, result{0, "hello from the payload's env\n", ""}},
		{"stdin round trip", executor.ExecOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("line 1\nline 2\n")}, result{0, "line 1\nline 2\n", ""}},
		{"stderr and exit code", executor.ExecOptions{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, result{7, "out\n", "err\n"}},
		{"not found", executor.ExecOptions{Cmd: []string{"/no/such/program"}}, result{127, "", "guestinit: exec: fork/exec /no/such/program: no such file or directory\n"}},
		{"big output", executor.ExecOptions{Cmd: []string{"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"}}, result{0, strings.Repeat("x", 200000), ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(t, tc.opts); got != tc.want {
				t.Errorf("got %d, %.80q, %q; want %d, %.80q, %q", got.code, got.out, got.errOut, tc.want.code, tc.want.out, tc.want.errOut)
			}
		})
	}

	t.Run("tty", func(t *testing.T) {
		got := run(t, executor.ExecOptions{Cmd: []string{"sh", "-c", "stty size; tty; echo err >&2"}, TTY: true, Rows: 33, Cols: 101})
		if got.code != 0 || !strings.Contains(got.out, "33 101\r\n") || !strings.Contains(got.out, "/dev/pts/") || !strings.Contains(got.out, "err\r\n") || got.errOut != "" {
			t.Errorf("got %d, %q, %q; want 0, the size 33 101, a /dev/pts terminal and err on stdout", got.code, got.out, got.errOut)
		}
	})

	t.Run("concurrent sessions", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]result, 2)
		for i, cmd := range [][]string{{"sh", "-c", "sleep 1; echo slow"}, {"echo", "fast"}} {
			wg.Go(func() { outs[i] = run(t, executor.ExecOptions{Cmd: cmd}) })
		}
		wg.Wait()
		if outs[0].out != "slow\n" || outs[1].out != "fast\n" {
			t.Errorf("got %q and %q", outs[0].out, outs[1].out)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := ex.ExecStream(ctx, id, executor.ExecOptions{Cmd: []string{"true"}}); err != context.Canceled {
			t.Errorf("ExecStream with a done ctx = %v", err)
		}
	})

	if err := ex.Stop(t.Context(), id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Wait(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.ExecStream(t.Context(), id, executor.ExecOptions{Cmd: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("ExecStream in an ended VM = %v, want not running", err)
	}
}

// TestExecStreamVMRootfs runs commands in a VM whose payload is chrooted
// in a root filesystem: they run there too, and get a terminal there.
func TestExecStreamVMRootfs(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no mkfs.ext4 (Debian's e2fsprogs) to build a root filesystem")
	}
	ex := newExecutor(t, vm.Config{})
	if order, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "modules.order")); err == nil && !strings.Contains(string(order), "virtio_console.ko") {
		t.Skip("the test kernel's modules have no virtio_console: run scripts/fetch-test-kernel.sh again")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hello"), []byte("from the rootfs\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	bin, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bin, 0o755)
	for _, applet := range []string{"sh", "cat", "sleep", "tty"} {
		os.Symlink("busybox", filepath.Join(root, "bin", applet))
	}
	image := filepath.Join(t.TempDir(), "root.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", root, image, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	s := spec()
	s.VM.Rootfs = image
	s.Command = []string{"sleep", "600"}
	id, err := ex.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	ctx, cancel := context.WithTimeout(t.Context(), 4*bootTime+30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		cmd  []string
		tty  bool
		want string
	}{
		{[]string{"cat", "/etc/hello"}, false, "from the rootfs\n"},
		{[]string{"sh", "-c", "test -e /bin/workload || echo chrooted"}, false, "chrooted\n"},
		{[]string{"tty"}, true, "/dev/pts/"},
	} {
		var out bytes.Buffer
		code, err := ex.ExecStream(ctx, id, executor.ExecOptions{Cmd: tc.cmd, TTY: tc.tty, Stdout: &out, Stderr: &out})
		if err != nil || code != 0 || !strings.HasPrefix(out.String(), tc.want) {
			t.Errorf("%q: %d, %v, %q; want 0 and %q", tc.cmd, code, err, out.String(), tc.want)
		}
	}
}
