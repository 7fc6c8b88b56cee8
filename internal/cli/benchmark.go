package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/resource"
)

// BenchmarkResult is what `dms benchmark -o json` prints: the scores and
// where the disk was measured.
type BenchmarkResult struct {
	resource.Scores
	DataDir string `json:"data_dir"`
}

func newBenchmarkCmd(a *app) *cobra.Command {
	var dir string
	var budget time.Duration
	var local bool
	cmd := &cobra.Command{
		Use:   "benchmark",
		Short: "Measure this machine (CPU, memory, disk, GPU) and store the scores in the running node",
		Long: `Measure this machine: CPU single- and multi-core points from a fixed workload
(1000 ≈ one core of the reference machine), memory copy bandwidth, sequential
disk write and read and fsync latency in the data directory, and a probe of
each GPU. The run takes at most --budget.

When this home's node is running, the node runs the benchmark and stores the
scores (shown by dms resources, used in its bids); --budget then defaults to
the node's resources.benchmark_budget and may be 1s to 1m. Without a running
node (or with --local or --dir), it runs here and only prints.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if budget <= 0 {
				return usagef("--budget %s: want a positive duration such as 10s", budget)
			}
			if !local && dir == "" {
				if c, ok := a.runningNode(); ok {
					var req api.BenchmarkRequest
					if cmd.Flags().Changed("budget") {
						if budget < time.Second || budget > time.Minute {
							return usagef("--budget %s: a running node takes 1s to 1m (or measure here with --local)", budget)
						}
						req.BudgetMS = budget.Milliseconds()
					}
					res, err := c.Benchmark(a.ctx, req)
					if err != nil {
						return err
					}
					return a.print(res, func(w io.Writer) error {
						var r BenchmarkResult
						if err := convertJSON(res, &r); err != nil {
							return err
						}
						if err := printBenchmark(w, r); err != nil {
							return err
						}
						_, err := fmt.Fprintln(w, "stored in the running node (dms resources shows it)")
						return err
					})
				}
				fmt.Fprintln(a.stderr, "no running node: measuring here; the scores are printed, not stored")
			}
			if dir == "" {
				dir = a.benchmarkDir()
			}
			m, err := resource.Detect(cmd.Context(), resource.DetectConfig{DataDir: dir, DockerSocket: "-", KVMDevice: "-"})
			if err != nil {
				return err
			}
			s, err := resource.Run(cmd.Context(), resource.BenchConfig{DataDir: dir, Budget: budget, GPUs: m.GPUs})
			if err != nil {
				return err
			}
			res := BenchmarkResult{Scores: s, DataDir: dir}
			return a.print(res, func(w io.Writer) error { return printBenchmark(w, res) })
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to measure the disk in (default <home>/data, else the home, else the temporary directory)")
	cmd.Flags().DurationVar(&budget, "budget", resource.DefaultBudget, "longest the whole run may take")
	cmd.Flags().BoolVar(&local, "local", false, "measure here and print, even when a node is running (nothing is stored)")
	return cmd
}

// convertJSON copies in into out, two types of the same JSON shape.
func convertJSON(in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// benchmarkDir is the node's data directory when the home exists, else a
// directory that does.
func (a *app) benchmarkDir() string {
	for _, d := range []string{a.path(dataDir), a.home} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return os.TempDir()
}

func printBenchmark(w io.Writer, r BenchmarkResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "benchmark v%d\t%.1f s, disk in %s\n", r.Version, r.Seconds, r.DataDir)
	fmt.Fprintf(tw, "cpu single\t%.0f points\n", r.CPUSingle)
	fmt.Fprintf(tw, "cpu multi\t%.0f points (%d threads)\n", r.CPUMulti, r.Threads)
	fmt.Fprintf(tw, "memory\t%.0f MB/s\n", r.MemoryMBps)
	fmt.Fprintf(tw, "disk write\t%.0f MB/s (%s, synced)\n", r.DiskWriteMBps, r.DiskBytes)
	fmt.Fprintf(tw, "disk read\t%.0f MB/s\n", r.DiskReadMBps)
	fmt.Fprintf(tw, "fsync\tp50 %.0f µs, p99 %.0f µs\n", r.FsyncP50, r.FsyncP99)
	if len(r.GPUs) == 0 {
		fmt.Fprintf(tw, "gpu\tnone\n")
	}
	for _, g := range r.GPUs {
		if g.OK {
			fmt.Fprintf(tw, "gpu #%d\tanswers in %.0f ms, max clock %.0f MHz\n", g.Index, g.LatencyMS, g.MaxClockMHz)
		} else {
			fmt.Fprintf(tw, "gpu #%d\tprobe failed: %s\n", g.Index, g.Error)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	return tw.Flush()
}
