//go:build integration

package docker_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor/docker"
)

// BenchmarkStartVsDockerRun measures the executor's Start (image present,
// until the container runs) against its anchor, `docker run -d` of the
// same image with the same limits and hardening, alternating the two in
// every iteration so both see the same machine. It reports both in ms/op
// and their ratio (target ≤ 1.1).
func BenchmarkStartVsDockerRun(b *testing.B) {
	if _, err := exec.LookPath("docker"); err != nil {
		b.Skip("no docker CLI for the anchor")
	}
	ex := newExecutor(b, docker.Config{})
	cli := rawClient(b)
	ctx := context.Background()
	spec := workload("sleep=1h")
	spec.Resources.CPU, spec.Resources.Memory, spec.Resources.PIDs = 1000, 256<<20, 256
	args := []string{"run", "-d", "--init", "--cpus", "1", "--memory", "256m", "--memory-swap", "256m", "--pids-limit", "256",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--log-opt", "max-size=8388608", "--log-opt", "max-file=2",
		"--label", "dms.managed=true", "--label", "dms.test=" + runLabel["dms.test"], workloadImage, "/workload", "sleep=1h"}
	remove := func(id string) {
		cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}
	// One of each first, to warm caches.
	if id, err := ex.Start(ctx, spec); err == nil {
		ex.Remove(ctx, id)
	}
	if out, err := exec.Command("docker", args...).Output(); err == nil {
		remove(strings.TrimSpace(string(out)))
	}

	var execTotal, runTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		began := time.Now()
		id, err := ex.Start(ctx, spec)
		execTotal += time.Since(began)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		ex.Remove(ctx, id)
		b.StartTimer()

		began = time.Now()
		out, err := exec.Command("docker", args...).Output()
		runTotal += time.Since(began)
		if err != nil {
			b.Fatalf("docker run: %v", err)
		}
		b.StopTimer()
		remove(strings.TrimSpace(string(out)))
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(execTotal.Microseconds())/1000/n, "executor-ms/op")
	b.ReportMetric(float64(runTotal.Microseconds())/1000/n, "docker-run-ms/op")
	b.ReportMetric(float64(execTotal)/float64(runTotal), "ratio")
}
