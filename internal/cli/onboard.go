package cli

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/match"
)

func newOnboardCmd(a *app) *cobra.Command {
	var cpu, ram, disk, price string
	var gpus []string
	cmd := &cobra.Command{
		Use:   "onboard [--cpu N] [--ram SIZE] [--disk SIZE] [--gpu INDEX[:VRAM]]... [--price P]",
		Short: "Dedicate part of this machine to the network, or change the dedication",
		Long: `Dedicate CPU, memory, disk and GPUs of this machine to the network: the
running node bids for jobs with them.

The node refuses more than the machine has minus the reserve it keeps for
the host (config resources.reserve_*), and says how much is available.
Running onboard again changes the dedication in place: only the flags given
change, and it cannot go below what allocations hold.

The first onboarding benchmarks the machine (at most
resources.benchmark_budget, 10 s by default); ` + "`dms resources`" + ` shows the scores.

Sizes take units (512MiB, 2GB, 1.5GiB); CPU is cores (1, 1.5) or millicores
(500m); --price is per core-hour (0.5) or per unit
(cpu=0.5,ram=0.1,disk=0.01,gpu=2; RAM and disk per GiB-hour).`,
		Example: `  dms onboard --cpu 2 --ram 4GiB --disk 20GiB
  dms onboard --ram 8GiB                 # change only the memory
  dms onboard --gpu 0 --gpu 1:8GiB       # all of card 0, 8GiB of card 1
  dms onboard --gpu none                 # withdraw every GPU
  dms onboard --price cpu=0.5,ram=0.1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := onboardRequest(cmd.Flags(), cpu, ram, disk, gpus, price)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// The benchmark runs as a second step so that its progress
			// shows only once the onboarding is accepted.
			req.NoBenchmark = true
			res, err := c.Onboard(a.ctx, req)
			if err != nil {
				return err
			}
			if res.BenchmarkDue {
				budget := "10 s"
				if snap, err := c.Resources(a.ctx); err == nil && snap.BenchmarkBudgetMS > 0 {
					budget = fmtSeconds(time.Duration(snap.BenchmarkBudgetMS) * time.Millisecond)
				}
				fmt.Fprintf(a.stderr, "benchmarking this machine (≤ %s)...\n", budget)
				b, err := c.Benchmark(a.ctx, api.BenchmarkRequest{})
				if err != nil {
					return fmt.Errorf("onboarded, but the benchmark failed (run `dms benchmark`): %w", err)
				}
				res.Benchmark, res.Benchmarked, res.BenchmarkDue = &b.Scores, true, false
			}
			return a.print(res, func(w io.Writer) error { return printOnboard(w, res) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&cpu, "cpu", "", "cores to dedicate: 2, 1.5, 500m")
	f.StringVar(&ram, "ram", "", "memory to dedicate: 4GiB, 512MiB")
	f.StringVar(&disk, "disk", "", "disk (in the data directory) to dedicate: 20GiB")
	f.StringArrayVar(&gpus, "gpu", nil, "a GPU to dedicate, INDEX or INDEX:VRAM (repeat for several; none withdraws all); the list replaces the current one")
	f.StringVar(&price, "price", "", "price per core-hour (0.5), or per unit (cpu=0.5,ram=0.1,disk=0.01,gpu=2)")
	return cmd
}

// onboardRequest checks the flags that were given and builds the request
// from them; a flag not given is left out (kept as it is when onboarded).
// Malformed values are usage errors.
func onboardRequest(f *pflag.FlagSet, cpu, ram, disk string, gpus []string, price string) (api.OnboardRequest, error) {
	var req api.OnboardRequest
	amount := func(s string) *api.Amount { a := api.Amount(s); return &a }
	if f.Changed("cpu") {
		v, err := match.ParseCPU(cpu)
		if err != nil {
			return req, usagef("--cpu: %v", err)
		}
		req.CPU = amount(v.String())
	}
	if f.Changed("ram") {
		v, err := match.ParseBytes(ram)
		if err != nil {
			return req, usagef("--ram: %v", err)
		}
		req.RAM = amount(fmt.Sprint(uint64(v)))
	}
	if f.Changed("disk") {
		v, err := match.ParseBytes(disk)
		if err != nil {
			return req, usagef("--disk: %v", err)
		}
		req.Disk = amount(fmt.Sprint(uint64(v)))
	}
	if f.Changed("gpu") {
		list := []string{}
		for _, g := range gpus {
			if g == "none" {
				if len(gpus) > 1 {
					return req, usagef("--gpu none withdraws every GPU: give it alone")
				}
				break
			}
			v, err := match.ParseGPUFlag(g)
			if err != nil {
				return req, usagef("--gpu: %v", err)
			}
			s := fmt.Sprint(v.Index)
			if v.VRAM > 0 {
				s += fmt.Sprintf(":%d", uint64(v.VRAM))
			}
			list = append(list, s)
		}
		req.GPUs = &list
	}
	if f.Changed("price") {
		v, err := match.ParsePrice(price)
		if err != nil {
			return req, usagef("--price: %v", err)
		}
		req.Price = amount(v.String())
	}
	if req.CPU == nil && req.RAM == nil && req.Disk == nil && req.GPUs == nil && req.Price == nil {
		return req, usagef("nothing to onboard: give at least one of --cpu, --ram, --disk, --gpu, --price")
	}
	return req, nil
}

func newOffboardCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "offboard",
		Short: "Withdraw everything this machine dedicated to the network",
		Long: `Withdraw every resource from the network: the node stops bidding. It is
refused while allocations still hold resources (stop their deployments
first). Pending bids are dropped.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Offboard(a.ctx)
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "offboarded: %s\n", fmtResources(res.Offboarded.Resources))
				return err
			})
		},
	}
}

func newResourcesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "resources",
		Short: "Show this machine, what it onboarded, allocated and free, and its benchmark",
		Long: `Show the running node's resource accounting: the machine as detected, its
capacity, the reserve kept for the host, what is available to onboard, what
is onboarded, allocated to running work, reserved by pending bids and free,
the last benchmark's scores, and the node's ledger account (what it paid and
received under contracts, and what it holds in escrow for their budgets).
-o json prints every field.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			snap, err := c.Resources(a.ctx)
			if err != nil {
				return err
			}
			return a.print(snap, func(w io.Writer) error { return printResources(w, snap) })
		},
	}
}

func printOnboard(w io.Writer, r *api.OnboardResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "onboarded\t%s\n", fmtResources(r.Onboarded.Resources))
	fmt.Fprintf(tw, "price\t%s\n", fmtPrice(r.Onboarded.Price))
	if r.Benchmark != nil {
		fmt.Fprintf(tw, "benchmark\t%s\n", fmtScores(r.Benchmark))
	}
	if r.Warning != "" {
		fmt.Fprintf(tw, "warning\t%s\n", r.Warning)
	}
	return tw.Flush()
}

func printResources(w io.Writer, s *api.ResourceSnapshot) error {
	m := s.Machine
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cpu := fmt.Sprintf("%s %s, %d cores, %d threads", m.CPU.Vendor, m.CPU.Model, m.CPU.Cores, m.CPU.Threads)
	if m.CPU.MHz > 0 {
		cpu += fmt.Sprintf(", %.0f MHz", m.CPU.MHz)
	}
	fmt.Fprintf(tw, "machine\t%s (%s)\n", strings.TrimSpace(cpu), m.CPU.Arch)
	fmt.Fprintf(tw, "\tmemory %s, disk %s free of %s in %s\n", match.Bytes(m.RAM.Total), match.Bytes(m.Disk.Free), match.Bytes(m.Disk.Total), m.Disk.Path)
	for _, g := range m.GPUs {
		fmt.Fprintf(tw, "\tgpu %s\n", fmtGPU(g.GPU))
	}
	fmt.Fprintf(tw, "\t%s, kernel %s; executors %s\n", m.OS.Name, m.OS.Kernel, strings.Join(m.Executors, ", "))
	if loc := (match.Location{Continent: m.Location.Continent, Country: m.Location.Country, Subdivision: m.Location.Subdivision, City: m.Location.City}); loc != (match.Location{}) {
		fmt.Fprintf(tw, "\tlocation %s\n", loc)
	}
	for _, x := range m.Warnings {
		fmt.Fprintf(tw, "\twarning: %s\n", x)
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "\tCPU\tRAM\tDISK\tGPUS")
	row := func(name string, r api.Resources) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, match.MilliCPU(math.Round(r.CPU*1000)), match.Bytes(r.RAM), match.Bytes(r.Disk), fmtGPUList(r.GPUs))
	}
	row("capacity", s.Capacity)
	row("reserve", s.Reserve)
	row("available", s.Available)
	if s.Onboarded == nil {
		fmt.Fprintln(tw, "onboarded\tnothing\t\t\t")
	} else {
		row("onboarded", s.Onboarded.Resources)
		row("allocated", s.Allocated)
		row("reserved", s.Reserved)
		row("free", s.Free)
	}
	fmt.Fprintln(tw, "\t")
	if s.Onboarded == nil {
		fmt.Fprintln(tw, "offer\tdms onboard --cpu N --ram SIZE --disk SIZE")
	} else {
		fmt.Fprintf(tw, "price\t%s\n", fmtPrice(s.Onboarded.Price))
		fmt.Fprintf(tw, "since\t%s (changed %s)\n", s.Onboarded.Since.Local().Format(time.DateTime), s.Onboarded.Updated.Local().Format(time.DateTime))
		fmt.Fprintf(tw, "work\t%d allocation(s), %d reservation(s)\n", len(s.Allocations), len(s.Reservations))
	}
	switch {
	case s.Benchmark == nil:
		fmt.Fprintln(tw, "benchmark\tnone yet (onboarding runs it; or dms benchmark)")
	default:
		b := s.Benchmark
		due := ""
		if s.BenchmarkDue {
			due = " — outdated, run dms benchmark"
		}
		fmt.Fprintf(tw, "benchmark\tv%d at %s, %.1f s%s\n", b.Version, b.Time.Local().Format(time.DateTime), b.Seconds, due)
		fmt.Fprintf(tw, "\t%s\n", fmtScores(b))
	}
	if s.Ledger != nil {
		fmt.Fprintf(tw, "ledger\t%s\n", fmtLedger(s.Ledger))
	}
	return tw.Flush()
}

func fmtScores(b *api.Scores) string {
	return fmt.Sprintf("cpu %.0f single / %.0f multi points, memory %.0f MB/s, disk write %.0f MB/s read %.0f MB/s, fsync p50 %.0f µs",
		b.CPUSingle, b.CPUMulti, b.MemoryMBps, b.DiskWriteMBps, b.DiskReadMBps, b.FsyncP50)
}

func fmtResources(r api.Resources) string {
	s := fmt.Sprintf("cpu %s, ram %s, disk %s", match.MilliCPU(math.Round(r.CPU*1000)), match.Bytes(r.RAM), match.Bytes(r.Disk))
	if len(r.GPUs) > 0 {
		s += ", gpus " + fmtGPUList(r.GPUs)
	}
	return s
}

func fmtGPU(g api.GPU) string {
	return match.GPU{Index: g.Index, Vendor: g.Vendor, Model: g.Model, VRAM: match.Bytes(g.VRAM)}.String()
}

func fmtGPUList(gs []api.GPU) string {
	if len(gs) == 0 {
		return "-"
	}
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = fmtGPU(g)
	}
	return strings.Join(s, " + ")
}

func fmtPrice(p api.Price) string {
	if p == (api.Price{}) {
		return "free"
	}
	var parts []string
	for _, x := range []struct {
		kind, unit string
		v          float64
	}{{"cpu", "core", p.CPU}, {"ram", "GiB", p.RAM}, {"disk", "GiB", p.Disk}, {"gpu", "GPU", p.GPU}} {
		if x.v != 0 {
			parts = append(parts, fmt.Sprintf("%s %g/%s-hour", x.kind, x.v, x.unit))
		}
	}
	return strings.Join(parts, ", ")
}

// fmtSeconds writes a duration as people say it: "10 s", "2.5 s".
func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%g s", d.Round(100*time.Millisecond).Seconds())
}
