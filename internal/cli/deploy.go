package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

// The command prefixes the user delegates to their node when deploying.
var deployCommands = []string{api.CmdDeployment, api.CmdAllocation}

func newDeployCmd(a *app) *cobra.Command {
	var file string
	var follow, detach bool
	var timeout, grantTTL time.Duration
	var secrets []string
	cmd := &cobra.Command{
		Use:   "deploy -f FILE [--follow] [--timeout D] [--secret NAME=FILE]...",
		Short: "Deploy an ensemble on the network and wait for its result",
		Long: `Deploy an ensemble: the local node's orchestrator asks providers for bids,
places the ensemble's nodes, commits, starts the allocations in dependency
order and supervises them.

deploy prints a line per phase on stderr and waits: for a job of tasks until it
ends, exiting with its exit code; for services until they run. --follow also
streams the allocations' logs (stdout and stderr) as they run. --detach returns
once the deployment is accepted.

Ctrl-C stops waiting, not the deployment: deploy exits 130 (143 on SIGTERM)
and says whether anything was submitted and how to follow or stop what was
(dms deployment shutdown ID). docs/cli.md lists the exit codes.

Local files the ensemble references (wasm modules, vm images) are read relative
to the ensemble file and shipped with it. The user key (passphrase from
$DMS_PASSPHRASE, $DMS_PASSPHRASE_FILE or a prompt) signs a delegation of
/dms/deployment and /dms/allocation to the local node, valid --grant-ttl:
providers run the job because they trust the user, not the node.

--secret NAME=FILE gives a secret the ensemble names (an s3 volume's
credentials.secret): FILE holds access_key_id=..., secret_access_key=... and
optionally session_token=... lines (or a JSON object of them); - reads it from
stdin. Every secret the ensemble names must be given, and only those. The node
keeps them sealed and gives each, sealed to its key, only to a provider whose
allocations use it; they never appear in status, events or logs.`,
		Example: `  dms deploy -f examples/hello.yaml --follow
  dms deploy -f job.yaml --detach && dms deployment status ID
  dms deploy -f train.yaml --secret data-keys=~/.dms/data.env --secret results-keys=- < results.env`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f FILE is required")
			}
			req, spec, err := a.deployRequest(file)
			if err != nil {
				return err
			}
			if req.Secrets, err = a.deploySecrets(secrets, spec); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := a.ctx
			n, err := c.Node(ctx)
			if err != nil {
				return a.notSubmitted(err)
			}
			user, err := a.loadKey("user")
			if err != nil {
				return a.notSubmitted(err)
			}
			for _, cmdPrefix := range deployCommands {
				d, err := cap.Delegate(user, cap.DelegationParams{Audience: identity.DID(n.DID), Command: cmdPrefix, Expiry: time.Now().Add(grantTTL)})
				if err != nil {
					return err
				}
				text, err := cap.Chain{d}.Encode()
				if err != nil {
					return err
				}
				req.Chains = append(req.Chains, text)
			}
			d, err := a.submit(c, req)
			if err != nil {
				return a.notSubmitted(err)
			}
			if in, ok := interruption(ctx); ok {
				return fmt.Errorf("%v: submitted as deployment %s; it goes on (dms deployment status %s; stop it with dms deployment shutdown %s)", in, d.ID, d.ID, d.ID)
			}
			if detach {
				return a.print(d, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, d.ID)
					return err
				})
			}
			fmt.Fprintf(a.stderr, "deployment %s submitted (%d allocations)\n", d.ID, len(spec.Allocations))
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return a.watchDeployment(ctx, c, d, follow, hasService(spec))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the ensemble (YAML)")
	cmd.Flags().BoolVar(&follow, "follow", false, "stream the allocations' logs while waiting")
	cmd.Flags().BoolVar(&detach, "detach", false, "print the deployment ID and return at once")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop waiting after this long (the deployment goes on); 0 waits until it ends")
	cmd.Flags().DurationVar(&grantTTL, "grant-ttl", 30*24*time.Hour, "how long the node may act for you on this deployment")
	cmd.Flags().StringArrayVar(&secrets, "secret", nil, "NAME=FILE: a secret the ensemble names, from a credentials file (- for stdin); repeatable")
	return cmd
}

func hasService(spec *ensemble.Spec) bool {
	for _, a := range spec.Allocations {
		if a.Type == ensemble.Service {
			return true
		}
	}
	return false
}

// deployRequest parses and validates the ensemble and ships its local files.
func (a *app) deployRequest(file string) (api.DeployRequest, *ensemble.Spec, error) {
	var req api.DeployRequest
	data, err := os.ReadFile(file)
	if err != nil {
		return req, nil, fmt.Errorf("read ensemble: %w", err)
	}
	spec, err := ensemble.Parse(data)
	var probs ensemble.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintf(a.stderr, "%s: %s\n", file, p)
		}
		if hint := translateHint(file, data); hint != "" {
			fmt.Fprintln(a.stderr, hint)
		}
		return req, nil, exitError{code: exitFailure}
	}
	if err != nil {
		if hint := translateHint(file, data); hint != "" {
			return req, nil, fmt.Errorf("%s: %w; %s", file, err, hint)
		}
		return req, nil, fmt.Errorf("%s: %w", file, err)
	}
	req.Artifacts, err = shipFiles(spec, filepath.Dir(file))
	if err != nil {
		return req, nil, err
	}
	out, err := ensemble.Marshal(spec)
	if err != nil {
		return req, nil, err
	}
	req.Ensemble = string(out)
	return req, spec, nil
}

