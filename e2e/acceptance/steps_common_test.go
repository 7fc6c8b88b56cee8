package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps every feature uses: named homes and their nodes, running dms
// commands as a user, and what their output says.
//
// A name (alice, bob, ...) is a home (`dms init`: a node key and a user
// key) shared by the scenarios of a feature; "alice's node" is `dms run`
// on that home. In commands, expected output and files, <NAME.peer>,
// <NAME.did> (the node's DID), <NAME.user> (the user's DID), <NAME.addr>
// (the node's first full multiaddr), <NAME.home>, <deployment> (the last
// one a step submitted), <dir> (the scenario's directory) and
// <workload-image> (a Docker image of the executors' test workload, built
// without a registry) are replaced by their values.

// names matches "alice", "alice and bob", "alice, bob and carol".
const names = `([a-z]+(?:(?:, | and )[a-z]+)*)`

func splitNames(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ", ") {
		for _, n := range strings.Split(part, " and ") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// homeEnv shortens what the suite waits for: a 1 s benchmark, a lost
// allocation after 4 s, bid windows of 500 ms.
var homeEnv = []string{"DMS_RESOURCES_BENCHMARK_BUDGET=1s", "DMS_ORCHESTRATOR_LOST_AFTER=4s", "DMS_ORCHESTRATOR_BID_WINDOW=500ms"}

// network is the named homes of a feature and their running nodes.
type network struct {
	f     *Feature
	homes map[string]*e2etest.Home
	nodes map[string]*e2etest.Node
	ids   map[string]map[string]string // name → peer, did, user
}

func netOf(w *World) *network {
	return featureValue(w.Feature, "network", func(testing.TB) *network {
		return &network{f: w.Feature, homes: map[string]*e2etest.Home{}, nodes: map[string]*e2etest.Node{}, ids: map[string]map[string]string{}}
	})
}

// home returns name's home, creating it (with env added) the first time.
func (n *network) home(name string, env ...string) *e2etest.Home {
	if h, ok := n.homes[name]; ok {
		return h
	}
	t := n.f.T
	h := e2etest.NewHome(t, e2etest.Binary(t))
	h.Env = append(append(h.Env, homeEnv...), env...)
	n.homes[name] = h
	n.ids[name] = map[string]string{}
	return h
}

// running reports whether name's node runs.
func (n *network) running(name string) bool {
	nd, ok := n.nodes[name]
	if !ok {
		return false
	}
	select {
	case <-nd.Done():
		return false
	default:
		return true
	}
}

// start starts name's node unless it runs, with extra flags for dms run.
func (n *network) start(name string, extra ...string) *e2etest.Node {
	if n.running(name) {
		return n.nodes[name]
	}
	nd := n.home(name).Start(n.f.T, extra...)
	n.nodes[name] = nd
	return nd
}

// node returns name's running node, failing the step if it does not run.
func (n *network) node(t testing.TB, name string) *e2etest.Node {
	if !n.running(name) {
		t.Fatalf("%s's node is not running", name)
	}
	return n.nodes[name]
}

// id returns a cached identity of name: "peer", "did" or "user".
func (n *network) id(t testing.TB, name, kind string) string {
	h := n.home(name)
	if v := n.ids[name][kind]; v != "" {
		return v
	}
	var v string
	switch kind {
	case "user", "node":
		v = h.DID(t, kind)
	case "did":
		v = h.DID(t, "node")
	case "peer":
		v = n.node(t, name).PeerID(t)
	}
	n.ids[name][kind] = v
	return v
}

// connected reports whether a lists b as connected.
func (n *network) connected(t testing.TB, a, b string) bool {
	var ps []struct {
		ID        string `json:"id"`
		Connected bool   `json:"connected"`
	}
	n.home(a).JSON(t, &ps, "peers", "list")
	idB := n.id(t, b, "peer")
	for _, p := range ps {
		if p.ID == idB && p.Connected {
			return true
		}
	}
	return false
}

// connect connects every pair of the named running nodes and waits until
// each lists every other (devnet.Mesh).
func (n *network) connect(t testing.TB, names ...string) {
	peers := make([]devnet.Peer, len(names))
	for i, name := range names {
		peers[i] = n.node(t, name).Peer(t, name)
	}
	if err := devnet.Mesh(context.Background(), peers, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// peersOf returns the other running nodes name was connected with, to
// reconnect after a restart.
func (n *network) peersOf(t testing.TB, name string) []string {
	var out []string
	for other := range n.nodes {
		if other != name && n.running(other) && n.connected(t, other, name) {
			out = append(out, other)
		}
	}
	return out
}

// restart stops name's node (SIGTERM, or SIGKILL when kill), starts it
// again and reconnects it to the nodes it was connected with.
func (n *network) restart(t testing.TB, name string, kill bool) {
	peers := n.peersOf(t, name)
	n.stop(t, name, kill)
	n.start(name)
	if len(peers) > 0 {
		n.connect(t, append([]string{name}, peers...)...)
	}
}

func (n *network) stop(t testing.TB, name string, kill bool) {
	nd := n.node(t, name)
	if kill {
		nd.Kill()
		return
	}
	if err := nd.Stop(t); err != nil {
		t.Fatalf("%s's node exited with %v on SIGTERM, want 0", name, err)
	}
}

// home returns name's home for a command of this scenario: it runs in the
// scenario's directory.
func (w *World) home(name string) *e2etest.Home {
	h := *netOf(w).home(name)
	h.WorkDir = w.Dir
	h.Timeout = time.Minute
	return &h
}

var placeholder = regexp.MustCompile(`<([a-z]+)\.(peer|did|user|addr|home)>|<deployment>|<dir>|<workload-image>`)

// expand replaces the placeholders of s.
func (w *World) expand(s string) string {
	n := netOf(w)
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		switch m {
		case "<deployment>":
			id, _ := w.vals["deployment"].(string)
			if id == "" {
				w.T.Fatalf("%s: no deployment was submitted in this scenario", m)
			}
			return id
		case "<dir>":
			return w.Dir
		case "<workload-image>":
			// Skips the scenario when no Docker engine answers.
			return e2etest.DockerImage(w.T, e2etest.Workload)
		}
		sub := placeholder.FindStringSubmatch(m)
		name, kind := sub[1], sub[2]
		switch kind {
		case "addr":
			return n.node(w.T, name).Addr(w.T)
		case "home":
			return n.home(name).Dir
		}
		return n.id(w.T, name, kind)
	})
}

// unquote undoes the \" escapes of a quoted step argument.
func unquote(s string) string { return strings.ReplaceAll(s, `\"`, `"`) }

// splitArgs splits a command line as a shell would: words separated by
// blanks, '...' and "..." quoting, \ escaping outside single quotes.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// run runs `dms ARGS` (a command line, placeholders expanded) in name's
// home and keeps the result for the Then steps.
func (w *World) run(name, line string) e2etest.Result {
	line = w.expand(line)
	args, err := splitArgs(line)
	if err != nil {
		w.T.Fatal(err)
	}
	r := w.home(name).Run(w.T, args...)
	w.Last, w.LastCmd = &r, name+": dms "+line
	return r
}

// last returns the last command's result, failing if there is none.
func (w *World) last() e2etest.Result {
	if w.Last == nil {
		w.T.Fatal("no command ran in this scenario")
	}
	return *w.Last
}

func (w *World) lastString() string {
	return fmt.Sprintf("%s\n%s", w.LastCmd, w.Last)
}

// oneLine checks that a failure is one line on stderr and nothing on
// stdout, as every failing command prints it.
func (w *World) oneLine(code int, want string) error {
	r := w.last()
	want = w.expand(want)
	if r.Code != code || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, want) {
		return fmt.Errorf("want exit %d, nothing on stdout and one line on stderr containing %q; got %s", code, want, w.lastString())
	}
	return nil
}

