package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/contract"
)

// newContractCmd is `dms contract list|show|verify`.
func newContractCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contract",
		Short: "Show the contracts of your deployments and of the work this node runs, and verify their notes",
		Long: `Show the contracts this node keeps (docs/contracts.md): as requester, one
per placed node of the deployments it orchestrates; as provider, one per
placement it runs. A contract is the terms both nodes signed (price,
resources, metering interval, budget); its notes are the provider's signed,
cumulative statements of usage and amount, countersigned by the requester.

CONTRACT is a contract ID or any unique prefix of it, of 4 characters or more.`,
	}
	cmd.AddCommand(newContractListCmd(a), newContractShowCmd(a), newContractVerifyCmd(a))
	return cmd
}

func newContractListCmd(a *app) *cobra.Command {
	var deployment string
	cmd := &cobra.Command{
		Use:   "list [--deployment ID]",
		Short: "List the contracts, newest first: role, state, notes, amount so far and owed",
		Args:  noArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cs, err := c.Contracts(a.ctx, deployment)
			if err != nil {
				return err
			}
			if cs == nil {
				cs = []api.Contract{}
			}
			return a.print(cs, func(w io.Writer) error { return printContracts(w, cs) })
		},
	}
	cmd.Flags().StringVar(&deployment, "deployment", "", "only the contracts of this deployment")
	return cmd
}

func newContractShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show CONTRACT",
		Short: "Show a contract's terms and notes; -o json prints its signed chain (for dms contract verify --file)",
		Long: `Show a contract: its terms, this node's side and state, and every note with
its usage, amount and whether the requester countersigned it.

-o json prints the signed chain itself, the bodies as signed: save it and
anyone can check it offline with dms contract verify --file.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Contract(a.ctx, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeChain(a.stdout, &d.Chain)
			}
			return a.print(d, func(w io.Writer) error { return printContract(w, d) })
		},
	}
}

func newContractVerifyCmd(a *app) *cobra.Command {
	var file string
	var all bool
	cmd := &cobra.Command{
		Use:   "verify [CONTRACT] [--file FILE] [--all]",
		Short: "Check a contract's signed chain here: both signatures, every note, amounts and countersignatures",
		Long: `Check a contract's chain locally, trusting neither node's word: the contract's
ID is the hash of its terms and both parties signed it; every note is signed
by the provider, follows the one before it (seq, hash), never lowers a
counter, and states the amount the contract's price gives for its usage; a
countersignature is the requester's. Each note names the hash of the one
before it, so the provider's signature of the last note covers them all, and
the requester's of the last countersigned one accepts its cumulative amount;
--all also checks every note's own signatures (about 100 µs a note). The
chain is fetched from the node (CONTRACT) or read from FILE (what dms
contract show -o json printed).

It prints what the chain proves: the notes, how many are countersigned, the
amount of the last and the amount owed (the last countersigned). A chain
that does not verify fails with the reason (exit code 1).`,
		Example: `  dms contract verify 3f9a
  dms contract show 3f9a -o json > chain.json && dms contract verify --file chain.json`,
		Args: rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			var ch *api.ContractChain
			switch {
			case file != "" && len(args) == 1:
				return usagef("give a CONTRACT or --file FILE, not both")
			case file != "":
				var err error
				if ch, err = readContractChain(file); err != nil {
					return err
				}
			case len(args) == 1:
				c, err := a.client()
				if err != nil {
					return err
				}
				d, err := c.Contract(a.ctx, args[0])
				if err != nil {
					return err
				}
				ch = &d.Chain
			default:
				return usagef("give a CONTRACT to fetch from the node, or --file FILE")
			}
			res, err := verifyChain(ch, all)
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error { return printVerified(w, res) })
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "verify the chain in this file (dms contract show -o json) instead of fetching it")
	cmd.Flags().BoolVar(&all, "all", false, "also check every note's own signatures, not only those that carry the chain")
	return cmd
}

// verified is what dms contract verify prints.
type verified struct {
	Contract string `json:"contract"`
	contract.Summary
}

// verifyChain checks a chain with contract.VerifyChain, or
// contract.VerifyChainAll (every note's signatures) when all.
func verifyChain(ch *api.ContractChain, all bool) (verified, error) {
	cc, err := chainOf(ch)
	if err != nil {
		return verified{}, err
	}
	verify := contract.VerifyChain
	if all {
		verify = contract.VerifyChainAll
	}
	sum, err := verify(cc)
	if err != nil {
		return verified{}, fmt.Errorf("contract %s: the chain does not verify: %w", cc.Contract.ID, err)
	}
	return verified{Contract: cc.Contract.ID, Summary: sum}, nil
}

// chainOf is the contract package's form of a chain from the API, the
// bodies as signed (never re-encoded).
func chainOf(ch *api.ContractChain) (*contract.Chain, error) {
	if ch.Contract == nil {
		return nil, fmt.Errorf("the chain has no contract")
	}
	if err := ch.Compact(); err != nil {
		return nil, err
	}
	out := &contract.Chain{
		Contract: &contract.Contract{ID: ch.Contract.ID, Body: ch.Contract.Body, RequesterSig: ch.Contract.RequesterSig, ProviderSig: ch.Contract.ProviderSig},
		Notes:    make([]contract.SignedNote, 0, len(ch.Notes)),
	}
	for _, n := range ch.Notes {
		out.Notes = append(out.Notes, contract.SignedNote{Hash: n.Hash, Body: n.Body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig})
	}
	return out, nil
}

// readContractChain reads a chain file: what dms contract show -o json printed,
// or the whole answer of GET /api/v1/contracts/{id}.
func readContractChain(file string) (*api.ContractChain, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Chain *api.ContractChain `json:"chain"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a contract chain (JSON of dms contract show -o json): %w", file, err)
	}
	if probe.Chain != nil {
		return probe.Chain, nil
	}
	var ch api.ContractChain
	if err := json.Unmarshal(data, &ch); err != nil {
		return nil, fmt.Errorf("%s: not a contract chain (JSON of dms contract show -o json): %w", file, err)
	}
	if ch.Contract == nil {
		return nil, fmt.Errorf("%s: not a contract chain: no contract in it (JSON of dms contract show -o json)", file)
	}
	return &ch, nil
}

