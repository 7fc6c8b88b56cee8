package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/match"
)

// Limits and defaults of `dms devnet`.
const (
	devnetMaxNodes      = 20
	devnetStartTimeout  = 30 * time.Second // for one node's API to answer
	devnetMeshTimeout   = 15 * time.Second // for every node to list every other
	devnetStatusTimeout = 3 * time.Second  // per node, for status
	devnetPassphrase    = "passphrase"     // file in the devnet directory
	devnetLog           = "dms.log"        // file in each node's home
)

// The executors `dms devnet up --executor` accepts.
var devnetExecutors = []string{"docker", "vm", "wasm"}

func newDevnetCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "A local network of real nodes on this machine: up, status, down",
		Long: `Start, inspect and stop a local network of real dms nodes on loopback.

Each node is a real ` + "`dms run`" + ` process with its own home in the devnet
directory (--dir, default <home>/devnet, i.e. ~/.dms/devnet). Node1's user key
is the devnet's operator: every node trusts it for /dms commands. See
docs/devnet.md.`,
		Example: `  dms devnet up --nodes 3
  dms devnet status
  DMS_HOME=~/.dms/devnet/node1 DMS_PASSPHRASE_FILE=~/.dms/devnet/passphrase dms peers list
  dms devnet down`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "devnet directory (default <home>/devnet)")
	cmd.AddCommand(newDevnetUpCmd(a, &dir), newDevnetStatusCmd(a, &dir), newDevnetDownCmd(a, &dir))
	return cmd
}

// devnetDir resolves the devnet directory: --dir, else <home>/devnet; when
// the home is itself a devnet node (DMS_HOME=<dir>/node1, as docs/devnet.md
// suggests), the devnet it belongs to.
func (a *app) devnetDir(flag string) (string, error) {
	if flag != "" {
		dir, err := filepath.Abs(flag)
		if err != nil {
			return "", fmt.Errorf("--dir %s: %w", flag, err)
		}
		return dir, nil
	}
	dir := filepath.Join(a.home, "devnet")
	if parent := filepath.Dir(a.home); !devnet.Exists(dir) && devnet.Exists(parent) {
		return parent, nil
	}
	return dir, nil
}

// devnetUpOptions are the flags of `dms devnet up`.
type devnetUpOptions struct {
	nodes     int
	executors []string
	cpu       string
	ram       string
	disk      string
	benchmark time.Duration
}

// devnetUpPlan is what the flags ask for, checked.
type devnetUpPlan struct {
	nodes     int
	executors []string // sorted; each in devnetExecutors
	all       bool     // --executor all: keep what the machine can use
	onboard   api.OnboardRequest
	resources string // for progress lines
	benchMS   int64  // 0: no benchmark
}

// plan checks the flags; every problem is a usage error.
func (o devnetUpOptions) plan() (devnetUpPlan, error) {
	p := devnetUpPlan{nodes: o.nodes}
	if o.nodes < 1 || o.nodes > devnetMaxNodes {
		return p, usagef("--nodes %d: want 1 to %d", o.nodes, devnetMaxNodes)
	}
	for _, e := range o.executors {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "all":
			p.all = true
		case slices.Contains(devnetExecutors, e):
			if !slices.Contains(p.executors, e) {
				p.executors = append(p.executors, e)
			}
		default:
			return p, usagef("--executor %q: want wasm, docker, vm or all (or a list: wasm,docker)", e)
		}
	}
	if p.all {
		if len(p.executors) > 0 {
			return p, usagef("--executor all: give it alone")
		}
		p.executors = slices.Clone(devnetExecutors)
	}
	if len(p.executors) == 0 {
		return p, usagef("--executor: give at least one of wasm, docker, vm or all")
	}
	slices.Sort(p.executors)
	cpu, err := match.ParseCPU(o.cpu)
	if err != nil || cpu <= 0 {
		return p, usagef("--cpu %q: want cores, e.g. 1, 0.5 or 500m", o.cpu)
	}
	ram, err := match.ParseBytes(o.ram)
	if err != nil || ram == 0 {
		return p, usagef("--ram %q: want a size, e.g. 1GiB or 512MiB", o.ram)
	}
	disk, err := match.ParseBytes(o.disk)
	if err != nil || disk == 0 {
		return p, usagef("--disk %q: want a size, e.g. 2GiB", o.disk)
	}
	amount := func(s string) *api.Amount { v := api.Amount(s); return &v }
	p.onboard = api.OnboardRequest{CPU: amount(cpu.String()), RAM: amount(fmt.Sprint(uint64(ram))), Disk: amount(fmt.Sprint(uint64(disk))), NoBenchmark: true}
	p.resources = fmt.Sprintf("cpu %s, ram %s, disk %s", cpu, ram, disk)
	switch {
	case o.benchmark == 0:
	case o.benchmark < time.Second || o.benchmark > time.Minute:
		return p, usagef("--benchmark %s: want 1s to 1m, or 0 to skip it", o.benchmark)
	default:
		p.benchMS = o.benchmark.Milliseconds()
	}
	return p, nil
}

