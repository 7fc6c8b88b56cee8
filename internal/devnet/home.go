package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/config"
)

// Runner runs the dms CLI for one node's home (`dms --home HOME args...`,
// wherever the caller runs it: a local process, docker exec) and returns
// its stdout. Failing to run, or a non-zero exit, is an error that says
// why.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// LocalRunner runs bin on this machine for home, with env as its whole
// environment (nil: this process's). A non-zero exit is an error holding
// the first line of its stderr.
func LocalRunner(bin, home string, env []string) Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append([]string{"--home", home}, args...)...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errb
		if err := cmd.Run(); err != nil {
			return out.Bytes(), errors.New(firstLine(errb.String(), err))
		}
		return out.Bytes(), nil
	}
}

// firstLine returns the first line of a child's stderr, or err's text.
func firstLine(stderr string, err error) string {
	if s := strings.TrimSpace(stderr); s != "" {
		return strings.SplitN(s, "\n", 2)[0]
	}
	return err.Error()
}

// Identity is a new home's keys, as `dms init` reports them.
type Identity struct {
	NodeDID string `json:"node_did"`
	UserDID string `json:"user_did"`
}

// Init creates a home with `dms -o json init`, run by run (which names
// the home and supplies the passphrase), and returns its identity.
func Init(ctx context.Context, run Runner) (Identity, error) {
	var id Identity
	out, err := run(ctx, "-o", "json", "init")
	if err != nil {
		return id, fmt.Errorf("dms init: %w", err)
	}
	if err := json.Unmarshal(out, &id); err != nil {
		return id, fmt.Errorf("dms init: decode output: %w", err)
	}
	if id.NodeDID == "" || id.UserDID == "" {
		return id, fmt.Errorf("dms init: no node_did or user_did in %q", out)
	}
	return id, nil
}

// Setting is one configuration key and its value, as `dms config set`
// takes them.
type Setting struct{ Key, Value string }

// NodeSettings configure a node of a private network: libp2p on listen
// and the API on apiListen, found by bootstrap and the DHT only (no mDNS:
// it must not find the machine's other nodes; no relay or hole punching:
// the nodes reach each other directly), and only the given executors
// enabled.
func NodeSettings(listen, apiListen string, executors []string) []Setting {
	on := func(e string) string { return strconv.FormatBool(slices.Contains(executors, e)) }
	return []Setting{
		{"p2p.listen", listen},
		{"p2p.mdns", "false"},
		{"p2p.dht", "true"},
		{"p2p.relay", "false"},
		{"p2p.hole_punching", "false"},
		{"api.listen", apiListen},
		{"executor.wasm.enabled", on("wasm")},
		{"executor.docker.enabled", on("docker")},
		{"executor.vm.enabled", on("vm")},
	}
}

// LeanSettings are the settings of every node of a devnet of n nodes from
// LeanNodes on, so that a full mesh of up to MaxNodes holds on one
// machine: inbound connections for every other node with room for
// redials (by default a node admits about 80, and node1, everyone's
// bootstrap peer, is dialed by all), a connection manager that never
// trims the mesh, and no Prometheus metrics (a registry and a resource
// manager reporter per node that no one scrapes on a devnet).
func LeanSettings(n int) []Setting {
	low := max(100, n+16)
	return []Setting{
		{"p2p.max_inbound_conns", strconv.Itoa(max(128, 2*n))},
		{"p2p.conn_low", strconv.Itoa(low)},
		{"p2p.conn_high", strconv.Itoa(max(400, 2*low))},
		{"telemetry.metrics", "false"},
	}
}

// Configure sets keys, in order, in the config.yaml of home, checks the
// result and writes it.
func Configure(home string, settings ...Setting) error {
	file, err := config.ReadFile(home)
	if err != nil {
		return err
	}
	for _, s := range settings {
		if err := config.Set(&file, s.Key, s.Value); err != nil {
			return fmt.Errorf("config %s: %w", s.Key, err)
		}
	}
	if err := file.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if err := config.Save(home, file); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// APIAddr returns the API address the node of home wrote, or "".
func APIAddr(home string) string {
	data, err := os.ReadFile(filepath.Join(home, api.AddrFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// Client returns a client for the API of the node of home, from its
// api.addr and api.token; hc is its HTTP client (nil: the default).
func Client(home string, hc *http.Client) (*api.Client, error) {
	addr := APIAddr(home)
	if addr == "" {
		return nil, fmt.Errorf("no %s in %s", api.AddrFile, home)
	}
	token, err := os.ReadFile(filepath.Join(home, api.TokenFile))
	if err != nil {
		return nil, fmt.Errorf("read API token: %w", err)
	}
	return api.NewClient(api.ClientConfig{Addr: addr, Token: string(token), HTTPClient: hc})
}
