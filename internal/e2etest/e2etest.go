// Package e2etest runs real dms processes for end-to-end tests: it builds
// the binary once, creates homes with `dms init`, starts nodes with
// `dms run` on loopback, runs CLI commands against them, and stops
// everything when the test ends. Homes are made and nodes awaited with
// the steps of internal/devnet; a Node is a devnet.Member.
//
// Usage:
//
//	bin := e2etest.Binary(t)
//	a, b := e2etest.NewHome(t, bin), e2etest.NewHome(t, bin)
//	na, nb := a.Start(t), b.Start(t)
//	a.MustRun(t, "peers", "connect", nb.Addr(t))
//	out := a.MustRun(t, "invoke", "/public/hello", "--to", nb.PeerID(t))
//	err := devnet.Mesh(ctx, []devnet.Peer{na.Peer(t, "a"), nb.Peer(t, "b")}, 20*time.Second)
//
// Nodes listen on 127.0.0.1 with ports the system picks, mDNS is off (tests
// running in parallel must not discover each other), and every process is
// killed at cleanup. Set DMS_BIN to test a prebuilt binary.
package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
)

// Passphrase is the passphrase of every test home.
const Passphrase = "e2e-passphrase"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a dms binary built from this checkout (once
// per test process), or $DMS_BIN.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DMS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dms-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "dms")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/dms")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Home is a dms home directory used by a test.
type Home struct {
	Dir string
	Bin string
	Env []string // extra environment, KEY=VALUE
	// WorkDir is the working directory of the commands Run runs (files
	// they read or write by relative name); empty: the test's.
	WorkDir string
	// Timeout bounds each command Run runs; 0: 2 minutes.
	Timeout time.Duration
}

// NewHome creates and initialises a home in a temporary directory, with
// mDNS off (devnet.Init, devnet.Configure).
func NewHome(t testing.TB, bin string) *Home {
	t.Helper()
	h := &Home{Dir: filepath.Join(t.TempDir(), "home"), Bin: bin}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := devnet.Init(ctx, devnet.LocalRunner(h.Bin, h.Dir, h.environ())); err != nil {
		t.Fatal(err)
	}
	if err := devnet.Configure(h.Dir, devnet.Setting{Key: "p2p.mdns", Value: "false"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// Result is the outcome of one CLI command.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// Run runs `dms --home DIR args...` and returns its result; it fails the
// test only if the process cannot run at all.
func (h *Home) Run(t testing.TB, args ...string) Result {
	t.Helper()
	return h.exec(t, nil, h.Bin, append([]string{"--home", h.Dir}, args...)...)
}

// exec runs bin with argv in the home's environment and working directory,
// stdin from stdin (nil: none), within h.Timeout, and returns its result; it
// fails the test only if the process cannot run at all.
func (h *Home) exec(t testing.TB, stdin io.Reader, bin string, argv ...string) Result {
	t.Helper()
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = h.environ()
	cmd.Dir = h.WorkDir
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(argv, " "), err)
		}
		res.Code = ee.ExitCode()
	}
	return res
}

// MustRun is Run that fails the test on a non-zero exit, returning stdout.
func (h *Home) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	r := h.Run(t, args...)
	if r.Code != 0 {
		t.Fatalf("dms %s: %s", strings.Join(args, " "), r)
	}
	return r.Stdout
}

// JSON runs a command with -o json and decodes its output into v.
func (h *Home) JSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := h.MustRun(t, append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("dms %s: decode output: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (h *Home) environ() []string {
	env := append(os.Environ(), "DMS_PASSPHRASE="+Passphrase)
	return append(env, h.Env...)
}

// DID returns the DID of a key of the home (node or user).
func (h *Home) DID(t testing.TB, key string) string {
	t.Helper()
	return strings.TrimSpace(h.MustRun(t, "key", "did", key))
}

// Node is a running `dms run` process.
type Node struct {
	Home *Home
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs `dms run` on loopback with the extra flags and waits until
// its API answers. The node is stopped at cleanup.
func (h *Home) Start(t testing.TB, extra ...string) *Node {
	t.Helper()
	os.Remove(filepath.Join(h.Dir, api.AddrFile))
	args := append([]string{"--home", h.Dir, "--log-format", "json", "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--api-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(h.Bin, args...)
	cmd.Env = h.environ()
	n := &Node{Home: h, cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.Stop(t)
		if t.Failed() {
			t.Logf("log of node %s:\n%s", h.Dir, n.Log())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := devnet.WaitReady(ctx, n, 30*time.Second); err != nil {
		t.Fatalf("dms run: %v\n%s", err, n.Log())
	}
	return n
}

// API returns a client for the node's API (a devnet.Member).
func (n *Node) API() (*api.Client, error) { return devnet.Client(n.Home.Dir, nil) }

// Exited returns how the process ended, or nil while it runs (a
// devnet.Member).
func (n *Node) Exited(context.Context) error {
	select {
	case <-n.done:
		if n.err == nil {
			return errors.New("exit status 0")
		}
		return n.err
	default:
		return nil
	}
}

// Peer returns the node as the devnet steps (devnet.Mesh,
// devnet.TrustOperator, devnet.Onboard) reach it, named name in their
// errors.
func (n *Node) Peer(t testing.TB, name string) devnet.Peer {
	t.Helper()
	c, err := n.API()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	self, err := c.Node(ctx)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return devnet.Peer{Name: name, PeerID: self.PeerID, Addr: devnet.LoopbackAddr(self.Addrs), API: c}
}

// Stop sends SIGTERM and waits (up to 20 s, then SIGKILL).
func (n *Node) Stop(t testing.TB) error {
	select {
	case <-n.done:
		return n.err
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Errorf("node %s did not stop within 20s of SIGTERM; killing it", n.Home.Dir)
		n.cmd.Process.Kill()
		<-n.done
	}
	return n.err
}

// Kill sends SIGKILL and waits.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.done
}

// Done is closed when the process exits.
func (n *Node) Done() <-chan struct{} { return n.done }

// Log returns what the process printed so far.
func (n *Node) Log() string { return n.log.String() }

// Self is the output of `dms peers self -o json`.
type Self struct {
	PeerID string   `json:"peer_id"`
	DID    string   `json:"did"`
	Addrs  []string `json:"addrs"`
}

// Self returns the node's identity and addresses.
func (n *Node) Self(t testing.TB) Self {
	t.Helper()
	var s Self
	n.Home.JSON(t, &s, "peers", "self")
	return s
}

// PeerID returns the node's peer ID.
func (n *Node) PeerID(t testing.TB) string { return n.Self(t).PeerID }

// Addr returns the node's first full multiaddr.
func (n *Node) Addr(t testing.TB) string {
	t.Helper()
	s := n.Self(t)
	if len(s.Addrs) == 0 {
		t.Fatal("node has no addresses")
	}
	return s.Addrs[0]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