func newDevnetUpCmd(a *app, dir *string) *cobra.Command {
	var o devnetUpOptions
	cmd := &cobra.Command{
		Use:   "up [--nodes N] [--executor wasm|docker|vm|all]",
		Short: "Start N real nodes on loopback, connected, trusting one operator, onboarded",
		Long: `Start a local network of N real nodes on this machine:

  - creates <dir>/node1..nodeN with dms init (one random passphrase for every
    key, in <dir>/passphrase, mode 0600);
  - configures each to listen on 127.0.0.1 only (ports picked by the system),
    mDNS off, DHT on, and only the chosen executors enabled;
  - starts each as a detached ` + "`dms run`" + ` (logs in <dir>/nodeK/dms.log);
  - connects every node to every other;
  - makes node1's user key the operator: every node trusts it for /dms;
  - onboards --cpu, --ram and --disk on every node (and benchmarks the
    machine with --benchmark 1s; by default not, to keep the nodes small);
  - records everything in <dir>/devnet.json.

--executor docker or vm fails when this machine cannot run it (no Docker
engine, no QEMU); --executor all enables every executor and keeps those the
machine can run. The nodes ignore the DMS_* variables of your shell. If a
step fails, the started nodes are stopped and the directory is kept for
its logs: remove it with dms devnet down.`,
		Example: `  dms devnet up --nodes 3
  dms devnet up --nodes 2 --executor docker
  dms devnet up --nodes 5 --executor all --dir /tmp/net --cpu 0.5 --ram 512MiB`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := o.plan()
			if err != nil {
				return err
			}
			d, err := a.devnetDir(*dir)
			if err != nil {
				return err
			}
			return a.devnetUp(d, p)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, fmt.Sprintf("number of nodes (1 to %d)", devnetMaxNodes))
	f.StringSliceVar(&o.executors, "executor", []string{"wasm"}, "executor(s) to enable: wasm, docker, vm, a list (wasm,docker) or all")
	f.StringVar(&o.cpu, "cpu", "1", "cores each node onboards")
	f.StringVar(&o.ram, "ram", "1GiB", "memory each node onboards")
	f.StringVar(&o.disk, "disk", "2GiB", "disk each node onboards")
	f.DurationVar(&o.benchmark, "benchmark", 0, "run each node's machine benchmark for up to this long (1s to 1m; 0, the default, skips it)")
	return cmd
}

// devnetUp is one run of `dms devnet up`.
type devnetUp struct {
	a       *app
	plan    devnetUpPlan
	st      *devnet.State
	bin     string
	env     []string
	procs   []*devnet.Process // by node index; nil until started
	clients []*api.Client     // by node index; nil until its API answers
}

