//go:build integration

package docker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/poll"
)

// sandboxLabels are an executor's own labels for a sandbox test, so that
// its sandboxes can be counted.
func sandboxLabels(t *testing.T) map[string]string {
	return map[string]string{"dms.test": fmt.Sprintf("sandbox-%s-%d", t.Name(), time.Now().UnixNano())}
}

// sandboxes lists the containers labelled as sandboxes with labels.
func sandboxes(t *testing.T, cli *client.Client, labels map[string]string) []string {
	t.Helper()
	f := client.Filters{}
	f.Add("label", "dms.sandbox=true")
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	l, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range l.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

func waitReady(t *testing.T, ex *docker.Executor) string {
	t.Helper()
	var ready []string
	poll.Eventually(t, 60*time.Second, "a ready network sandbox", func() bool {
		ready = docker.ReadySandboxes(ex)
		return len(ready) > 0
	})
	return ready[0]
}

// startFirst starts a long job on ex, the start that leaves a sandbox
// ready for the next, and removes it when the test ends.
func startFirst(t *testing.T, ex *docker.Executor) string {
	t.Helper()
	id, err := ex.Start(t.Context(), workload("sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ex.Remove(context.Background(), id) })
	return id
}

// A start after the first runs in a ready sandbox on the job network; the
// job works, Remove takes the sandbox with it, and Close removes the ready
// one.
func TestSandboxStartRemoveClose(t *testing.T) {
	labels := sandboxLabels(t)
	ex := newExecutor(t, docker.Config{Labels: labels})
	cli := rawClient(t)
	ctx := t.Context()
	first := startFirst(t, ex)
	if in := inspect(t, cli, first); in.HostConfig.NetworkMode != docker.JobNetwork {
		t.Fatalf("the first start (no sandbox ready) is on %q, want %s", in.HostConfig.NetworkMode, docker.JobNetwork)
	}
	sb := waitReady(t, ex)
	nw, err := cli.NetworkInspect(ctx, docker.JobNetwork, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, on := nw.Network.Containers[sb]; !on {
		t.Fatalf("sandbox %s is not on the job network", sb[:12])
	}
	hc := inspect(t, cli, sb).HostConfig
	if !hc.ReadonlyRootfs || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" || hc.Memory != 6<<20 || hc.NanoCPUs != 1e7 {
		t.Fatalf("sandbox hardening: read-only %v, cap drop %v, memory %d, nano CPUs %d", hc.ReadonlyRootfs, hc.CapDrop, hc.Memory, hc.NanoCPUs)
	}

	res, out, _ := run(t, ex, workload("print=in-the-sandbox"))
	if res.ExitCode != 0 || !strings.Contains(out, "in-the-sandbox") {
		t.Fatalf("a job in a sandbox: %+v, output %q", res, out)
	}
	// run removed the job: its sandbox went with it.
	poll.Eventually(t, 30*time.Second, "the used sandbox removed", func() bool {
		for _, id := range sandboxes(t, cli, labels) {
			if id == sb {
				return false
			}
		}
		return true
	})

	sb2 := waitReady(t, ex)
	id, err := ex.Start(ctx, workload("sleep=1h"))
	if err != nil {
		t.Fatal(err)
	}
	in := inspect(t, cli, id)
	if want := container.NetworkMode("container:" + sb2); in.HostConfig.NetworkMode != want {
		t.Fatalf("network mode %q, want %q", in.HostConfig.NetworkMode, want)
	}
	if got, _ := ex.List(ctx, nil); len(got) != 2 {
		t.Fatalf("List = %d instances, want the 2 jobs (no sandbox)", len(got))
	}
	if err := ex.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := ex.Remove(ctx, first); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ex)
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
	if left := sandboxes(t, cli, labels); len(left) != 0 {
		t.Fatalf("%d sandboxes left after Close", len(left))
	}
}

// A ready sandbox that stopped meanwhile does not fail the start: the job
// starts on the job network without one.
func TestSandboxGoneFallsBack(t *testing.T) {
	labels := sandboxLabels(t)
	ex := newExecutor(t, docker.Config{Labels: labels})
	cli := rawClient(t)
	ctx := t.Context()
	startFirst(t, ex)
	sb := waitReady(t, ex)
	if _, err := cli.ContainerKill(ctx, sb, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	id, err := ex.Start(ctx, workload("sleep=1h"))
	if err != nil {
		t.Fatalf("start after the sandbox stopped: %v", err)
	}
	defer ex.Remove(context.Background(), id)
	if in := inspect(t, cli, id); in.HostConfig.NetworkMode != docker.JobNetwork || !in.State.Running {
		t.Fatalf("network mode %q running %v, want a running container on %s", in.HostConfig.NetworkMode, in.State.Running, docker.JobNetwork)
	}
	for _, left := range sandboxes(t, cli, labels) {
		if left == sb {
			t.Fatal("the stopped sandbox was left behind")
		}
	}
}

// A spec cannot name a sandbox: a label naming another container does not
// make Remove remove it. Sandboxes no job names (left by a process that
// did not close) are removed before the next one starts, and no other
// node's.
func TestSandboxLabelsAreTheExecutors(t *testing.T) {
	labels := sandboxLabels(t)
	ex := newExecutor(t, docker.Config{Labels: labels})
	cli := rawClient(t)
	ctx := t.Context()
	create := func(lb map[string]string) string {
		c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: workloadImage, Cmd: []string{"/workload", "sleep=1h"}, Labels: lb},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true}) })
		if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	victim := create(map[string]string{"dms.test": "victim"})
	orphan := create(map[string]string{"dms.sandbox": "true", "dms.test": labels["dms.test"]})
	foreign := create(map[string]string{"dms.sandbox": "true", "dms.test": "another-node"})

	spec := workload("sleep=1h")
	spec.Labels = map[string]string{"dms.sandbox.id": victim}
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !inspect(t, cli, victim).State.Running {
		t.Fatal("Remove of a job whose spec named another container removed that container")
	}
	waitReady(t, ex)
	if _, err := cli.ContainerInspect(ctx, orphan, client.ContainerInspectOptions{}); err == nil {
		t.Error("a sandbox of this node that no job names was left")
	}
	if !inspect(t, cli, foreign).State.Running {
		t.Error("another node's sandbox was removed")
	}
}

