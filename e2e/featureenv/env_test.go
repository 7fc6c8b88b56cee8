//go:build integration && linux

package featureenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/e2e/featureenv"
)

// start starts an environment for the test, skipping when this machine
// cannot run one, and closes it at cleanup.
func start(t *testing.T, cfg featureenv.Config) *featureenv.Env {
	t.Helper()
	cfg.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := featureenv.Start(ctx, cfg)
	if errors.Is(err, featureenv.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})
	return env
}

// minPing returns the least of n pings from a to b.
func minPing(t *testing.T, a, b *featureenv.Node, n int) time.Duration {
	t.Helper()
	best := time.Hour
	for range n {
		rtt, err := a.Ping(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, rtt)
	}
	return best
}

// The environment of the acceptance scenarios: 5 nodes in 3 regions, 50
// ms between regions. Latency within and between regions as dms measures
// it; pause, disconnect and reconnect, partition and heal, kill and
// restart; and nothing left behind after Close.
func TestEnvironment(t *testing.T) {
	env := start(t, featureenv.Config{
		Regions:            map[string]int{"eu": 2, "us": 2, "ap": 1},
		InterRegionLatency: 50 * time.Millisecond,
	})
	ctx := context.Background()
	nodes := env.Nodes()
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if want := []string{"ap-1", "eu-1", "eu-2", "us-1", "us-2"}; !slices.Equal(names, want) {
		t.Fatalf("nodes %v, want %v", names, want)
	}
	eu1, eu2, us1, us2, ap1 := env.Node("eu-1"), env.Node("eu-2"), env.Node("us-1"), env.Node("us-2"), env.Node("ap-1")
	if env.Operator() != ap1 {
		t.Fatalf("operator %s, want ap-1", env.Operator().Name)
	}

	t.Run("latency", func(t *testing.T) {
		same := minPing(t, eu1, eu2, 5)
		across := minPing(t, eu1, us1, 5)
		t.Logf("dms peers ping: eu-1 → eu-2 (same region) %s, eu-1 → us-1 (another region) %s", same, across)
		if same > 10*time.Millisecond {
			t.Errorf("within a region: %s, want under 10ms", same)
		}
		if across < 50*time.Millisecond || across > 70*time.Millisecond {
			t.Errorf("between regions: %s, want 50ms to 70ms", across)
		}
	})

	t.Run("region setting", func(t *testing.T) {
		out, err := us2.Output(ctx, "config", "get", "location.region")
		if err != nil || strings.TrimSpace(out) != "us" {
			t.Fatalf("us-2 location.region = %q, %v; want us", out, err)
		}
	})

	t.Run("operator trusted", func(t *testing.T) {
		// The operator may list the peers of any node.
		if err := ap1.Run(ctx, "invoke", "/dms/node/peers/list", "--to", us2.PeerID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("disconnect and reconnect", func(t *testing.T) {
		if err := env.Disconnect(ctx, us2); err != nil {
			t.Fatal(err)
		}
		// From another region and from its own.
		for _, from := range []*featureenv.Node{ap1, us1} {
			r, err := from.Exec(ctx, "invoke", "/public/hello", "--to", us2.PeerID, "--timeout", "2s")
			if err != nil {
				t.Fatal(err)
			}
			if r.Code == 0 || !(strings.HasPrefix(r.Stderr, "timeout:") || strings.HasPrefix(r.Stderr, "unreachable:")) {
				t.Errorf("invoke a disconnected node from %s: %s; want a timeout or unreachable error", from.Name, r)
			}
		}
		if err := env.Reconnect(ctx, us2); err != nil {
			t.Fatal(err)
		}
		for _, from := range []*featureenv.Node{ap1, us1} {
			if err := from.Run(ctx, "invoke", "/public/hello", "--to", us2.PeerID, "--timeout", "5s"); err != nil {
				t.Fatalf("after reconnecting: %v", err)
			}
		}
	})

	t.Run("partition and heal", func(t *testing.T) {
		if err := env.Partition("eu", "us"); err != nil {
			t.Fatal(err)
		}
		r, err := eu1.Exec(ctx, "invoke", "/public/hello", "--to", us1.PeerID, "--timeout", "2s")
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == 0 || !(strings.HasPrefix(r.Stderr, "timeout:") || strings.HasPrefix(r.Stderr, "unreachable:")) {
			t.Errorf("invoke across the partition: %s; want a timeout or unreachable error", r)
		}
		if d := minPing(t, eu1, ap1, 1); d < 50*time.Millisecond {
			t.Errorf("eu-1 → ap-1 during the eu/us partition: %s, want ≥ 50ms (still reachable)", d)
		}
		if tr := env.Traffic(us1); tr.Dropped == 0 {
			t.Errorf("traffic of us-1 during the partition: %+v, want packets from eu dropped", tr)
		}
		if err := env.Heal("us", "eu"); err != nil {
			t.Fatal(err)
		}
		minPing(t, eu1, us1, 1)
		if err := env.Partition("eu", "mars"); err == nil || !strings.Contains(err.Error(), `no region "mars"`) {
			t.Errorf("partition with an unknown region: %v", err)
		}
	})

	t.Run("pause", func(t *testing.T) {
		if err := env.Pause(ctx, eu2); err != nil {
			t.Fatal(err)
		}
		r, err := eu1.Exec(ctx, "invoke", "/public/hello", "--to", eu2.PeerID, "--timeout", "2s")
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == 0 {
			t.Errorf("invoke a paused node: %s; want a failure", r)
		}
		if err := env.Unpause(ctx, eu2); err != nil {
			t.Fatal(err)
		}
		if err := eu1.Run(ctx, "invoke", "/public/hello", "--to", eu2.PeerID, "--timeout", "5s"); err != nil {
			t.Fatalf("after unpausing: %v", err)
		}
	})

	t.Run("kill and restart", func(t *testing.T) {
		if err := env.Kill(ctx, us1); err != nil {
			t.Fatal(err)
		}
		if us1.State() != featureenv.Killed {
			t.Fatalf("state %s, want killed", us1.State())
		}
		if _, err := us1.Exec(ctx, "peers", "self"); err == nil {
			t.Errorf("exec in a killed node succeeded")
		}
		if err := env.Restart(ctx, us1); err != nil {
			t.Fatal(err)
		}
		if err := env.Mesh(ctx); err != nil {
			t.Fatal(err)
		}
		if d := minPing(t, us1, us2, 3); d > 10*time.Millisecond {
			t.Errorf("us-1 → us-2 after restart: %s, want under 10ms", d)
		}
	})

	t.Run("close leaves nothing", func(t *testing.T) {
		run := env.RunID()
		homes := filepath.Dir(env.Node("eu-1").Home)
		if err := env.Close(); err != nil {
			t.Fatal(err)
		}
		assertNothingLeft(t, run)
		if _, err := os.Stat(homes); !os.IsNotExist(err) {
			t.Errorf("homes %s still there: %v", homes, err)
		}
	})
}

// assertNothingLeft checks that no container or network of run is left,
// and no iptables rule in any namespace of ours (they live in the
// containers' namespaces, so no container means no rule).
func assertNothingLeft(t *testing.T, run string) {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "dms.featureenv.run="+run)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Items)+len(ns.Items) > 0 {
		var left []string
		for _, c := range cs.Items {
			left = append(left, "container "+strings.Join(c.Names, ","))
		}
		for _, n := range ns.Items {
			left = append(left, "network "+n.Name)
		}
		t.Errorf("left behind by run %s: %s", run, strings.Join(left, ", "))
	}
}

// A run that did not close (its process died) leaves containers; the next
// Start removes them before it starts its own.
func TestStaleRunRemoved(t *testing.T) {
	cfg := featureenv.Config{Regions: map[string]int{"one": 1}}
	env := start(t, cfg)
	stale := env.RunID()
	// Pretend this run's process died: release the machine lock without
	// removing anything. Close is the only way to release it, so take
	// the containers' list first and close after the next Start… which
	// would wait for the lock. Instead, start a second environment in
	// this process after handing over: see featureenv.LeakForTest.
	featureenv.LeakForTest(env)
	next := start(t, cfg)
	if next.RunID() == stale {
		t.Fatal("same run ID twice")
	}
	assertNothingLeft(t, stale)
	if _, err := os.Stat(filepath.Dir(env.Node("one-1").Home)); !os.IsNotExist(err) {
		t.Errorf("the stale run's homes are still there: %v", err)
	}
}

// A configuration error or a node that cannot start: Start fails with a
// clear error and leaves nothing behind.
func TestStartFailsCleanly(t *testing.T) {
	ctx := context.Background()
	_, err := featureenv.Start(ctx, featureenv.Config{Regions: map[string]int{"EU": 0}, Loss: 1})
	for _, want := range []string{`region "EU"`, "0 nodes", "Loss 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v; want it to name %s", err, want)
		}
	}
	_, err = featureenv.Start(ctx, featureenv.Config{Regions: map[string]int{"eu": 1},
		Settings: map[string]string{"no.such.key": "1"}, Logf: t.Logf})
	if errors.Is(err, featureenv.ErrUnsupported) {
		t.Skip(err)
	}
	if err == nil || !strings.Contains(err.Error(), "no.such.key") {
		t.Fatalf("unknown setting: %v; want an error naming it", err)
	}
	run := runIDIn(err.Error())
	if run == "" {
		t.Fatalf("the error does not name the run: %v", err)
	}
	assertNothingLeft(t, run)
}

// runIDIn finds "run XXXXXXXX" in an error message.
func runIDIn(msg string) string {
	var run string
	if i := strings.Index(msg, "run "); i >= 0 {
		fmt.Sscanf(msg[i:], "run %8s", &run)
	}
	return run
}