// writeFile writes a file of the scenario (placeholders expanded), with
// the wasm modules it names beside it.
func (w *World) writeFile(name, content string) string {
	p := w.Path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.T.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(w.expand(content)), 0o644); err != nil {
		w.T.Fatal(err)
	}
	w.provideModules(filepath.Dir(p), content)
	return p
}

// provideModules copies into dir the modules the text names:
// workload.wasm (the executors' test workload) and hello.wasm
// (examples/hello).
func (w *World) provideModules(dir, text string) {
	for file, pkg := range map[string]string{"workload.wasm": e2etest.Workload, "hello.wasm": "./examples/hello"} {
		if strings.Contains(text, file) {
			if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
				continue
			}
			e2etest.CopyFile(w.T, e2etest.WasmModule(w.T, pkg), filepath.Join(dir, file))
		}
	}
}

func commonSteps(sc *godog.ScenarioContext) {
	sc.Step(`^the nodes? `+names+` (?:is|are) running$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		for _, name := range splitNames(list) {
			netOf(w).start(name)
		}
		return nil
	})
	sc.Step(`^the nodes `+names+` are running and connected$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		n := netOf(w)
		ns := splitNames(list)
		for _, name := range ns {
			n.start(name)
		}
		n.connect(w.T, ns...)
		return nil
	})
	sc.Step(`^the nodes `+names+` are running with ([a-z]+) as their bootstrap node$`, func(ctx context.Context, list, boot string) error {
		w := worldOf(ctx)
		n := netOf(w)
		addr := n.node(w.T, boot).Addr(w.T)
		for _, name := range splitNames(list) {
			if n.running(name) {
				return fmt.Errorf("%s's node already runs: a bootstrap scenario needs nodes of its own", name)
			}
			n.start(name, "--bootstrap", addr)
		}
		return nil
	})
	sc.Step(`^`+names+` (?:has|each have) a home$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		for _, name := range splitNames(list) {
			netOf(w).home(name)
		}
		return nil
	})
	sc.Step(`^([a-z]+)'s node restarts$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		netOf(w).restart(w.T, name, false)
		return nil
	})
	sc.Step(`^([a-z]+)'s node is killed with SIGKILL$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		netOf(w).stop(w.T, name, true)
		return nil
	})
	sc.Step(`^([a-z]+)'s node is stopped$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		netOf(w).stop(w.T, name, false)
		return nil
	})
	sc.Step(`^([a-z]+)'s node starts again$`, func(ctx context.Context, name string) error {
		netOf(worldOf(ctx)).start(name)
		return nil
	})
	sc.Step(`^([a-z]+)'s node still answers$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		if r := w.home(name).Run(w.T, "peers", "self"); r.Code != 0 {
			return fmt.Errorf("%s's node does not answer: %s", name, r)
		}
		return nil
	})

	sc.Step("^([a-z]+) runs `dms (.+)`$", func(ctx context.Context, name, line string) error {
		worldOf(ctx).run(name, line)
		return nil
	})
	sc.Step("^([a-z]+) has run `dms (.+)`$", func(ctx context.Context, name, line string) error {
		w := worldOf(ctx)
		if r := w.run(name, line); r.Code != 0 {
			return fmt.Errorf("want success: %s", w.lastString())
		}
		return nil
	})
	sc.Step(`^the command succeeds$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		if w.last().Code != 0 {
			return fmt.Errorf("want exit 0: %s", w.lastString())
		}
		return nil
	})
	sc.Step(`^the command (?:fails with exit code|exits with) (-?\d+)$`, func(ctx context.Context, code int) error {
		w := worldOf(ctx)
		if w.last().Code != code {
			return fmt.Errorf("want exit %d: %s", code, w.lastString())
		}
		return nil
	})
	sc.Step(`^it is refused with "(.*)"$`, func(ctx context.Context, want string) error {
		return worldOf(ctx).oneLine(1, unquote(want))
	})
	sc.Step(`^it is a usage error saying "(.*)"$`, func(ctx context.Context, want string) error {
		return worldOf(ctx).oneLine(2, unquote(want))
	})
	sc.Step(`^the output contains "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		if want = w.expand(unquote(want)); !strings.Contains(w.last().Stdout, want) {
			return fmt.Errorf("stdout lacks %q: %s", want, w.lastString())
		}
		return nil
	})
	sc.Step(`^the output does not contain "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		if want = w.expand(unquote(want)); strings.Contains(w.last().Stdout, want) {
			return fmt.Errorf("stdout has %q: %s", want, w.lastString())
		}
		return nil
	})
	sc.Step(`^the output is empty$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		if w.last().Stdout != "" {
			return fmt.Errorf("want nothing on stdout: %s", w.lastString())
		}
		return nil
	})
	sc.Step(`^the output is JSON$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		if !json.Valid([]byte(w.last().Stdout)) {
			return fmt.Errorf("stdout is not JSON: %s", w.lastString())
		}
		return nil
	})
	sc.Step(`^the output is saved as "([^"]+)"$`, func(ctx context.Context, file string) error {
		w := worldOf(ctx)
		return os.WriteFile(w.Path(file), []byte(w.last().Stdout), 0o644)
	})
	sc.Step(`^the error says "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		if want = w.expand(unquote(want)); !strings.Contains(w.last().Stderr, want) {
			return fmt.Errorf("stderr lacks %q: %s", want, w.lastString())
		}
		return nil
	})
	sc.Step(`^the error is one line$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		if strings.Count(w.last().Stderr, "\n") != 1 {
			return fmt.Errorf("want one line on stderr: %s", w.lastString())
		}
		return nil
	})
	sc.Step(`^the error output is empty$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		if w.last().Stderr != "" {
			return fmt.Errorf("want nothing on stderr: %s", w.lastString())
		}
		return nil
	})

	sc.Step(`^the (?:file|ensemble) "([^"]+)":$`, func(ctx context.Context, name string, doc *godog.DocString) error {
		worldOf(ctx).writeFile(name, doc.Content)
		return nil
	})
	sc.Step(`^the example "([^"]+)"$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		data, err := os.ReadFile(filepath.Join(e2etest.ModuleRoot(), "examples", name))
		if err != nil {
			return err
		}
		w.writeFile(name, string(data))
		return nil
	})
	sc.Step(`^the file "([^"]+)" contains "(.*)"$`, func(ctx context.Context, name, want string) error {
		w := worldOf(ctx)
		data, err := os.ReadFile(w.Path(name))
		if err != nil {
			return err
		}
		if want = w.expand(unquote(want)); !strings.Contains(string(data), want) {
			return fmt.Errorf("%s lacks %q:\n%s", name, want, data)
		}
		return nil
	})

	sc.Step(`^([a-z]+) trusts ([a-z]+)'s user for "([^"]+)"$`, func(ctx context.Context, truster, user, cmd string) error {
		w := worldOf(ctx)
		root := netOf(w).id(w.T, user, "user")
		if r := w.home(truster).Run(w.T, "cap", "anchor", "--root", root, "--cmd", cmd); r.Code != 0 {
			return fmt.Errorf("dms cap anchor: %s", r)
		}
		// Trust is the feature's shared state: take it back.
		w.T.Cleanup(func() {
			if r := w.home(truster).Run(w.T, "cap", "anchor", "--root", root, "--cmd", cmd, "--remove"); r.Code != 0 {
				w.T.Errorf("remove the anchor: %s", r)
			}
		})
		return nil
	})
	sc.Step(`^([a-z]+) has granted ([a-z]+)'s user "([^"]+)" in "([^"]+)"$`, func(ctx context.Context, issuer, audience, cmd, file string) error {
		w := worldOf(ctx)
		to := netOf(w).id(w.T, audience, "user")
		if r := w.home(issuer).Run(w.T, "cap", "grant", "--to", to, "--cmd", cmd, "--out", w.Path(file)); r.Code != 0 {
			return fmt.Errorf("dms cap grant: %s", r)
		}
		return nil
	})
}

// seconds parses a step's number of seconds.
func seconds(s string) time.Duration {
	n, _ := strconv.Atoi(s)
	return time.Duration(n) * time.Second
}

// eventually reports whether cond holds within timeout (checking it as
// poll.Until does).
func eventually(timeout time.Duration, cond func() bool) bool {
	return poll.Until(context.Background(), timeout, "", func(context.Context) (bool, error) { return cond(), nil }) == nil
}

// jsonInto decodes a command's JSON output.
func jsonInto(out string, v any) error { return json.Unmarshal([]byte(out), v) }