func (a *app) devnetUp(dir string, plan devnetUpPlan) (err error) {
	if err := devnetVacant(dir); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the dms binary: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	pass := filepath.Join(dir, devnetPassphrase)
	if err := writeNew(pass, []byte(newToken()+"\n")); err != nil {
		return fmt.Errorf("write passphrase: %w", err)
	}
	st := &devnet.State{Dir: dir, Created: time.Now().UTC().Truncate(time.Second), Executors: plan.executors, PassphraseFile: pass}
	for i := range plan.nodes {
		name := fmt.Sprintf("node%d", i+1)
		home := filepath.Join(dir, name)
		st.Nodes = append(st.Nodes, devnet.Node{Name: name, Home: home, Log: filepath.Join(home, devnetLog)})
	}
	st.Operator.Home = st.Nodes[0].Home
	if err := st.Save(); err != nil {
		return err
	}
	u := &devnetUp{a: a, plan: plan, st: st, bin: bin, env: devnetEnv(pass),
		procs: make([]*devnet.Process, plan.nodes), clients: make([]*api.Client, plan.nodes)}
	defer func() {
		if err != nil {
			err = u.abort(err)
		}
	}()
	if err := u.run(); err != nil {
		return err
	}
	return a.print(st, func(w io.Writer) error { return printDevnetUp(w, st) })
}

// devnetVacant refuses a directory that holds a devnet or anything else.
func devnetVacant(dir string) error {
	if devnet.Exists(dir) {
		st, err := devnet.Load(dir)
		if err == nil && len(devnetAlive(st)) > 0 {
			return fmt.Errorf("a devnet is already up in %s: stop it with `dms devnet down --dir %s`", dir, dir)
		}
		return fmt.Errorf("%s holds a stopped devnet: remove it with `dms devnet down --dir %s`", dir, dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("devnet directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("%s exists and is not empty: choose another directory with --dir", dir)
	}
	return nil
}

// devnetEnv is the environment of the node processes: ours without the
// DMS_* variables (which would override their configuration), and the
// passphrase file.
func devnetEnv(pass string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DMS_") {
			env = append(env, kv)
		}
	}
	return append(env, "DMS_PASSPHRASE_FILE="+pass)
}

// devnetAlive returns the nodes of st whose process is alive.
func devnetAlive(st *devnet.State) []devnet.Node {
	var live []devnet.Node
	for _, n := range st.Nodes {
		if devnet.Alive(n.PID, n.Home) {
			live = append(live, n)
		}
	}
	return live
}

// progress writes a progress line (or the start of one) on stderr.
func (u *devnetUp) progress(format string, args ...any) {
	fmt.Fprintf(u.a.stderr, format, args...)
}

func (u *devnetUp) run() error {
	ctx := u.a.ctx
	n := len(u.st.Nodes)
	u.progress("creating %d node homes in %s... ", n, u.st.Dir)
	if err := u.each(func(i int) error { return u.initHome(ctx, i) }); err != nil {
		u.progress("failed\n")
		return err
	}
	u.progress("ok\n")
	u.st.Operator.DID = u.st.Nodes[0].UserDID

	if err := u.start(0, nil); err != nil {
		return err
	}
	if err := u.waitReady(ctx, 0); err != nil {
		return err
	}
	if err := u.checkExecutors(ctx); err != nil {
		return err
	}
	boot := []string{"--bootstrap", devnetAddr(u.st.Nodes[0].Addrs)}
	for i := 1; i < n; i++ {
		if err := u.start(i, boot); err != nil {
			return err
		}
	}
	for i := 1; i < n; i++ {
		if err := u.waitReady(ctx, i); err != nil {
			return err
		}
	}

	if n > 1 {
		u.progress("connecting every node to every other... ")
		if err := u.connect(ctx); err != nil {
			u.progress("failed\n")
			return err
		}
		u.progress("ok\n")
		u.progress("trusting the operator %s (node1's user) on every node... ", short(u.st.Operator.DID))
		if err := u.each(func(i int) error { return u.anchor(ctx, i) }); err != nil {
			u.progress("failed\n")
			return err
		}
		u.progress("ok\n")
	}

	what := u.plan.resources
	if u.plan.benchMS > 0 {
		what += fmt.Sprintf(" (benchmark ≤ %s)", fmtSeconds(time.Duration(u.plan.benchMS)*time.Millisecond))
	}
	u.progress("onboarding %s on every node... ", what)
	if err := u.each(func(i int) error { return u.onboard(ctx, i) }); err != nil {
		u.progress("failed\n")
		return err
	}
	u.progress("ok\n")
	return u.st.Save()
}