// shipFiles reads the local files spec refers to, relative to dir, replaces
// each reference with the file's sha256 reference and returns the files by
// digest. Each file is read and hashed once however many allocations refer
// to it (an ensemble of a thousand copies of one task names one module a
// thousand times).
func shipFiles(spec *ensemble.Spec, dir string) (map[string][]byte, error) {
	artifacts := map[string][]byte{}
	digests := map[string]string{} // by cleaned path
	err := spec.ReplaceFiles(func(f ensemble.FileRef) (string, error) {
		p := f.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		p = filepath.Clean(p)
		if d, ok := digests[p]; ok {
			return d, nil
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", f.File, err)
		}
		sum := sha256.Sum256(content)
		digest := ensemble.DigestPrefix + hex.EncodeToString(sum[:])
		artifacts[digest] = content
		digests[p] = digest
		return digest, nil
	})
	return artifacts, err
}

// watchDeployment prints progress until the deployment ends (or, with
// services, runs), streams logs with follow, and returns the job's exit code
// as an exitError.
func (a *app) watchDeployment(ctx context.Context, c *api.Client, d *api.Deployment, follow, services bool) error {
	logsDone := make(chan error, 1)
	logging := false
	startLogs := func() {
		if logging || !follow {
			return
		}
		logging = true
		multi := len(d.Allocations) > 1
		go func() {
			logsDone <- c.DeploymentLogs(ctx, d.ID, "", true, func(l api.LogLine) { a.printLog(l, multi) })
		}()
	}
	prog := newProgress(follow, services)
	report := func(d *api.Deployment) {
		for _, l := range prog.lines(d) {
			fmt.Fprintln(a.stderr, l)
		}
	}
	report(d)
	for {
		if d.State == "provisioning" || d.State == "running" || d.Terminal() {
			startLogs()
		}
		if d.Terminal() || services && d.State == "running" && !follow {
			break
		}
		next, err := c.Deployment(ctx, d.ID, d.Version, 30*time.Second)
		if err != nil {
			if in, ok := interruption(ctx); ok {
				return fmt.Errorf("%v: deployment %s goes on; follow it again with dms deployment logs -f %s, stop it with dms deployment shutdown %s", in, d.ID, d.ID, d.ID)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting; deployment %s goes on (dms deployment status %s)", d.ID, d.ID)
			}
			return err
		}
		d = next
		report(d)
	}
	if logging {
		select {
		case err := <-logsDone:
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(a.stderr, "logs: %v\n", err)
			}
		case <-time.After(10 * time.Second):
		}
	}
	if a.json() {
		a.print(d, nil)
	}
	if d.State == "running" {
		fmt.Fprintf(a.stderr, "deployment %s running (dms deployment shutdown %s to stop it)\n", d.ID, d.ID)
		return nil
	}
	code := 0
	if d.ExitCode != nil {
		code = *d.ExitCode
	} else if d.State != "completed" {
		code = 1
	}
	fmt.Fprintf(a.stderr, "deployment %s %s (exit %d)\n", d.ID, d.State, code)
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

func candidateLine(c api.DeploymentCandidate) string {
	peer := c.Peer
	if len(peer) > 16 {
		peer = peer[:8] + "…" + peer[len(peer)-6:]
	}
	line := fmt.Sprintf("%s for %s: %s", peer, c.Node, c.Kind)
	if len(c.Reasons) > 0 {
		line += " (" + strings.Join(c.Reasons, "; ") + ")"
	}
	return line
}

func newDeploymentsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "deployments",
		Short: "List the deployments this node orchestrates",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Deployments(a.ctx)
			if err != nil {
				return err
			}
			return a.print(ds, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tALLOCATIONS\tEXIT\tCREATED\tMESSAGE")
				for _, d := range ds {
					exit := "-"
					if d.ExitCode != nil {
						exit = fmt.Sprint(*d.ExitCode)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.State, len(d.Allocations), exit, d.Created.Local().Format("2006-01-02 15:04:05"), d.Message)
				}
				return tw.Flush()
			})
		},
	}
}

func newDeploymentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployment",
		Short: "Inspect or stop one deployment: status, events, logs, exec, results, usage, trace, shutdown",
		Long: `Inspect or stop one deployment: status, events, logs, exec, results, usage, trace, shutdown.

ID is a deployment ID or any unique prefix of it, of 4 characters or more
(dk3f for dk3fq7zt2mbx4); an allocation name may be shortened the same way.
A prefix matching several deployments is refused with the candidates.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status ID",
		Short: "Show a deployment: state, placement, allocations, last events, and why not placed",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Deployment(a.ctx, args[0], 0, 0)
			if err != nil {
				return err
			}
			return a.print(d, func(w io.Writer) error { return printDeployment(w, d, time.Now()) })
		},
	})
	cmd.AddCommand(newDeploymentEventsCmd(a))
	cmd.AddCommand(newDeploymentLogsCmd(a))
	cmd.AddCommand(newDeploymentExecCmd(a))
	cmd.AddCommand(newDeploymentResultsCmd(a))
	cmd.AddCommand(newDeploymentUsageCmd(a))
	cmd.AddCommand(newDeploymentTraceCmd(a))
	cmd.AddCommand(&cobra.Command{
		Use:   "shutdown ID",
		Short: "Stop a deployment and release its resources",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.ShutdownDeployment(a.ctx, args[0])
			if err != nil {
				return err
			}
			for !d.Terminal() {
				if d, err = c.Deployment(a.ctx, d.ID, d.Version, 30*time.Second); err != nil {
					return err
				}
			}
			return a.print(d, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "deployment %s %s\n", d.ID, d.State)
				return err
			})
		},
	})
	return cmd
}

// printDeployment writes the human form of dms deployment status; now
// decides which event times need their date.
func printDeployment(w io.Writer, d *api.Deployment, now time.Time) error {
	fmt.Fprintf(w, "id        %s\nstate     %s\n", d.ID, d.State)
	if d.Reason != "" {
		fmt.Fprintf(w, "reason    %s\n", d.Reason)
	}
	if d.Message != "" {
		fmt.Fprintf(w, "message   %s\n", d.Message)
	}
	if d.ExitCode != nil {
		fmt.Fprintf(w, "exit      %d\n", *d.ExitCode)
	}
	fmt.Fprintf(w, "created   %s\nowner     %s\nrounds    %d\n", d.Created.Local().Format(time.RFC3339), d.Owner, d.Round)
	if d.Orchestrator != "" {
		fmt.Fprintf(w, "orchestrator %s\n", d.Orchestrator)
	}
	if len(d.Standbys) > 0 {
		fmt.Fprintf(w, "standbys  %s\n", strings.Join(d.Standbys, ", "))
	}
	if d.Subnet != "" {
		fmt.Fprintf(w, "subnet    %s\n", d.Subnet)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(d.Placement) > 0 {
		fmt.Fprintln(tw, "\nNODE\tPROVIDER\tSCORE\tCOST/H")
		sort.Slice(d.Placement, func(i, j int) bool { return d.Placement[i].Node < d.Placement[j].Node })
		for _, p := range d.Placement {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\n", p.Node, p.Provider, p.Score, p.Cost)
		}
	}
	if len(d.Allocations) > 0 {
		// The ATTEMPT column appears once an allocation was redeployed.
		attempts := slices.ContainsFunc(d.Allocations, func(al api.DeploymentAlloc) bool { return al.Attempt > 1 })
		// The ADDRESS column appears when the deployment has a subnet.
		addresses := d.Subnet != ""
		head := "\nALLOCATION\tNODE\t"
		if addresses {
			head += "ADDRESS\t"
		}
		head += "STATE\t"
		if attempts {
			head += "ATTEMPT\t"
		}
		fmt.Fprintln(tw, head+"RESTARTS\tEXIT\tPORTS\tMESSAGE")
		for _, al := range d.Allocations {
			exit := "-"
			if al.ExitCode != nil {
				exit = fmt.Sprint(*al.ExitCode)
			}
			ports := "-"
			if len(al.Ports) > 0 {
				ports = strings.Join(al.Ports, ",")
			}
			state := al.State
			if attempts {
				state += "\t" + strconv.Itoa(max(al.Attempt, 1))
			}
			if addresses {
				addr := al.Address
				if addr == "" {
					addr = "-"
				}
				state = addr + "\t" + state
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", al.Name, al.Node, state, al.Restarts, exit, ports, al.Message)
		}
	}
	if len(d.Candidates) > 0 {
		fmt.Fprintln(tw, "\nWHY NOT (last bid round)\t\t\t\t\t\t")
		for _, c := range d.Candidates {
			fmt.Fprintf(tw, "  %s\t\t\t\t\t\t\n", candidateLine(c))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printRecentEvents(w, d, now)
	return nil
}

// printLog writes a log line to stdout or stderr, as its stream was; with
// several allocations (multi) each line is prefixed with its allocation.
func (a *app) printLog(l api.LogLine, multi bool) {
	w := a.stdout
	if l.Stream == "stderr" {
		w = a.stderr
	}
	if !multi {
		io.WriteString(w, l.Data)
		return
	}
	for _, line := range strings.SplitAfter(l.Data, "\n") {
		if line != "" {
			fmt.Fprintf(w, "[%s] %s", l.Allocation, line)
		}
	}
}
