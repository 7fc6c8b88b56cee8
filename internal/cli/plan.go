package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// exitUnplaced is dms plan's exit code when some node of the ensemble
// cannot be placed.
const exitUnplaced = 3

// planGrantTTL is how long the delegation dms plan signs is valid: one bid
// round, with room for a slow node.
const planGrantTTL = 10 * time.Minute

func newPlanCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show where an ensemble would be placed, and why not elsewhere, without deploying it",
		Long: `Plan an ensemble as nomad job plan does: the local node runs one bid round
as a deployment would, but providers answer a dry run (/dms/deployment/plan):
they reserve nothing and sign nothing, so nothing can be committed and nothing
is deployed. plan prints where each node of the ensemble would land and, for
every provider that would not host a node, why not.

The user key signs a delegation of /dms/deployment/plan only (not
/dms/deployment) to the local node, valid 10 minutes; providers answer it
when they trust the user for deployments.

Exit codes: 0 every node placed, 3 some node cannot be placed now, 1 any other
failure, 2 bad usage.`,
		Example: `  dms plan -f examples/hello.yaml
  dms plan -f job.yaml -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f FILE is required")
			}
			dreq, _, err := a.deployRequest(file)
			if err != nil {
				return err
			}
			p, err := a.plan(dreq.Ensemble)
			if err != nil {
				return err
			}
			if err := a.print(p, func(w io.Writer) error { return printPlan(w, p) }); err != nil {
				return err
			}
			if len(p.Unplaced) > 0 {
				return exitError{code: exitUnplaced}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the ensemble (YAML)")
	return cmd
}

// plan asks the local node for a dry-run bid round of an ensemble (YAML),
// signing a short delegation of api.CmdPlan to it with the user key.
func (a *app) plan(ensemble string) (*api.Plan, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	n, err := c.Node(a.ctx)
	if err != nil {
		return nil, err
	}
	user, err := a.loadKey("user")
	if err != nil {
		return nil, err
	}
	d, err := cap.Delegate(user, cap.DelegationParams{Audience: identity.DID(n.DID), Command: api.CmdPlan, Expiry: time.Now().Add(planGrantTTL)})
	if err != nil {
		return nil, err
	}
	text, err := cap.Chain{d}.Encode()
	if err != nil {
		return nil, err
	}
	return c.Plan(a.ctx, api.PlanRequest{Ensemble: ensemble, Chains: []string{text}})
}

func printPlan(w io.Writer, p *api.Plan) error {
	placed := len(p.Placement)
	fmt.Fprintf(w, "plan %s: %d of %d nodes placed (%d providers asked, %d answered); nothing deployed, nothing reserved\n",
		p.ID, placed, placed+len(p.Unplaced), p.Asked, p.Answered)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if placed > 0 {
		fmt.Fprintln(tw, "\nNODE\tPROVIDER\tSCORE\tCOST/H")
		for _, pn := range p.Placement {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\n", pn.Node, pn.Provider, pn.Score, pn.Cost)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Unplaced) > 0 {
		fmt.Fprintf(w, "\nUNPLACED: %s", strings.Join(p.Unplaced, ", "))
		if len(p.Stuck) > 0 && len(p.Stuck) < len(p.Unplaced) {
			fmt.Fprintf(w, " (no provider for %s; an ensemble is placed all or nothing)", strings.Join(p.Stuck, ", "))
		}
		fmt.Fprintln(w)
	}
	if len(p.Candidates) > 0 {
		fmt.Fprintln(w, "\nWHY NOT")
		for _, c := range p.Candidates {
			fmt.Fprintf(w, "  %s\n", candidateLine(c))
		}
	}
	return nil
}

// probeEnsemble is what dms nodes --refresh plans: the smallest job, so
// that every provider answers with its offer (whether or not it could run
// it).
const probeEnsemble = `version: v1
allocations:
  probe:
    executor: docker
    resources: {cpu: 0.1, ram: 16MiB}
    execution: {image: busybox}
`

func newNodesCmd(a *app) *cobra.Command {
	var refresh bool
	cmd := &cobra.Command{
		Use:   "nodes [--refresh]",
		Short: "List the providers this node knows: location, executors, free resources, price, last seen",
		Long: `List the providers this node knows from the bid rounds of its deployments and
plans (not only the peers it is connected to): what each offered the last time
it answered, and when that was. The node keeps the 1024 seen most recently.

--refresh first runs a dry-run bid round (as dms plan does, for a tiny job;
nothing is reserved), so that every provider that answers now is listed with
what it offers now.`,
		Example: `  dms nodes --refresh
  dms nodes -o json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if refresh {
				if _, err := a.plan(probeEnsemble); err != nil {
					return fmt.Errorf("refresh: %w", err)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ps, err := c.Providers(a.ctx)
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []api.Provider{}
			}
			now := time.Now()
			return a.print(ps, func(w io.Writer) error {
				if len(ps) == 0 {
					_, err := fmt.Fprintln(w, "no provider known yet: dms nodes --refresh asks the network")
					return err
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PEER\tLOCATION\tEXECUTORS\tFREE\tPRICE/H\tLAST SEEN")
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\n", p.Peer, nodesLocation(p.Location), nodesDash(strings.Join(p.Executors, ",")),
						nodesFree(p.Free), p.Price, now.Sub(p.LastSeen).Round(time.Second))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&refresh, "refresh", false, "run a dry-run bid round first (nothing is reserved)")
	return cmd
}

func nodesLocation(l api.Location) string {
	var parts []string
	for _, s := range []string{l.City, l.Subdivision, l.Country, l.Continent} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return nodesDash(strings.Join(parts, ", "))
}

func nodesFree(r api.Resources) string {
	s := fmt.Sprintf("cpu %g, ram %s, disk %s", r.CPU, match.Bytes(r.RAM), match.Bytes(r.Disk))
	if len(r.GPUs) > 0 {
		s += fmt.Sprintf(", %d gpu", len(r.GPUs))
	}
	return s
}

func nodesDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
