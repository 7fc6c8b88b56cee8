//go:build integration

package docker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/poll"
)

// TestNeighboursOnTheJobNetwork proves what docs/ensemble.md ("Without a
// subnet") says about allocations reaching each other: two containers on
// one provider share the job network, but it lets no container reach
// another (inter-container communication is off), by IP address or by
// Docker container name, whatever deployment either belongs to; the
// allocation's name, bare or as <name>.internal, resolves to nothing.
// Allocations talk over their deployment's subnet (docs/networking.md).
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
	// The server answers from the host: what the neighbours miss is
	// there.
	if err := poll.Until(ctx, 30*time.Second, "db answering on "+ip+":3306", func(context.Context) (bool, error) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "3306"), time.Second)
		if err != nil {
			return false, nil
		}
		defer c.Close()
		b, _ := io.ReadAll(io.LimitReader(c, 16))
		return strings.TrimSpace(string(b)) == "db", nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, host, deployment string
		reachable              bool
	}{
		{"IP, same deployment", ip, "d1", false},
		{"container name, same deployment", name, "d1", false},
		{"IP, another deployment", ip, "d2", false},
		{"allocation name", "db", "d1", false},
		{"allocation name.internal", "db.internal", "d1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A neighbour: tries twice, so that the server's loop
			// between two connections is no failure.
			s := shell(fmt.Sprintf(`for i in 1 2; do if out=$(nc -w 3 %s 3306 </dev/null 2>&1) && [ "$out" = db ]; then echo open; exit 0; fi; echo "try $i: $out" >&2; sleep 1; done; echo closed`, tc.host))
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
