//go:build integration

package docker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
)

// hostAddr puts addr on the host's loopback interface for the test (a
// machine's own address, as a cloud metadata proxy on the host has) and
// listens on it; the returned counter counts the connections accepted.
func hostAddr(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "add", addr+"/32", "dev", "lo").CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
		t.Skipf("cannot add %s to lo: %v: %s", addr, err, out)
	} else if err == nil {
		t.Cleanup(func() { exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").Run() })
	}
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), &n
}

// TestDockerJobCannotReachMetadata starts containers on the job network
// that try to connect to the cloud metadata address (169.254.169.254, here
// on the host) and to another address of the host. The red team's
// container reached the metadata address. By default both are blocked;
// an operator's block list without "host" still blocks the metadata
// address and lets the other through; an empty list blocks nothing.
func TestDockerJobCannotReachMetadata(t *testing.T) {
	requireDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("firewall rules need root")
	}
	meta, metaConns := hostAddr(t, "169.254.169.254")
	other, otherConns := hostAddr(t, "198.51.100.7")
	for _, tc := range []struct {
		name        string
		block       []string // nil: the default
		meta, other bool     // reachable
	}{
		{"default block list", nil, false, false},
		{"operator's list without host", []string{"169.254.0.0/16", "fe80::/10"}, false, true},
		{"operator blocks nothing", []string{}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := newExecutor(t, docker.Config{BlockNetworks: tc.block})
			docker.HoldJobNetwork(t, ex)
			for _, target := range []struct {
				addr      string
				conns     *atomic.Int32
				reachable bool
			}{{meta, metaConns, tc.meta}, {other, otherConns, tc.other}} {
				host, port, _ := net.SplitHostPort(target.addr)
				before := target.conns.Load()
				s := shell(fmt.Sprintf("if nc -w 5 %s %s </dev/null; then echo open; else echo closed; fi", host, port))
				res, out, stderr := run(t, ex, s)
				if res.Reason != executor.ReasonExited || res.ExitCode != 0 {
					t.Fatalf("container: %s %d (%s); stdout %q stderr %q", res.Reason, res.ExitCode, res.Error, out, stderr)
				}
				got := strings.TrimSpace(out) == "open"
				accepted := target.conns.Load() > before
				if got != target.reachable || accepted != target.reachable {
					t.Errorf("a job connecting to %s: nc says %q (stderr %q), listener accepted: %v; want reachable %v", target.addr, strings.TrimSpace(out), strings.TrimSpace(stderr), accepted, target.reachable)
				}
			}
		})
	}
}

// Several executors — several dms processes sharing one Docker engine, as
// on a devnet or when test packages run in parallel — set the job network
// and its rules up and tear them down concurrently: every start succeeds
// (it failed with "networks have same bridge name" or "Chain already
// exists" when each executor raced the others).
func TestJobNetworkSharedByConcurrentExecutors(t *testing.T) {
	requireDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("firewall rules need root")
	}
	const executors, rounds = 4, 3
	errs := make(chan error, executors*rounds)
	var wg sync.WaitGroup
	for i := range executors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				ex, err := docker.New(docker.Config{Labels: runLabel})
				if err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				id, err := ex.Start(ctx, shell("true"))
				if err == nil {
					_, err = ex.Wait(ctx, id)
					ex.Remove(context.Background(), id)
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("executor %d, round %d: %w", i, r, err)
				}
				if err := ex.Close(); err != nil {
					errs <- fmt.Errorf("executor %d, round %d: close: %w", i, r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Starts at once on an executor that has not set the job network up yet
// (a fresh provider given several allocations) all complete: one sets the
// network up while the others wait. A start used to take the cross-process
// lock shared before the executor's own mutex, so the one setting up,
// converting its lock to exclusive, waited for another's shared lock, held
// by a start waiting for the mutex: every start hung.
func TestConcurrentFirstStarts(t *testing.T) {
	requireDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("firewall rules need root")
	}
	ex := newExecutor(t, docker.Config{})
	const starts = 3
	errs := make(chan error, starts)
	for range starts {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id, err := ex.Start(ctx, shell("true"))
			if err == nil {
				_, err = ex.Wait(ctx, id)
				ex.Remove(context.Background(), id)
			}
			errs <- err
		}()
	}
	deadline := time.After(2 * time.Minute)
	for i := range starts {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-deadline:
			t.Fatalf("%d of %d concurrent first starts did not return in 2 minutes (deadlocked)", starts-i, starts)
		}
	}
}
