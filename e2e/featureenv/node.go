//go:build linux

package featureenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/api"
)

// State is what the environment did to a node last.
type State string

// The states of a node.
const (
	Running State = "running"
	Paused  State = "paused"
	Killed  State = "killed"
)

// Node is one dms node in its container.
type Node struct {
	Name   string // <region>-<k>, e.g. eu-1; also the container's hostname
	Region string // also its location.region setting
	// IP is its address on the environment's network, and Addr its full
	// multiaddr there (/ip4/IP/tcp/4001/p2p/PEER).
	IP   netip.Addr
	Addr string
	// PeerID and DID identify the node; UserDID is its user's key.
	PeerID, DID, UserDID string
	// Home is the node's home on this machine, bind-mounted at /home/dms
	// in its container.
	Home string

	env       *Env
	container string      // container name
	state     State       // guarded by env.closeMu
	api       *api.Client // its API since it last booted; guarded by env.closeMu
}

// State returns what the environment did to the node last.
func (n *Node) State() State {
	n.env.closeMu.Lock()
	defer n.env.closeMu.Unlock()
	return n.state
}

// Container returns the node's container name (for docker commands).
func (n *Node) Container() string { return n.container }

// Result is the outcome of one command run in a node's container.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, strings.TrimSpace(r.Stdout), strings.TrimSpace(r.Stderr))
}

// Exec runs the dms CLI in the node's container (`docker exec <ctr> dms
// args...`; the home is /home/dms) and returns its result. The error is
// for failures to run it at all (the container is gone or paused).
func (n *Node) Exec(ctx context.Context, args ...string) (Result, error) {
	cli := n.env.cli
	created, err := cli.ExecCreate(ctx, n.container, client.ExecCreateOptions{
		AttachStdout: true, AttachStderr: true,
		Cmd: append([]string{binaryPath, "--home", homePath}, args...),
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: dms %s: %w", n.Name, quote(args), err)
	}
	att, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return Result{}, fmt.Errorf("%s: dms %s: %w", n.Name, quote(args), err)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&out, &errb, att.Reader)
		copied <- err
	}()
	select {
	case err := <-copied:
		if err != nil {
			return Result{}, fmt.Errorf("%s: dms %s: read output: %w", n.Name, quote(args), err)
		}
	case <-ctx.Done():
		att.Close()
		<-copied
		return Result{}, fmt.Errorf("%s: dms %s: %w", n.Name, quote(args), ctx.Err())
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		if err != nil {
			return Result{}, fmt.Errorf("%s: dms %s: %w", n.Name, quote(args), err)
		}
		if !info.Running {
			return Result{Code: info.ExitCode, Stdout: out.String(), Stderr: errb.String()}, nil
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%s: dms %s: %w", n.Name, quote(args), ctx.Err())
		case <-tick.C:
		}
	}
}

// Run is Exec that also fails when the command exits non-zero, with its
// output in the error.
func (n *Node) Run(ctx context.Context, args ...string) error {
	_, err := n.Output(ctx, args...)
	return err
}

// Output is Run that returns the command's stdout.
func (n *Node) Output(ctx context.Context, args ...string) (string, error) {
	r, err := n.Exec(ctx, args...)
	if err != nil {
		return "", err
	}
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("%s: dms %s: exit %d: %s", n.Name, quote(args), r.Code, strings.TrimSpace(r.Stderr))
	}
	return r.Stdout, nil
}

// JSON runs a command with -o json and decodes its output into v.
func (n *Node) JSON(ctx context.Context, v any, args ...string) error {
	out, err := n.Output(ctx, append([]string{"-o", "json"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%s: dms %s: decode output: %w\n%s", n.Name, quote(args), err, out)
	}
	return nil
}

// Peer is one line of `dms peers list`.
type Peer struct {
	ID        string   `json:"id"`
	Connected bool     `json:"connected"`
	LatencyMS float64  `json:"latency_ms"`
	Addrs     []string `json:"addrs"`
}

// Peers returns the node's view of its peers.
func (n *Node) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	err := n.JSON(ctx, &ps, "peers", "list")
	return ps, err
}

// Connected reports whether the node lists other as connected.
func (n *Node) Connected(ctx context.Context, other *Node) (bool, error) {
	ps, err := n.Peers(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.ID == other.PeerID {
			return p.Connected, nil
		}
	}
	return false, nil
}

// Connect dials other from the node (dms peers connect).
func (n *Node) Connect(ctx context.Context, other *Node) error {
	return n.Run(ctx, "peers", "connect", other.Addr)
}

// Ping measures one round trip from the node to other (dms peers ping).
func (n *Node) Ping(ctx context.Context, other *Node) (time.Duration, error) {
	var res struct {
		RTTMS float64 `json:"rtt_ms"`
	}
	if err := n.JSON(ctx, &res, "peers", "ping", other.PeerID); err != nil {
		return 0, err
	}
	return time.Duration(res.RTTMS * float64(time.Millisecond)), nil
}

// WriteFile writes a file into the node's home and returns its path in
// the container (/home/dms/files/name), e.g. for dms deploy -f.
func (n *Node) WriteFile(name string, data []byte) (string, error) {
	if name == "" || strings.Contains(name, "..") || filepath.IsAbs(name) {
		return "", fmt.Errorf("%s: write file %q: want a relative name without ..", n.Name, name)
	}
	p := filepath.Join(n.Home, "files", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("%s: write file %s: %w", n.Name, name, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", fmt.Errorf("%s: write file %s: %w", n.Name, name, err)
	}
	return homePath + "/files/" + filepath.ToSlash(name), nil
}

// Log returns what dms printed in the container (JSON lines).
func (n *Node) Log(ctx context.Context) (string, error) {
	rc, err := n.env.cli.ContainerLogs(ctx, n.container, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("%s: no container", n.Name)
		}
		return "", fmt.Errorf("%s: logs: %w", n.Name, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), fmt.Errorf("%s: logs: %w", n.Name, err)
	}
	return out.String(), nil
}
