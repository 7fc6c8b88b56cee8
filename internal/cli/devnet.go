package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/match"
)

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
	discovery time.Duration
}

// devnetUpPlan is what the flags ask for, checked.
type devnetUpPlan struct {
	nodes     int
	executors []string // sorted; each in devnet.Executors
	all       bool     // --executor all: keep what the machine can use
	onboard   api.OnboardRequest
	resources string // for progress lines
	benchMS   int64  // 0: no benchmark
	// meshGrace is devnet.UpConfig.MeshGrace: negative dials at once.
	meshGrace time.Duration
}

// plan checks the flags; every problem is a usage error.
func (o devnetUpOptions) plan() (devnetUpPlan, error) {
	p := devnetUpPlan{nodes: o.nodes}
	if o.nodes < 1 || o.nodes > devnet.MaxNodes {
		return p, usagef("--nodes %d: want 1 to %d", o.nodes, devnet.MaxNodes)
	}
	for _, e := range o.executors {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "all":
			p.all = true
		case slices.Contains(devnet.Executors, e):
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
		p.executors = slices.Clone(devnet.Executors)
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
	switch {
	case o.discovery < 0 || o.discovery > 10*time.Minute:
		return p, usagef("--discovery %s: want 0 to 10m", o.discovery)
	case o.discovery == 0:
		p.meshGrace = -1
	default:
		p.meshGrace = o.discovery
	}
	return p, nil
}

func newDevnetUpCmd(a *app, dir *string) *cobra.Command {
	var o devnetUpOptions
	cmd := &cobra.Command{
		Use:   "up [--nodes N] [--executor wasm|docker|vm|all] [--discovery D]",
		Short: "Start N real nodes on loopback, connected, trusting one operator, onboarded",
		Long: `Start a local network of N real nodes on this machine:

  - creates <dir>/node1..nodeN with dms init (one random passphrase for every
    key, in <dir>/passphrase, mode 0600);
  - configures each to listen on 127.0.0.1 only (ports picked by the system),
    mDNS off, DHT on, and only the chosen executors enabled;
  - starts each as a detached ` + "`dms run`" + ` (logs in <dir>/nodeK/dms.log);
  - waits for the nodes' discovery to connect them (--discovery, 5s by
    default), then dials every pair still apart;
  - makes node1's user key the operator: every node trusts it for /dms;
  - onboards --cpu, --ram and --disk on every node (and benchmarks the
    machine with --benchmark 1s; by default not, to keep the nodes small);
  - records everything in <dir>/devnet.json.

Only wasm is enabled unless --executor says otherwise: the Docker examples
need --executor wasm,docker, and a job whose executor no node offers waits
in the queue. --executor docker or vm fails when this machine cannot run it
(no Docker engine, no QEMU); --executor all enables every executor and keeps those the
machine can run. The nodes ignore the DMS_* variables of your shell. If a
step fails, the started nodes are stopped and the directory is kept for
its logs: remove it with dms devnet down.`,
		Example: `  dms devnet up --nodes 3
  dms devnet up --nodes 3 --executor wasm,docker
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
	f.IntVar(&o.nodes, "nodes", 3, fmt.Sprintf("number of nodes (1 to %d)", devnet.MaxNodes))
	f.StringSliceVar(&o.executors, "executor", []string{"wasm"}, "executor(s) to enable: wasm, docker, vm, a list (wasm,docker) or all")
	f.StringVar(&o.cpu, "cpu", "1", "cores each node onboards")
	f.StringVar(&o.ram, "ram", "1GiB", "memory each node onboards")
	f.StringVar(&o.disk, "disk", "2GiB", "disk each node onboards")
	f.DurationVar(&o.benchmark, "benchmark", 0, "run each node's machine benchmark for up to this long (1s to 1m; 0, the default, skips it)")
	f.DurationVar(&o.discovery, "discovery", devnet.MeshGrace, "how long the nodes' own discovery may connect them before up dials the pairs still apart (0: dial at once)")
	return cmd
}

// devnetUp is `dms devnet up`: devnet.Up, its progress on stderr, the
// devnet on stdout.
func (a *app) devnetUp(dir string, plan devnetUpPlan) error {
	if err := devnetVacant(dir); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the dms binary: %w", err)
	}
	st, err := devnet.Up(a.ctx, devnet.UpConfig{
		Dir: dir, Nodes: plan.nodes, Executors: plan.executors, KeepUsable: plan.all, Onboard: plan.onboard,
		Benchmark: time.Duration(plan.benchMS) * time.Millisecond, Binary: bin, LogLevel: a.logLevel, MeshGrace: plan.meshGrace,
		Progress: a.devnetProgress(plan),
	})
	if err != nil {
		return devnetUpError(err)
	}
	return a.print(st, func(w io.Writer) error { return printDevnetUp(w, st) })
}

// devnetProgress prints Up's steps on stderr, a line each.
func (a *app) devnetProgress(plan devnetUpPlan) func(devnet.Event) {
	return func(e devnet.Event) {
		w := a.stderr
		if e.Done {
			switch {
			case e.Step == devnet.StepExecutors:
				if len(e.Missing) > 0 {
					fmt.Fprintf(w, "executors: %s (not available here: %s)\n", strings.Join(e.Usable, ", "), strings.Join(e.Missing, ", "))
				}
			case e.Err == nil && e.Step == devnet.StepStart:
				fmt.Fprintf(w, "ok (peer %s, API %s)\n", e.Node.PeerID, e.Node.API)
			case e.Err == nil && e.Step == devnet.StepMesh && e.State.Mesh != nil:
				m := e.State.Mesh
				if m.Discovered {
					fmt.Fprintf(w, "ok (discovery connected them in %s)\n", fmtSeconds(time.Duration(m.TookMS)*time.Millisecond))
				} else {
					fmt.Fprintf(w, "ok in %s (%d pairs apart after %s of discovery: dialed)\n", fmtSeconds(time.Duration(m.TookMS)*time.Millisecond),
						m.Apart, fmtSeconds(time.Duration(m.GraceMS)*time.Millisecond))
				}
			case e.Err == nil:
				fmt.Fprintln(w, "ok")
			case e.Step == devnet.StepStart && errors.Is(e.Err, context.Canceled):
				fmt.Fprintln(w, "interrupted")
			default:
				fmt.Fprintln(w, "failed")
			}
			return
		}
		switch e.Step {
		case devnet.StepHomes:
			fmt.Fprintf(w, "creating %d node homes in %s... ", len(e.State.Nodes), e.State.Dir)
		case devnet.StepStart:
			fmt.Fprintf(w, "starting %s... ", e.Node.Name)
		case devnet.StepMesh:
			fmt.Fprint(w, "connecting every node to every other... ")
		case devnet.StepTrust:
			fmt.Fprintf(w, "trusting the operator %s (node1's user) on every node... ", short(e.State.Operator.DID))
		case devnet.StepOnboard:
			what := plan.resources
			if plan.benchMS > 0 {
				what += fmt.Sprintf(" (benchmark ≤ %s)", fmtSeconds(time.Duration(plan.benchMS)*time.Millisecond))
			}
			fmt.Fprintf(w, "onboarding %s on every node... ", what)
		}
	}
}

// devnetUpError phrases a failed devnet up for the command line: the
// flags that help, and what became of the directory.
func devnetUpError(err error) error {
	var ue *devnet.UpError
	if !errors.As(err, &ue) {
		return err
	}
	cause := ue.Err
	var ae *api.Error
	var unusable *devnet.UnusableError
	switch {
	case errors.Is(cause, context.Canceled):
		cause = errors.New("interrupted")
	case errors.As(cause, &unusable):
		cause = unusableExecutor(unusable)
	case errors.As(cause, &ae) && ae.Code == api.CodeRefused:
		cause = fmt.Errorf("%w (give less with --cpu, --ram, --disk)", cause)
	}
	switch {
	case ue.StopErr != nil:
		return fmt.Errorf("devnet up: %w; stopping the started nodes failed too: %v (see dms devnet status --dir %s)", cause, ue.StopErr, ue.Dir)
	case ue.RemoveErr != nil:
		return fmt.Errorf("devnet up: %w; stopped its nodes, but removing %s failed: %v", cause, ue.Dir, ue.RemoveErr)
	case ue.Removed:
		return fmt.Errorf("devnet up: %w; stopped its nodes and removed %s", cause, ue.Dir)
	}
	return fmt.Errorf("devnet up: %w; stopped its nodes; logs kept in %s (remove with `dms devnet down --dir %s`)", cause, ue.Dir, ue.Dir)
}

// unusableExecutor says why this machine cannot run an executor, and
// what to do.
func unusableExecutor(e *devnet.UnusableError) error {
	switch {
	case e.DockerSocket != "":
		return fmt.Errorf("--executor docker: no Docker engine answers on this machine (socket %q): start Docker or choose --executor wasm", e.DockerSocket)
	case e.QEMU != "":
		return fmt.Errorf("--executor vm: QEMU (%s) is not installed: install it or choose --executor wasm", e.QEMU)
	}
	offers := strings.Join(e.Offers, ", ")
	if offers == "" {
		offers = "no executor"
	}
	return fmt.Errorf("--executor %s: this dms does not run %s jobs yet (node1 offers %s)", e.Executor, e.Executor, offers)
}

// devnetVacant refuses a directory that holds a devnet or anything else.
func devnetVacant(dir string) error {
	if devnet.Exists(dir) {
		st, err := devnet.Load(dir)
		if err == nil && len(st.Alive()) > 0 {
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
`, st.Dir, len(st.Nodes), devnet.LogFile, st.Operator.DID, st.Operator.Home, st.PassphraseFile, st.Dir, st.Dir)
	return err
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
			s := st.Status(a.ctx)
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

func printDevnetStatus(w io.Writer, s devnet.Status) error {
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
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		res := devnet.Stopped{Dir: dir, Stopped: []string{}}
		return a.print(res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "no devnet in %s: nothing to stop\n", dir)
			return err
		})
	}
	res, err := devnet.Down(a.ctx, dir, keep, timeout)
	if err != nil {
		return err
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
