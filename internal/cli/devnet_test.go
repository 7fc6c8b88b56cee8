package cli

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

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
)

func TestDevnetUpPlan(t *testing.T) {
	ok := devnetUpOptions{nodes: 3, executors: []string{"wasm"}, cpu: "1", ram: "1GiB", disk: "2GiB"}
	with := func(f func(*devnetUpOptions)) devnetUpOptions { o := ok; f(&o); return o }
	tests := []struct {
		name      string
		opts      devnetUpOptions
		executors []string // want, when no error
		all       bool
		benchMS   int64
		err       string // want a usage error containing this
	}{
		{"defaults", ok, []string{"wasm"}, false, 0, ""},
		{"one node", with(func(o *devnetUpOptions) { o.nodes = 1 }), []string{"wasm"}, false, 0, ""},
		{"list, deduplicated and sorted", with(func(o *devnetUpOptions) { o.executors = []string{"wasm", "Docker", "wasm"} }), []string{"docker", "wasm"}, false, 0, ""},
		{"all", with(func(o *devnetUpOptions) { o.executors = []string{"all"} }), []string{"docker", "vm", "wasm"}, true, 0, ""},
		{"benchmark", with(func(o *devnetUpOptions) { o.benchmark = 2 * time.Second }), []string{"wasm"}, false, 2000, ""},
		{"zero nodes", with(func(o *devnetUpOptions) { o.nodes = 0 }), nil, false, 0, "--nodes 0: want 1 to 100"},
		{"too many nodes", with(func(o *devnetUpOptions) { o.nodes = 101 }), nil, false, 0, "--nodes 101: want 1 to 100"},
		{"unknown executor", with(func(o *devnetUpOptions) { o.executors = []string{"foo"} }), nil, false, 0, `--executor "foo"`},
		{"all with others", with(func(o *devnetUpOptions) { o.executors = []string{"all", "wasm"} }), nil, false, 0, "give it alone"},
		{"no executor", with(func(o *devnetUpOptions) { o.executors = nil }), nil, false, 0, "at least one"},
		{"bad cpu", with(func(o *devnetUpOptions) { o.cpu = "lots" }), nil, false, 0, `--cpu "lots"`},
		{"zero cpu", with(func(o *devnetUpOptions) { o.cpu = "0" }), nil, false, 0, `--cpu "0"`},
		{"bad ram", with(func(o *devnetUpOptions) { o.ram = "1XB" }), nil, false, 0, `--ram "1XB"`},
		{"bad disk", with(func(o *devnetUpOptions) { o.disk = "-1" }), nil, false, 0, `--disk "-1"`},
		{"short benchmark", with(func(o *devnetUpOptions) { o.benchmark = 10 * time.Millisecond }), nil, false, 0, "--benchmark 10ms"},
		{"negative discovery", with(func(o *devnetUpOptions) { o.discovery = -time.Second }), nil, false, 0, "--discovery -1s: want 0 to 10m"},
		{"long discovery", with(func(o *devnetUpOptions) { o.discovery = time.Hour }), nil, false, 0, "--discovery 1h0m0s: want 0 to 10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.opts.plan()
			if tt.err != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("plan() = %v, want a usage error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan() = %v", err)
			}
			if !slices.Equal(p.executors, tt.executors) || p.all != tt.all || p.benchMS != tt.benchMS {
				t.Fatalf("plan() executors %v all %v benchmark %d ms, want %v %v %d", p.executors, p.all, p.benchMS, tt.executors, tt.all, tt.benchMS)
			}
			if p.onboard.CPU == nil || p.onboard.RAM == nil || p.onboard.Disk == nil || !p.onboard.NoBenchmark {
				t.Fatalf("plan() onboard = %+v, want cpu, ram, disk and no benchmark", p.onboard)
			}
		})
	}
}

func TestDevnetDir(t *testing.T) {
	root := t.TempDir()
	net := filepath.Join(root, "net")
	if err := os.MkdirAll(filepath.Join(net, "node1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (&devnet.State{Dir: net}).Save(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, home, flag, want string
	}{
		{"default under the home", filepath.Join(root, "home"), "", filepath.Join(root, "home", "devnet")},
		{"flag wins", filepath.Join(root, "home"), filepath.Join(root, "x"), filepath.Join(root, "x")},
		{"home is a devnet node", filepath.Join(net, "node1"), "", net},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{home: tt.home}
			got, err := a.devnetDir(tt.flag)
			if err != nil || got != tt.want {
				t.Fatalf("devnetDir(%q) with home %s = %q, %v; want %q", tt.flag, tt.home, got, err, tt.want)
			}
		})
	}
}

