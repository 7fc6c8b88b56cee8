package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// devnetStatus is the part of `dms devnet status -o json` the tests read.
type devnetStatus struct {
	Dir      string `json:"dir"`
	Operator struct {
		DID  string `json:"did"`
		Home string `json:"home"`
	} `json:"operator"`
	PassphraseFile string `json:"passphrase_file"`
	Nodes          []struct {
		Name      string `json:"name"`
		Home      string `json:"home"`
		PID       int    `json:"pid"`
		Alive     bool   `json:"alive"`
		State     string `json:"state"`
		PeerID    string `json:"peer_id"`
		Peers     int    `json:"peers"`
		Onboarded *struct {
			CPU float64 `json:"cpu"`
			RAM uint64  `json:"ram"`
		} `json:"onboarded"`
		Executors []string `json:"executors"`
	} `json:"nodes"`
}

// oneLine fails unless r failed with exit code, one line on stderr
// containing want.
func oneLine(t *testing.T, r e2etest.Result, code int, want string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
		t.Fatalf("%s\nwant exit %d and one line containing %q", r, code, want)
	}
}

// A devnet of three nodes, as `make demo` starts it: up, status, the
// operator's rights, refusal of a second up, down with a node already dead.
func TestDevnet(t *testing.T) {
	bin := e2etest.Binary(t)
	// The CLI's own home: the devnet must not need it initialised.
	cli := &e2etest.Home{Dir: t.TempDir(), Bin: bin}
	dir := filepath.Join(t.TempDir(), "net")
	t.Cleanup(func() {
		// Whatever happened, leave no node running.
		if st, err := devnet.Load(dir); err == nil {
			var procs []devnet.Proc
			for _, n := range st.Nodes {
				procs = append(procs, devnet.Proc{PID: n.PID, Home: n.Home})
			}
			if stopped, _ := devnet.Stop(context.Background(), procs, 10*time.Second); len(stopped) > 0 {
				t.Errorf("%d node(s) still running at the end of the test", len(stopped))
			}
			if t.Failed() {
				for _, n := range st.Nodes {
					log, _ := os.ReadFile(n.Log)
					t.Logf("log of %s:\n%s", n.Name, log)
				}
			}
		}
	})

	start := time.Now()
	r := cli.Run(t, "devnet", "up", "--nodes", "3", "--dir", dir)
	if r.Code != 0 {
		t.Fatalf("devnet up: %s", r)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("devnet up --nodes 3 took %s, want seconds", took)
	}
	for _, want := range []string{"starting node1... ok (peer 12D3KooW", "starting node3... ok", "onboarding"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("devnet up progress lacks %q:\n%s", want, r.Stderr)
		}
	}
	if !strings.Contains(r.Stdout, "export DMS_HOME="+filepath.Join(dir, "node1")) {
		t.Errorf("devnet up does not say how to act as the operator:\n%s", r.Stdout)
	}

	var st devnetStatus
	cli.JSON(t, &st, "devnet", "status", "--dir", dir)
	if len(st.Nodes) != 3 {
		t.Fatalf("status lists %d nodes, want 3", len(st.Nodes))
	}
	for _, n := range st.Nodes {
		if !n.Alive || n.State != "running" || n.Peers != 2 || n.Onboarded == nil || n.Onboarded.CPU != 1 || n.Onboarded.RAM != 1<<30 ||
			len(n.Executors) != 1 || n.Executors[0] != "wasm" {
			t.Errorf("%s: alive %v, state %s, %d peers, onboarded %+v, executors %v; want alive, running, 2 peers, cpu 1 ram 1GiB, wasm",
				n.Name, n.Alive, n.State, n.Peers, n.Onboarded, n.Executors)
		}
	}
	node1, node3 := st.Nodes[0], st.Nodes[2]
	if st.Operator.Home != node1.Home || !strings.HasPrefix(st.Operator.DID, "did:key:") {
		t.Errorf("operator = %+v, want node1's user", st.Operator)
	}

	pass, err := os.ReadFile(st.PassphraseFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(st.PassphraseFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// Env is appended after e2etest's DMS_PASSPHRASE: the last one wins.
	env := []string{"DMS_PASSPHRASE=" + strings.TrimSpace(string(pass))}
	operator := &e2etest.Home{Dir: node1.Home, Bin: bin, Env: env}
	user3 := &e2etest.Home{Dir: node3.Home, Bin: bin, Env: env}

	t.Run("operator may use /dms on every node", func(t *testing.T) {
		operator.MustRun(t, "invoke", "/dms/node/peers/list", "--to", node3.PeerID)
	})
	t.Run("another user may not", func(t *testing.T) {
		r := user3.Run(t, "invoke", "/dms/node/peers/list", "--to", node1.PeerID)
		if r.Code != 1 || !strings.HasPrefix(r.Stderr, "denied:") {
			t.Fatalf("node3's user on node1: %s; want exit 1 and denied:", r)
		}
	})
	t.Run("status from a node's home", func(t *testing.T) {
		var s devnetStatus
		operator.JSON(t, &s, "devnet", "status")
		if s.Dir != dir {
			t.Fatalf("devnet status with --home %s found %q, want %s", node1.Home, s.Dir, dir)
		}
	})
	t.Run("second up refuses", func(t *testing.T) {
		oneLine(t, cli.Run(t, "devnet", "up", "--nodes", "3", "--dir", dir), 1, "a devnet is already up in "+dir+": stop it with `dms devnet down --dir "+dir+"`")
	})

	// A node that died already does not stop down.
	node2 := st.Nodes[1]
	if err := syscall.Kill(node2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "node2 gone after SIGKILL", func() bool { return !devnet.Alive(node2.PID, node2.Home) })
	cli.JSON(t, &st, "devnet", "status", "--dir", dir)
	if st.Nodes[1].State != "stopped" || st.Nodes[0].State != "running" {
		t.Errorf("status after killing node2: %s %s, want running stopped", st.Nodes[0].State, st.Nodes[1].State)
	}

	r = cli.Run(t, "devnet", "down", "--dir", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "stopped 2 node(s) (node1, node3); removed "+dir) {
		t.Fatalf("devnet down: %s", r)
	}
	for _, n := range st.Nodes {
		if devnet.Alive(n.PID, n.Home) {
			t.Errorf("%s (pid %d) still alive after down", n.Name, n.PID)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after down (%v)", dir, err)
	}
	r = cli.Run(t, "devnet", "down", "--dir", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "nothing to stop") {
		t.Errorf("second down: %s; want exit 0, nothing to stop", r)
	}
	oneLine(t, cli.Run(t, "devnet", "status", "--dir", dir), 1, "no devnet in "+dir)
}

// Bad flags are usage errors (exit 2, one line) and start nothing.
func TestDevnetUsage(t *testing.T) {
	bin := e2etest.Binary(t)
	cli := &e2etest.Home{Dir: t.TempDir(), Bin: bin}
	dir := filepath.Join(t.TempDir(), "net")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no nodes", []string{"--nodes", "0"}, "--nodes 0: want 1 to 100"},
		{"too many nodes", []string{"--nodes", "101"}, "--nodes 101: want 1 to 100"},
		{"not a number", []string{"--nodes", "three"}, "invalid argument"},
		{"unknown executor", []string{"--executor", "foo"}, `--executor "foo": want wasm, docker, vm or all`},
		{"bad size", []string{"--ram", "lots"}, `--ram "lots"`},
		{"argument", []string{"now"}, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oneLine(t, cli.Run(t, append([]string{"devnet", "up", "--dir", dir}, tt.args...)...), 2, tt.want)
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a refused devnet up created %s", dir)
			}
		})
	}
}