// writeChain prints a chain as compact JSON with its bodies exactly as
// signed: an indenting or HTML-escaping encoder would change their bytes.
func writeChain(w io.Writer, ch *api.ContractChain) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ch); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func printVerified(w io.Writer, v verified) error {
	final := "running (no invoice yet)"
	if v.Final {
		final = "final (the last note is the invoice)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "contract\t%s: signed by both parties\n", v.Contract)
	fmt.Fprintf(tw, "notes\t%d verified, %d countersigned; %s\n", v.Notes, v.Accepted, final)
	fmt.Fprintf(tw, "usage\t%s\n", fmtContractUsage(api.ContractUsage{CPUMicros: v.Usage.CPUMicros, MemoryByteSeconds: v.Usage.MemoryByteSeconds, WallMillis: v.Usage.WallMillis, NetBytes: v.Usage.NetBytes}))
	fmt.Fprintf(tw, "amount\t%s\n", v.Amount)
	fmt.Fprintf(tw, "owed\t%s (the last countersigned note)\n", v.Owed)
	return tw.Flush()
}

func printContracts(w io.Writer, cs []api.Contract) error {
	if len(cs) == 0 {
		_, err := fmt.Fprintln(w, "no contracts")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTRACT\tDEPLOYMENT\tNODE\tROLE\tPEER\tSTATE\tNOTES\tAMOUNT\tOWED\tREASON")
	for _, c := range cs {
		peer := c.Provider
		if c.Role == "provider" {
			peer = c.Requester
		}
		state := c.State
		if c.Final {
			state += " (final)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", shortID(c.ID), c.Deployment, c.Node, c.Role, short(peer), state, c.Notes, orZero(c.Amount), orZero(c.Owed), c.Reason)
	}
	return tw.Flush()
}

func printContract(w io.Writer, d *api.ContractDetail) error {
	c := d.Contract
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "contract\t%s\n", c.ID)
	fmt.Fprintf(tw, "deployment\t%s, node %s, allocations %s\n", c.Deployment, c.Node, strings.Join(c.Allocations, ", "))
	fmt.Fprintf(tw, "role\t%s\n", c.Role)
	state := c.State
	if c.Reason != "" {
		state += ": " + c.Reason
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	if c.Refusal != "" {
		fmt.Fprintf(tw, "refused\t%s (the last note not countersigned)\n", c.Refusal)
	}
	fmt.Fprintf(tw, "requester\t%s\n", c.Requester)
	if c.User != "" {
		fmt.Fprintf(tw, "user\t%s\n", c.User)
	}
	fmt.Fprintf(tw, "provider\t%s\n", c.Provider)
	fmt.Fprintf(tw, "price\t%s\n", fmtContractPrice(c.Price))
	fmt.Fprintf(tw, "interval\t%s\n", time.Duration(c.IntervalMS)*time.Millisecond)
	budget := "none"
	if c.Budget != "" {
		budget = string(c.Budget) + " for the deployment"
	}
	fmt.Fprintf(tw, "budget\t%s\n", budget)
	fmt.Fprintf(tw, "settlement\t%s\n", c.Settlement)
	fmt.Fprintf(tw, "created\t%s (updated %s)\n", c.Created.Local().Format(time.DateTime), c.Updated.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "amount\t%s so far, %s owed (countersigned)\n", orZero(c.Amount), orZero(c.Owed))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Chain.Notes) == 0 {
		_, err := fmt.Fprintln(w, "\nno notes yet")
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tCPU\tMEMORY\tWALL\tAMOUNT\tCOUNTERSIGNED\tHASH")
	for _, sn := range d.Chain.Notes {
		var n contract.Note
		if err := json.Unmarshal(sn.Body, &n); err != nil {
			fmt.Fprintf(tw, "?\t\t\t\t\t\t\t%s (does not decode: %v)\n", shortID(sn.Hash), err)
			continue
		}
		seq := fmt.Sprint(n.Seq)
		if n.Final {
			seq += " final"
		}
		signed := "no"
		if len(sn.RequesterSig) > 0 {
			signed = "yes"
		}
		u := api.ContractUsage{CPUMicros: n.Usage.CPUMicros, MemoryByteSeconds: n.Usage.MemoryByteSeconds, WallMillis: n.Usage.WallMillis}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", seq, n.Time.Local().Format(time.TimeOnly), fmtCPUTime(u), fmtMemory(u), fmtWall(u), n.Amount, signed, shortID(sn.Hash))
	}
	return tw.Flush()
}

// newDeploymentUsageCmd is `dms deployment usage ID`.
func newDeploymentUsageCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "usage ID",
		Short: "Show what a deployment's contracts metered and cost: per provider and in total",
		Long: `Show what a deployment's contracts metered and cost, from their notes: per
contract the provider, the allocations, CPU time, memory (GiB-hours in use),
wall time, the amount so far (the last note's) and the amount owed (the last
note the requester countersigned), its state and why it stopped; then the
totals and the budget.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			u, err := c.DeploymentUsage(a.ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(u, func(w io.Writer) error { return printUsage(w, u) })
		},
	}
}

func printUsage(w io.Writer, u *api.DeploymentUsage) error {
	if len(u.Contracts) == 0 {
		_, err := fmt.Fprintf(w, "deployment %s has no contracts on this node (nothing placed yet)\n", u.Deployment)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPROVIDER\tALLOCATIONS\tCPU\tMEMORY\tWALL\tAMOUNT\tOWED\tSTATE")
	for _, c := range u.Contracts {
		state := c.State
		if c.Final {
			state += " (final)"
		}
		if c.Reason != "" {
			state += ": " + c.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Node, short(c.Provider), strings.Join(c.Allocations, ","), fmtCPUTime(c.Usage), fmtMemory(c.Usage), fmtWall(c.Usage), orZero(c.Amount), orZero(c.Owed), state)
	}
	fmt.Fprintf(tw, "total\t\t\t%s\t%s\t%s\t%s\t%s\t\n", fmtCPUTime(u.Usage), fmtMemory(u.Usage), fmtWall(u.Usage), orZero(u.Amount), orZero(u.Owed))
	if err := tw.Flush(); err != nil {
		return err
	}
	budget := "no budget"
	if u.Budget != "" {
		budget = "budget " + string(u.Budget)
	}
	_, err := fmt.Fprintln(w, budget)
	return err
}

func fmtContractUsage(u api.ContractUsage) string {
	return fmt.Sprintf("cpu %s, memory %s, wall %s", fmtCPUTime(u), fmtMemory(u), fmtWall(u))
}

// fmtCPUTime writes CPU time in seconds: "1.234 s".
func fmtCPUTime(u api.ContractUsage) string {
	return fmt.Sprintf("%.3f s", float64(u.CPUMicros)/1e6)
}

// fmtMemory writes memory in use over time in GiB-hours, the unit of the
// RAM price.
func fmtMemory(u api.ContractUsage) string {
	return fmt.Sprintf("%.6f GiB·h", float64(u.MemoryByteSeconds)/(1<<30)/3600)
}

func fmtWall(u api.ContractUsage) string {
	return (time.Duration(u.WallMillis) * time.Millisecond).String()
}

func fmtContractPrice(p api.ContractPrice) string {
	var parts []string
	for _, x := range []struct {
		kind, unit string
		v          api.Money
	}{{"cpu", "core", p.CPU}, {"ram", "GiB", p.RAM}, {"disk", "GiB", p.Disk}, {"gpu", "GPU", p.GPU}} {
		if x.v != "" && x.v != "0" {
			parts = append(parts, fmt.Sprintf("%s %s/%s-hour", x.kind, x.v, x.unit))
		}
	}
	if len(parts) == 0 {
		return "free"
	}
	return strings.Join(parts, ", ")
}

func fmtLedger(b *api.LedgerBalance) string {
	return fmt.Sprintf("paid %s, received %s, escrowed %s", orZero(b.Paid), orZero(b.Received), orZero(b.Escrowed))
}

func orZero(m api.Money) api.Money {
	if m == "" {
		return "0"
	}
	return m
}

// shortID abbreviates a contract ID or hash (hex SHA-256) for tables.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return id[:12]
}