func TestDevnetVacant(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files ...string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	stopped := mk("stopped")
	if err := (&devnet.State{Dir: stopped, Nodes: []devnet.Node{{Name: "node1", Home: filepath.Join(stopped, "node1"), PID: 0}}}).Save(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, err string
	}{
		{"missing", filepath.Join(root, "missing"), ""},
		{"empty", mk("empty"), ""},
		{"not empty", mk("full", "notes.txt"), "exists and is not empty"},
		{"stopped devnet", stopped, "holds a stopped devnet: remove it with `dms devnet down --dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := devnetVacant(tt.dir)
			if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("devnetVacant(%s) = %v, want %q", tt.dir, err, tt.err)
			}
		})
	}
}

func TestDevnetDownWithoutDevnet(t *testing.T) {
	root := t.TempDir()
	notDevnet := filepath.Join(root, "mine")
	if err := os.MkdirAll(notDevnet, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		dir      string
		wantCode int
		want     string // in stdout for 0, stderr otherwise
	}{
		{"nothing there", filepath.Join(root, "none"), 0, "nothing to stop"},
		{"not a devnet", notDevnet, 1, "is not a devnet (no devnet.json): not touching it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "--home", root, "devnet", "down", "--dir", tt.dir)
			out := stdout
			if tt.wantCode != 0 {
				out = stderr
			}
			if code != tt.wantCode || !strings.Contains(out, tt.want) {
				t.Fatalf("devnet down: exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, tt.wantCode, tt.want)
			}
		})
	}
	if _, err := os.Stat(notDevnet); err != nil {
		t.Fatalf("devnet down removed a directory that is not a devnet: %v", err)
	}
}

// TestDevnetUpError: how a failed devnet up reads, per cause and per
// what became of the directory.
func TestDevnetUpError(t *testing.T) {
	refused := fmt.Errorf("node2: onboard: %w", &api.Error{Status: 409, Code: api.CodeRefused, Message: "ram 100TiB exceeds available 7GiB"})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"kept", &devnet.UpError{Err: errors.New("node2 exited before its API answered: boom (log: /d/node2/dms.log)"), Dir: "/d"},
			"devnet up: node2 exited before its API answered: boom (log: /d/node2/dms.log); stopped its nodes; logs kept in /d (remove with `dms devnet down --dir /d`)"},
		{"refused", &devnet.UpError{Err: refused, Dir: "/d"},
			"devnet up: node2: onboard: refused: ram 100TiB exceeds available 7GiB (give less with --cpu, --ram, --disk); stopped its nodes; logs kept in /d (remove with `dms devnet down --dir /d`)"},
		{"interrupted", &devnet.UpError{Err: fmt.Errorf("node1: %w", context.Canceled), Dir: "/d", Removed: true},
			"devnet up: interrupted; stopped its nodes and removed /d"},
		{"no docker", &devnet.UpError{Err: &devnet.UnusableError{Executor: "docker", DockerSocket: "/var/run/docker.sock"}, Dir: "/d", Removed: true},
			`devnet up: --executor docker: no Docker engine answers on this machine (socket "/var/run/docker.sock"): start Docker or choose --executor wasm; stopped its nodes and removed /d`},
		{"no qemu", &devnet.UpError{Err: &devnet.UnusableError{Executor: "vm", QEMU: "qemu-system-x86_64"}, Dir: "/d", Removed: true},
			"devnet up: --executor vm: QEMU (qemu-system-x86_64) is not installed: install it or choose --executor wasm; stopped its nodes and removed /d"},
		{"not in this dms", &devnet.UpError{Err: &devnet.UnusableError{Executor: "vm"}, Dir: "/d", Removed: true},
			"devnet up: --executor vm: this dms does not run vm jobs yet (node1 offers no executor); stopped its nodes and removed /d"},
		{"stop failed", &devnet.UpError{Err: errors.New("node1: resources: boom"), Dir: "/d", StopErr: errors.New("process(es) 7 still alive after SIGKILL")},
			"devnet up: node1: resources: boom; stopping the started nodes failed too: process(es) 7 still alive after SIGKILL (see dms devnet status --dir /d)"},
		{"remove failed", &devnet.UpError{Err: context.Canceled, Dir: "/d", RemoveErr: errors.New("permission denied")},
			"devnet up: interrupted; stopped its nodes, but removing /d failed: permission denied"},
		{"before any node", errors.New("write passphrase: disk full"), "write passphrase: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := devnetUpError(tt.err).Error(); got != tt.want {
				t.Fatalf("devnetUpError =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