// each runs fn for every node at once and returns the first error by
// node order.
func (u *devnetUp) each(fn func(i int) error) error {
	errs := make([]error, len(u.st.Nodes))
	var wg sync.WaitGroup
	for i := range u.st.Nodes {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// initHome runs `dms init` for node i and configures its home.
func (u *devnetUp) initHome(ctx context.Context, i int) error {
	node := &u.st.Nodes[i]
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, u.bin, "--home", node.Home, "-o", "json", "init")
	cmd.Env, cmd.Stdout, cmd.Stderr = u.env, &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: dms init: %s", node.Name, firstLine(errb.String(), err))
	}
	var res InitResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return fmt.Errorf("%s: dms init: decode output: %w", node.Name, err)
	}
	node.DID, node.UserDID = string(res.NodeDID), string(res.UserDID)
	if err := devnetConfigure(node.Home, u.plan.executors); err != nil {
		return fmt.Errorf("%s: %w", node.Name, err)
	}
	return nil
}

// devnetConfigure writes the devnet settings into a home's config.yaml.
func devnetConfigure(home string, executors []string) error {
	file, err := config.ReadFile(home)
	if err != nil {
		return err
	}
	on := func(e string) string { return strconv.FormatBool(slices.Contains(executors, e)) }
	for _, kv := range [][2]string{
		{"p2p.listen", "/ip4/127.0.0.1/tcp/0"},
		{"p2p.mdns", "false"}, // a devnet must not find the machine's other nodes
		{"p2p.dht", "true"},
		{"p2p.relay", "false"}, // loopback needs no NAT traversal
		{"p2p.hole_punching", "false"},
		{"api.listen", "127.0.0.1:0"},
		{"executor.wasm.enabled", on("wasm")},
		{"executor.docker.enabled", on("docker")},
		{"executor.vm.enabled", on("vm")},
	} {
		if err := config.Set(&file, kv[0], kv[1]); err != nil {
			return fmt.Errorf("config %s: %w", kv[0], err)
		}
	}
	if err := file.Validate(); err != nil {
		return fmt.Errorf("devnet configuration: %w", err)
	}
	if err := config.Save(home, file); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// start starts node i's `dms run`.
func (u *devnetUp) start(i int, extra []string) error {
	node := &u.st.Nodes[i]
	os.Remove(filepath.Join(node.Home, apiAddrFile))
	args := []string{"--home", node.Home, "--log-format", "json"}
	if u.a.logLevel != "" {
		args = append(args, "--log-level", u.a.logLevel)
	}
	args = append(append(args, "run"), extra...)
	p, err := devnet.Start(devnet.Command{Path: u.bin, Args: args, Env: u.env, Dir: node.Home, Log: node.Log})
	if err != nil {
		return fmt.Errorf("%s: %w", node.Name, err)
	}
	u.procs[i] = p
	node.PID = p.PID
	return u.st.Save()
}

// waitReady waits until node i's API answers, and records its identity.
func (u *devnetUp) waitReady(ctx context.Context, i int) error {
	node := &u.st.Nodes[i]
	u.progress("starting %s... ", node.Name)
	deadline := time.Now().Add(devnetStartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := devnetClient(node.Home); err == nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			self, err := c.Node(rctx)
			cancel()
			if err == nil {
				u.clients[i] = c
				node.PeerID, node.Addrs, node.API = self.PeerID, self.Addrs, devnetAPIAddr(node.Home)
				u.progress("ok (peer %s, API %s)\n", self.PeerID, node.API)
				return u.st.Save()
			}
		}
		select {
		case <-u.procs[i].Exited():
			u.progress("failed\n")
			return fmt.Errorf("%s exited before its API answered: %s (log: %s)", node.Name, lastLogLine(node.Log), node.Log)
		case <-ctx.Done():
			u.progress("interrupted\n")
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			u.progress("failed\n")
			return fmt.Errorf("%s: its API did not answer within %s (log: %s)", node.Name, devnetStartTimeout, node.Log)
		}
	}
}