// One node with every executor this machine has and a benchmark; down
// --keep keeps the directory, which a new up then refuses.
func TestDevnetKeep(t *testing.T) {
	bin := e2etest.Binary(t)
	cli := &e2etest.Home{Dir: t.TempDir(), Bin: bin}
	dir := filepath.Join(t.TempDir(), "net")
	t.Cleanup(func() { cli.Run(t, "devnet", "down", "--dir", dir) })

	cli.MustRun(t, "devnet", "up", "--nodes", "1", "--executor", "all", "--benchmark", "1s", "--dir", dir)
	var st devnetStatus
	cli.JSON(t, &st, "devnet", "status", "--dir", dir)
	if len(st.Nodes) != 1 || st.Nodes[0].State != "running" || st.Nodes[0].Peers != 0 || st.Nodes[0].Onboarded == nil {
		t.Fatalf("status = %+v, want one running onboarded node with no peers", st.Nodes)
	}
	node := st.Nodes[0]
	if !slices.Contains(node.Executors, "wasm") {
		t.Errorf("executors %v, want wasm among them", node.Executors)
	}
	pass, err := os.ReadFile(st.PassphraseFile)
	if err != nil {
		t.Fatal(err)
	}
	operator := &e2etest.Home{Dir: node.Home, Bin: bin, Env: []string{"DMS_PASSPHRASE=" + strings.TrimSpace(string(pass))}}
	var res struct {
		Benchmark *struct {
			CPUSingle float64 `json:"cpu_single"`
		} `json:"benchmark"`
	}
	operator.JSON(t, &res, "resources")
	if res.Benchmark == nil || res.Benchmark.CPUSingle <= 0 {
		t.Errorf("resources benchmark = %+v, want scores after --benchmark 1s", res.Benchmark)
	}

	r := cli.Run(t, "devnet", "down", "--keep", "--dir", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "stopped 1 node(s) (node1); kept "+dir) {
		t.Fatalf("down --keep: %s", r)
	}
	if devnet.Alive(node.PID, node.Home) {
		t.Fatal("node alive after down --keep")
	}
	if _, err := os.Stat(filepath.Join(node.Home, "dms.log")); err != nil {
		t.Fatalf("down --keep lost the log: %v", err)
	}
	oneLine(t, cli.Run(t, "devnet", "up", "--dir", dir), 1, "holds a stopped devnet: remove it with `dms devnet down --dir "+dir+"`")
	cli.MustRun(t, "devnet", "down", "--dir", dir)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after down (%v)", dir, err)
	}
}
