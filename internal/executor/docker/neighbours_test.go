//go:build integration

package docker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
)

// TestNeighboursOnTheJobNetwork proves what docs/ensemble.md
// ("Networking today") says about allocations reaching each other: two
// containers on one provider share the job network, so one reaches the
// other by its IP address and by its Docker container name (dms-<random>,
// which the job is not told), whatever deployment either belongs to; the
// allocation's name, bare or as <name>.internal, resolves to nothing.
func TestNeighboursOnTheJobNetwork(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	// The "db" allocation of deployment d1: answers every connection on
	// port 3306 with "db".
	srv := shell("while true; do echo db | nc -l -p 3306; done")
	srv.Labels = map[string]string{executor.LabelAllocation: "d1-db", "dms.deployment": "d1"}
	id, err := ex.Start(ctx, srv)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { ex.Remove(context.Background(), id) })
	info, err := rawClient(t).ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(info.Container.Name, "/")
	ep := info.Container.NetworkSettings.Networks[docker.JobNetwork]
	if ep == nil || !ep.IPAddress.IsValid() {
		t.Fatalf("db container %s is not on %s: %+v", name, docker.JobNetwork, info.Container.NetworkSettings.Networks)
	}
	ip := ep.IPAddress.String()

	for _, tc := range []struct {
		name, host, deployment string
		reachable              bool
	}{
		{"IP, same deployment", ip, "d1", true},
		{"container name, same deployment", name, "d1", true},
		{"IP, another deployment", ip, "d2", true},
		{"allocation name", "db", "d1", false},
		{"allocation name.internal", "db.internal", "d1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A neighbour: tries a few times, so that the server's
			// loop between two connections is no failure.
			s := shell(fmt.Sprintf(`for i in 1 2 3 4 5; do if out=$(nc -w 3 %s 3306 </dev/null 2>&1) && [ "$out" = db ]; then echo open; exit 0; fi; echo "try $i: $out" >&2; sleep 1; done; echo closed`, tc.host))
			s.Labels = map[string]string{executor.LabelAllocation: tc.deployment + "-web", "dms.deployment": tc.deployment}
			s.Timeout = time.Minute
			res, out, stderr := run(t, ex, s)
			if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
				t.Fatalf("container: %s %d (%s); stdout %q stderr %q", res.Reason, res.ExitCode, res.Error, out, stderr)
			}
			if got := strings.TrimSpace(out) == "open"; got != tc.reachable {
				t.Errorf("connect to %s:3306 = %q (stderr %q), want reachable %v", tc.host, strings.TrimSpace(out), strings.TrimSpace(stderr), tc.reachable)
			}
		})
	}
}