// checkExecutors checks on node1 that the machine can run the executors
// asked for, and records what each node will offer.
func (u *devnetUp) checkExecutors(ctx context.Context) error {
	snap, err := u.clients[0].Resources(ctx)
	if err != nil {
		return fmt.Errorf("node1: resources: %w", err)
	}
	m := snap.Machine
	usable := m.Executors
	if !u.plan.all {
		for _, e := range u.plan.executors {
			if slices.Contains(usable, e) {
				continue
			}
			switch {
			case e == "docker" && !m.Docker.Reachable:
				return devnetUnusable{fmt.Errorf("--executor docker: no Docker engine answers on this machine (socket %q): start Docker or choose --executor wasm", m.Docker.Socket)}
			case e == "vm" && m.QEMU == "":
				return devnetUnusable{fmt.Errorf("--executor vm: QEMU (qemu-system-%s) is not installed: install it or choose --executor wasm", qemuArchOf(m.CPU.Arch))}
			default:
				// The machine has what it needs, but this dms does not
				// run that executor.
				offers := strings.Join(usable, ", ")
				if offers == "" {
					offers = "no executor"
				}
				return devnetUnusable{fmt.Errorf("--executor %s: this dms does not run %s jobs yet (node1 offers %s)", e, e, offers)}
			}
		}
	} else if missing := slices.DeleteFunc(slices.Clone(devnetExecutors), func(e string) bool { return slices.Contains(usable, e) }); len(missing) > 0 {
		u.progress("executors: %s (not available here: %s)\n", strings.Join(usable, ", "), strings.Join(missing, ", "))
	}
	for i := range u.st.Nodes {
		u.st.Nodes[i].Executors = slices.Clone(usable)
	}
	return nil
}

