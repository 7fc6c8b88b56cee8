//go:build integration

package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/testbuild"
)

// Set by TestMain.
var (
	skipReason    string // why the Docker tests skip, when they do
	workloadImage string // FROM scratch: /workload, VOLUME /data
	busyboxImage  string // FROM scratch: busybox and its applets in /bin
	runLabel      = map[string]string{"dms.test": fmt.Sprintf("docker-%d", time.Now().UnixNano())}
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		cli, err := client.New()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = cli.Ping(ctx, client.PingOptions{})
			cancel()
		}
		if err != nil {
			skipReason = fmt.Sprintf("no Docker daemon: %v", err)
			return m.Run()
		}
		defer cli.Close()
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "dms-docker-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if workloadImage, err = buildWorkloadImage(ctx, cli, dir); err != nil {
			fmt.Fprintln(os.Stderr, "build workload image:", err)
			return 1
		}
		defer cli.ImageRemove(ctx, workloadImage, client.ImageRemoveOptions{Force: true})
		if busyboxImage, err = buildBusyboxImage(ctx, cli); err != nil {
			fmt.Fprintln(os.Stderr, "build busybox image:", err)
			return 1
		}
		defer cli.ImageRemove(ctx, busyboxImage, client.ImageRemoveOptions{Force: true})

		code := m.Run()

		// Acceptance: no containers left after the suite.
		f := client.Filters{}
		for k, v := range runLabel {
			f.Add("label", k+"="+v)
		}
		left, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err == nil && len(left.Items) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d containers left after the suite\n", len(left.Items))
			for _, c := range left.Items {
				cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}
			code = 1
		}
		return code
	}())
}

func buildWorkloadImage(ctx context.Context, cli *client.Client, dir string) (string, error) {
	bin, err := testbuild.Go(dir, testbuild.Workload, "linux", "amd64", "workload")
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	files := []testbuild.File{{Path: "workload", Mode: 0o755, Data: data}, {Path: "data", Mode: os.ModeDir | 0o755}}
	return importImage(ctx, cli, "dms-test/workload", files, "VOLUME /data")
}

func buildBusyboxImage(ctx context.Context, cli *client.Client) (string, error) {
	files, err := testbuild.Busybox(testbuild.BusyboxPath)
	if err != nil {
		return "", err
	}
	files = append(files, testbuild.File{Path: "tmp", Mode: os.ModeDir | 0o1777})
	return importImage(ctx, cli, "dms-test/busybox", files)
}

// importImage builds a FROM-scratch image from files, as `docker import`.
func importImage(ctx context.Context, cli *client.Client, name string, files []testbuild.File, changes ...string) (string, error) {
	var tarball bytes.Buffer
	if err := testbuild.Tar(&tarball, files); err != nil {
		return "", err
	}
	ref := fmt.Sprintf("%s:%d", name, time.Now().UnixNano())
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &tarball, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return "", err
	}
	defer resp.Close()
	if _, err := bytes.NewBuffer(nil).ReadFrom(resp); err != nil {
		return "", err
	}
	return ref, nil
}

func requireDocker(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// workload returns a spec running the test workload with steps.
func workload(steps ...string) executor.Spec {
	return executor.Spec{Image: workloadImage, Command: append([]string{"/workload"}, steps...)}
}

// shell returns a spec running a busybox shell script.
func shell(script string) executor.Spec {
	return executor.Spec{Image: busyboxImage, Command: []string{"/bin/sh", "-c", script}}
}