func inspect(t *testing.T, cli *client.Client, id string) *container.InspectResponse {
	t.Helper()
	r, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &r.Container
}

// A sandbox start cancelled at any moment leaves no container behind: the
// daemon can finish a create whose request the client gave up on (Close
// cancels the pool's warm-up that way), and nothing would know its ID.
func TestSandboxStartCancelledLeavesNone(t *testing.T) {
	labels := sandboxLabels(t)
	ex := newExecutor(t, docker.Config{Labels: labels})
	cli := rawClient(t)
	// One start first: the image and the job network exist, so the
	// cancellations below fall on the create and start themselves.
	id, err := docker.StartPlainSandbox(t.Context(), ex)
	if err != nil {
		t.Fatal(err)
	}
	docker.RemoveSandbox(ex, id)
	start := time.Now()
	id, err = docker.StartPlainSandbox(t.Context(), ex)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	docker.RemoveSandbox(ex, id)
	// Cancel after 0/8, 1/8, … of an uncancelled start.
	for i := range 8 {
		ctx, cancel := context.WithTimeout(t.Context(), took*time.Duration(i)/8)
		id, err := docker.StartPlainSandbox(ctx, ex)
		cancel()
		if err == nil {
			docker.RemoveSandbox(ex, id)
		}
	}
	if left := sandboxes(t, cli, labels); len(left) != 0 {
		t.Fatalf("%d sandboxes left by cancelled starts (an uncancelled one took %v)", len(left), took)
	}
}
