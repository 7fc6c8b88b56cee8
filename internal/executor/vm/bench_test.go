//go:build integration

package vm_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm"
)

// BenchmarkBoot boots the test kernel and runs a payload that exits at
// once, reporting boot-to-payload and start-to-exit, with the
// uncompressed vmlinux (PVH entry) and the compressed vmlinuz Debian
// ships, under the configured accelerator (TCG unless DMS_TEST_KVM=1).
func BenchmarkBoot(b *testing.B) {
	requireVM(b)
	accel := vm.AccelTCG
	if os.Getenv("DMS_TEST_KVM") == "1" {
		accel = vm.AccelKVM
	}
	for _, k := range []string{"vmlinux", "vmlinuz"} {
		path := filepath.Join(filepath.Dir(kernel), k)
		b.Run(k+"/"+accel, func(b *testing.B) {
			if _, err := os.Stat(path); err != nil {
				b.Skipf("no %s", path)
			}
			ex := newExecutor(b, vm.Config{Accel: accel})
			s := spec("exit=0")
			s.VM.Kernel = path
			var boot, total time.Duration
			for i := 0; i < b.N; i++ {
				id, err := ex.Start(b.Context(), s)
				if err != nil {
					b.Fatal(err)
				}
				res, err := ex.Wait(b.Context(), id)
				if err != nil || res.Reason != executor.ReasonExited {
					b.Fatalf("Wait = %+v, %v", res, err)
				}
				ex.Remove(b.Context(), id)
				boot += res.Boot
				total += res.FinishedAt.Sub(res.StartedAt)
			}
			b.ReportMetric(float64(boot.Milliseconds())/float64(b.N), "boot-ms/op")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "run-ms/op")
		})
	}
}
