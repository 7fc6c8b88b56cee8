package acceptance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/executor/vm"
)

// vmExecSteps: a VM job whose initramfs carries the test kernel's virtio
// modules, virtio_console among them, so that dms deployment exec reaches
// it (and, if asked, those of 9p, so that it mounts volumes).
func vmExecSteps(sc *godog.ScenarioContext) {
	sc.Step(`^a kernel and an initramfs holding the workload and the kernel's virtio( and 9p)? modules, as "([^"]+)" and "([^"]+)"$`, func(ctx context.Context, with9p, kernelName, initrdName string) error {
		w := worldOf(ctx)
		kernel, why := e2etest.TestKernel()
		if kernel == "" {
			w.T.Skip(why)
		}
		initrd := e2etest.VMInitramfs(w.T, e2etest.Workload)
		// The kernel unpacks concatenated archives: the modules go in a
		// second one.
		if order, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "modules.order")); err == nil {
			if !strings.Contains(string(order), "virtio_console.ko") {
				w.T.Skip("the test kernel's modules have no virtio_console: run scripts/fetch-test-kernel.sh again")
			}
			// Only what exec needs: the job is sent whole, and bodies are
			// bounded.
			var names []string
			for _, n := range strings.Fields(string(order)) {
				if strings.HasPrefix(n, "virtio") && n != "virtio_blk.ko" || with9p != "" && ninep[n] {
					names = append(names, n)
				}
			}
			mods, err := modulesArchive(filepath.Join(filepath.Dir(kernel), "modules"), names)
			if err != nil {
				return err
			}
			// An uncompressed archive must start at a multiple of 4 bytes;
			// the kernel skips the zeros before it.
			initrd = append(append([]byte(nil), initrd...), make([]byte, (4-len(initrd)%4)%4)...)
			initrd = append(initrd, mods...)
		}
		if z := filepath.Join(filepath.Dir(kernel), "vmlinuz"); fileExists(z) {
			kernel = z
		}
		e2etest.CopyFile(w.T, kernel, w.Path(kernelName))
		return os.WriteFile(w.Path(initrdName), initrd, 0o644)
	})
}

// ninep are the modules of 9p over virtio, which volumes mount by.
var ninep = map[string]bool{"netfs.ko": true, "fscache.ko": true, "9pnet.ko": true, "9pnet_virtio.ko": true, "9p.ko": true}

// modulesArchive is a cpio archive of the modules, in /lib/modules, and
// their list, in order, in /etc/dms/modules.
func modulesArchive(dir string, names []string) ([]byte, error) {
	var buf bytes.Buffer
	a := vm.NewInitramfs(&buf)
	for _, d := range []string{"lib", "lib/modules", "etc", "etc/dms"} {
		a.Dir(d, 0o755)
	}
	var list strings.Builder
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
		a.File("lib/modules/"+name, 0o644, b)
		list.WriteString("/lib/modules/" + name + "\n")
	}
	a.File("etc/dms/modules", 0o644, []byte(list.String()))
	if err := a.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
