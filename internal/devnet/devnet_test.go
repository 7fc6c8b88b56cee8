package devnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := &State{
		Dir: dir, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Executors: []string{"wasm"},
		PassphraseFile: filepath.Join(dir, "passphrase"),
		Operator:       Operator{DID: "did:key:z6Mkop", Home: filepath.Join(dir, "node1")},
		Nodes: []Node{{Name: "node1", Home: filepath.Join(dir, "node1"), Log: filepath.Join(dir, "node1", "dms.log"),
			PID: 42, PeerID: "12D3KooW", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooW"}, API: "127.0.0.1:2", Executors: []string{"wasm"}}},
	}
	if Exists(dir) {
		t.Fatal("Exists before Save = true")
	}
	if err := want.Save(); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("Exists after Save = false")
	}
	if st, err := os.Stat(Path(dir)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries after Save, want only %s", len(entries), StateFile)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" writes no file
		want    string
	}{
		{"missing", "", "no such file"},
		{"not json", "{", "unexpected end"},
		{"other version", `{"version": 9}`, "version 9"},
		{"node without home", `{"version": 1, "nodes": [{"name": "node1"}]}`, "node 1 has no name or home"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != "" {
				if err := os.WriteFile(Path(dir), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
			if tt.content == "" && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load of a missing state = %v, want fs.ErrNotExist", err)
			}
		})
	}
}

func TestHasHome(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"separate", []string{"dms", "--home", "/d/node1", "run"}, true},
		{"equals", []string{"dms", "--home=/d/node1", "run"}, true},
		{"other home", []string{"dms", "--home", "/d/node10", "run"}, false},
		{"prefix only", []string{"dms", "--home", "/d/node1/x"}, false},
		{"flag last", []string{"dms", "--home"}, false},
		{"no flag", []string{"sleep", "/d/node1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasHome(tt.args, "/d/node1"); got != tt.want {
				t.Fatalf("hasHome(%q) = %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

// gone reports whether pid no longer runs (absent or a zombie).
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// TestStartStop runs shell scripts as stand-in nodes (their command line
// names a home, as dms run's does) and stops them.
func TestStartStop(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	tests := []struct {
		name   string
		script string // $1 is the file to write a child's pid to
		// child: the script starts a child that must not outlive it.
		child bool
	}{
		{"exits on SIGTERM", `while :; do sleep 0.05; done`, false},
		{"ignores SIGTERM", `trap "" TERM; while :; do sleep 0.05; done`, false},
		{"leaves a child behind", `sleep 60 & echo $! > "$1"; wait`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "node1")
			childFile := filepath.Join(dir, "child")
			// The command line names the home as dms run's does:
			// sh -c SCRIPT sh CHILDFILE --home HOME.
			p, err := Start(Command{Path: "/bin/sh", Args: []string{"-c", tt.script, "sh", childFile, "--home", home},
				Log: filepath.Join(dir, "log")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Kill(-p.PID, syscall.SIGKILL) })
			poll.Eventually(t, 5*time.Second, "process alive (and its child started)", func() bool {
				return Alive(p.PID, home) && (!tt.child || fileHasPID(childFile))
			})
			if Alive(p.PID, home+"x") {
				t.Fatal("Alive with another home = true")
			}
			stopped, err := Stop(context.Background(), []Proc{{PID: p.PID, Home: home}, {PID: 0, Home: home}}, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if len(stopped) != 1 || stopped[0].PID != p.PID {
				t.Fatalf("Stop returned %v, want only pid %d", stopped, p.PID)
			}
			if Alive(p.PID, home) {
				t.Fatal("alive after Stop")
			}
			if tt.child {
				data, _ := os.ReadFile(childFile)
				child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
				poll.Eventually(t, 5*time.Second, fmt.Sprintf("child %d gone with its node", child), func() bool { return gone(child) })
			}
			// Idempotent: nothing left to stop.
			if stopped, err := Stop(context.Background(), []Proc{{PID: p.PID, Home: home}}, time.Second); err != nil || len(stopped) != 0 {
				t.Fatalf("second Stop = %v, %v; want nothing stopped", stopped, err)
			}
		})
	}
}

func fileHasPID(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	_, err = strconv.Atoi(strings.TrimSpace(string(data)))
	return err == nil
}

func TestLastLogLine(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, want string }{
		{"json record", `{"msg":"starting"}` + "\n" + `{"level":"ERROR","msg":"listen","err":"address in use"}` + "\n", "listen: address in use"},
		{"plain text", "one\ninvalid configuration: p2p.listen\n", "invalid configuration: p2p.listen"},
		{"empty", "", "empty log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := lastLogLine(p); got != tt.want {
				t.Fatalf("lastLogLine = %q, want %q", got, tt.want)
			}
		})
	}
	if got := lastLogLine(filepath.Join(dir, "missing")); got != "no log" {
		t.Fatalf("lastLogLine(missing) = %q, want %q", got, "no log")
	}
}