func qemuArchOf(goarch string) string {
	switch goarch {
	case "amd64", "":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

// connect dials every pair once, then waits until every node lists every
// other as connected.
func (u *devnetUp) connect(ctx context.Context) error {
	nodes := u.st.Nodes
	for j := 1; j < len(nodes); j++ {
		for i := range j {
			if _, err := u.clients[j].Connect(ctx, devnetAddr(nodes[i].Addrs)); err != nil {
				return fmt.Errorf("connect %s to %s: %w", nodes[j].Name, nodes[i].Name, err)
			}
		}
	}
	deadline := time.Now().Add(devnetMeshTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		missing, err := u.missingLinks(ctx)
		if err != nil {
			return err
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s within %s", missing, devnetMeshTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// missingLinks names the first node that does not list another as
// connected, or returns "" when every node lists every other.
func (u *devnetUp) missingLinks(ctx context.Context) (string, error) {
	for i, c := range u.clients {
		peers, err := c.Peers(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: list peers: %w", u.st.Nodes[i].Name, err)
		}
		connected := map[string]bool{}
		for _, p := range peers {
			if p.Connected {
				connected[p.ID] = true
			}
		}
		for j, other := range u.st.Nodes {
			if j != i && !connected[other.PeerID] {
				return fmt.Sprintf("%s is not connected to %s", u.st.Nodes[i].Name, other.Name), nil
			}
		}
	}
	return "", nil
}

// anchor makes node i trust the operator for /dms (node1 trusts its own
// user since dms init).
func (u *devnetUp) anchor(ctx context.Context, i int) error {
	if i == 0 {
		return nil
	}
	req := api.AnchorRequest{Root: u.st.Operator.DID, Cmd: api.CmdRoot}
	if err := u.clients[i].Anchor(ctx, req); err != nil {
		return fmt.Errorf("%s: trust the operator: %w", u.st.Nodes[i].Name, err)
	}
	return nil
}

// onboard onboards node i and runs its benchmark.
func (u *devnetUp) onboard(ctx context.Context, i int) error {
	name := u.st.Nodes[i].Name
	c := u.clients[i]
	if _, err := c.Onboard(ctx, u.plan.onboard); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeRefused {
			return fmt.Errorf("%s: onboard: %w (give less with --cpu, --ram, --disk)", name, err)
		}
		return fmt.Errorf("%s: onboard: %w", name, err)
	}
	if u.plan.benchMS > 0 {
		if _, err := c.Benchmark(ctx, api.BenchmarkRequest{BudgetMS: u.plan.benchMS}); err != nil {
			return fmt.Errorf("%s: benchmark: %w", name, err)
		}
	}
	return nil
}

// devnetUnusable marks a failure that says nothing about the nodes (an
// executor this machine cannot run): abort removes the directory then,
// as it does after an interrupt, since its logs are of no use.
type devnetUnusable struct{ error }

func (e devnetUnusable) Unwrap() error { return e.error }

// abort stops what was started. It keeps the directory for its logs, except
// after an interrupt or an unusable executor.
func (u *devnetUp) abort(cause error) error {
	var procs []devnet.Proc
	for _, n := range u.st.Nodes {
		procs = append(procs, devnet.Proc{PID: n.PID, Home: n.Home})
	}
	// The command's context may be cancelled (Ctrl-C): stopping must
	// still happen.
	if _, err := devnet.Stop(context.Background(), procs, 10*time.Second); err != nil {
		return fmt.Errorf("devnet up: %w; stopping the started nodes failed too: %v (see dms devnet status --dir %s)", cause, err, u.st.Dir)
	}
	var unusable devnetUnusable
	interrupted := errors.Is(cause, context.Canceled)
	if interrupted || errors.As(cause, &unusable) {
		if interrupted {
			cause = errors.New("interrupted")
		}
		if err := os.RemoveAll(u.st.Dir); err != nil {
			return fmt.Errorf("devnet up: %w; stopped its nodes, but removing %s failed: %v", cause, u.st.Dir, err)
		}
		return fmt.Errorf("devnet up: %w; stopped its nodes and removed %s", cause, u.st.Dir)
	}
	_ = u.st.Save()
	return fmt.Errorf("devnet up: %w; stopped its nodes; logs kept in %s (remove with `dms devnet down --dir %s`)", cause, u.st.Dir, u.st.Dir)
}

// devnetClient returns a client for the node of home, from its api.addr
// and api.token.
func devnetClient(home string) (*api.Client, error) {
	addr := devnetAPIAddr(home)
	if addr == "" {
		return nil, fmt.Errorf("no %s in %s", apiAddrFile, home)
	}
	token, err := os.ReadFile(filepath.Join(home, apiTokenFile))
	if err != nil {
		return nil, fmt.Errorf("read API token: %w", err)
	}
	return api.NewClient(api.ClientConfig{Addr: addr, Token: string(token)})
}

// devnetAPIAddr returns the API address the node of home wrote, or "".
func devnetAPIAddr(home string) string {
	data, err := os.ReadFile(filepath.Join(home, apiAddrFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// devnetAddr picks the address to dial a node on: a loopback TCP one when
// there is one.
func devnetAddr(addrs []string) string {
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// lastLogLine returns the last line of a node's log (its message when it
// is a JSON log record), or a placeholder.
func lastLogLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return "empty log"
	}
	var rec struct {
		Msg string `json:"msg"`
		Err string `json:"err"`
	}
	if json.Unmarshal([]byte(last), &rec) == nil && rec.Msg != "" {
		if rec.Err != "" {
			return rec.Msg + ": " + rec.Err
		}
		return rec.Msg
	}
	return last
}

// firstLine returns the first line of a child's stderr, or err.
func firstLine(stderr string, err error) string {
	if s := strings.TrimSpace(stderr); s != "" {
		return strings.SplitN(s, "\n", 2)[0]
	}
	return err.Error()
}

// short abbreviates a DID or peer ID for progress lines.
func short(id string) string {
	if len(id) <= 24 {
		return id
	}
	return id[:16] + "…" + id[len(id)-6:]
}

func printDevnetUp(w io.Writer, st *devnet.State) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tPEER ID\tAPI\tEXECUTORS")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", n.Name, n.PID, n.PeerID, n.API, strings.Join(n.Executors, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
devnet up in %s: %d node(s), logs in <node>/%s
operator %s (node1's user), trusted by every node for /dms; act as it with
  export DMS_HOME=%s DMS_PASSPHRASE_FILE=%s
  dms peers list
status:  dms devnet status --dir %s
stop:    dms devnet down --dir %s
`, st.Dir, len(st.Nodes), devnetLog, st.Operator.DID, st.Operator.Home, st.PassphraseFile, st.Dir, st.Dir)
	return err
}

// devnetNodeStatus is one node in `dms devnet status`.
type devnetNodeStatus struct {
	Name  string `json:"name"`
	Home  string `json:"home"`
	Log   string `json:"log"`
	PID   int    `json:"pid"`
	Alive bool   `json:"alive"`
	// State is running (the API answers), unreachable (the process
	// lives, its API does not answer) or stopped.
	State     string         `json:"state"`
	PeerID    string         `json:"peer_id,omitempty"`
	API       string         `json:"api,omitempty"`
	Peers     int            `json:"peers"` // connected peers
	Onboarded *api.Resources `json:"onboarded"`
	Executors []string       `json:"executors,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// devnetStatus is what `dms devnet status` prints.
type devnetStatus struct {
	Dir            string             `json:"dir"`
	Operator       devnet.Operator    `json:"operator"`
	PassphraseFile string             `json:"passphrase_file"`
	Nodes          []devnetNodeStatus `json:"nodes"`
}

func newDevnetStatusCmd(a *app, dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each node of the devnet: process, peer ID, API, connected peers, onboarded resources",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			d, err := a.devnetDir(*dir)
			if err != nil {
				return err
			}
			st, err := loadDevnet(d)
			if err != nil {
				return err
			}
			s := devnetStatus{Dir: st.Dir, Operator: st.Operator, PassphraseFile: st.PassphraseFile, Nodes: make([]devnetNodeStatus, len(st.Nodes))}
			var wg sync.WaitGroup
			for i, n := range st.Nodes {
				wg.Go(func() { s.Nodes[i] = nodeStatus(a.ctx, n) })
			}
			wg.Wait()
			return a.print(s, func(w io.Writer) error { return printDevnetStatus(w, s) })
		},
	}
}

// loadDevnet loads the devnet in dir, with a helpful error when there is
// none.
func loadDevnet(dir string) (*devnet.State, error) {
	st, err := devnet.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no devnet in %s: start one with `dms devnet up` (or pass --dir)", dir)
	}
	return st, err
}

// nodeStatus asks a node's API how it is.
func nodeStatus(ctx context.Context, n devnet.Node) devnetNodeStatus {
	s := devnetNodeStatus{Name: n.Name, Home: n.Home, Log: n.Log, PID: n.PID, PeerID: n.PeerID, Executors: n.Executors, State: "stopped"}
	s.Alive = devnet.Alive(n.PID, n.Home)
	if !s.Alive {
		return s
	}
	s.State = "unreachable"
	c, err := devnetClient(n.Home)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.API = devnetAPIAddr(n.Home)
	ctx, cancel := context.WithTimeout(ctx, devnetStatusTimeout)
	defer cancel()
	self, err := c.Node(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.State, s.PeerID = "running", self.PeerID
	peers, err := c.Peers(ctx)
	if err != nil {
		s.Error = fmt.Sprintf("list peers: %v", err)
		return s
	}
	for _, p := range peers {
		if p.Connected {
			s.Peers++
		}
	}
	snap, err := c.Resources(ctx)
	if err != nil {
		s.Error = fmt.Sprintf("resources: %v", err)
		return s
	}
	s.Executors = snap.Machine.Executors
	if snap.Onboarded != nil {
		r := snap.Onboarded.Resources
		s.Onboarded = &r
	}
	return s
}

func printDevnetStatus(w io.Writer, s devnetStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATE\tPEER ID\tAPI\tPEERS\tONBOARDED\tEXECUTORS")
	for _, n := range s.Nodes {
		on, api, peers := "-", n.API, strconv.Itoa(n.Peers)
		if n.Onboarded != nil {
			on = fmtResources(*n.Onboarded)
		}
		if api == "" {
			api = "-"
		}
		if n.State != "running" {
			peers = "-"
		}
		state := n.State
		if n.Error != "" {
			state += " (" + n.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.PID, state, n.PeerID, api, peers, on, strings.Join(n.Executors, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\noperator: export DMS_HOME=%s DMS_PASSPHRASE_FILE=%s\n", s.Operator.Home, s.PassphraseFile)
	return err
}

// devnetDown is what `dms devnet down -o json` prints.
type devnetDown struct {
	Dir     string   `json:"dir"`
	Stopped []string `json:"stopped"` // names of the nodes that were running
	Removed bool     `json:"removed"`
}

func newDevnetDownCmd(a *app, dir *string) *cobra.Command {
	var keep bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down [--keep]",
		Short: "Stop every node of the devnet and remove its directory",
		Long: `Stop every node of the devnet (SIGTERM, then SIGKILL to its process group
after --timeout) and remove the devnet directory, unless --keep. Nodes that
already exited are skipped; with no devnet there, it does nothing.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if timeout <= 0 {
				return usagef("--timeout %s: want a positive duration", timeout)
			}
			d, err := a.devnetDir(*dir)
			if err != nil {
				return err
			}
			return a.devnetDown(d, keep, timeout)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the directory (homes, keys, logs)")
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "how long nodes may take to stop after SIGTERM before they are killed")
	return cmd
}

func (a *app) devnetDown(dir string, keep bool, timeout time.Duration) error {
	res := devnetDown{Dir: dir, Stopped: []string{}}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return a.print(res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "no devnet in %s: nothing to stop\n", dir)
			return err
		})
	}
	if !devnet.Exists(dir) {
		return fmt.Errorf("%s is not a devnet (no %s): not touching it", dir, devnet.StateFile)
	}
	st, err := devnet.Load(dir)
	if err != nil {
		return err
	}
	var procs []devnet.Proc
	names := map[int]string{}
	for _, n := range st.Nodes {
		procs = append(procs, devnet.Proc{PID: n.PID, Home: n.Home})
		names[n.PID] = n.Name
	}
	stopped, err := devnet.Stop(a.ctx, procs, timeout)
	for _, p := range stopped {
		res.Stopped = append(res.Stopped, names[p.PID])
	}
	if err != nil {
		return fmt.Errorf("stop the devnet in %s: %w", dir, err)
	}
	if !keep {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		res.Removed = true
	}
	return a.print(res, func(w io.Writer) error {
		msg := fmt.Sprintf("stopped %d node(s)", len(res.Stopped))
		if len(res.Stopped) > 0 {
			msg += " (" + strings.Join(res.Stopped, ", ") + ")"
		}
		if res.Removed {
			msg += "; removed " + dir
		} else {
			msg += "; kept " + dir
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	})
}
