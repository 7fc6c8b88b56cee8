// Command devnetscale measures devnets of growing size (docs/PERFORMANCE.md,
// "Scale: a hundred real nodes"): for each size it runs `dms devnet up`,
// measures the devnet with scalebench, prints a row, and runs `dms devnet
// down`. bench/run-devnet-scale.sh builds what it needs and runs it.
//
//	go run ./bench/devnetscale -bin bin/dms -job examples/hello.yaml -nodes 10,30,100
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dmsnet/dms/internal/devnet"
	"github.com/dmsnet/dms/internal/devnet/scalebench"
)

func main() {
	bin := flag.String("bin", "bin/dms", "the dms binary")
	job := flag.String("job", "examples/hello.yaml", "a small wasm task to plan and deploy")
	sizes := flag.String("nodes", "10,30,100", "devnet sizes, comma-separated")
	samples := flag.Int("samples", 10, "broadcasts and bid rounds per size")
	settle := flag.Duration("settle", 10*time.Second, "pause between up and the idle window")
	idle := flag.Duration("idle", 30*time.Second, "idle window")
	discovery := flag.Duration("discovery", 3*time.Minute, "how long up lets discovery connect the nodes before dialing (dms devnet up --discovery)")
	base := flag.String("dir", "", "directory for the devnets (default: a temporary one)")
	flag.Parse()
	if err := run(*bin, *job, *sizes, *samples, *settle, *idle, *discovery, *base); err != nil {
		fmt.Fprintln(os.Stderr, "devnetscale:", err)
		os.Exit(1)
	}
}

func run(bin, job, sizes string, samples int, settle, idle, discovery time.Duration, base string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	var ns []int
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > devnet.MaxNodes {
			return fmt.Errorf("-nodes %q: want sizes of 2 to %d", f, devnet.MaxNodes)
		}
		ns = append(ns, n)
	}
	if base == "" {
		if base, err = os.MkdirTemp("", "devnetscale"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	var rows []string
	for _, n := range ns {
		row, err := measure(ctx, bin, job, base, n, samples, settle, idle, discovery)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		rows = append(rows, row)
		fmt.Fprintln(os.Stderr, header)
		fmt.Fprintln(os.Stderr, row)
	}
	fmt.Println(header)
	fmt.Println(strings.Repeat("|---", strings.Count(header, "|")-1) + "|")
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

const header = "| nodes | up | discovery: full mesh | peers | gossip reach-all p50 / p99 | bid round p50 / p99 (answered) | idle RSS total / per node | idle CPU total / per node | deploy → running | load |"

// measure brings up a devnet of n nodes, measures it and takes it down.
func measure(ctx context.Context, bin, job, base string, n, samples int, settle, idle, discovery time.Duration) (string, error) {
	dir := filepath.Join(base, fmt.Sprintf("net%d", n))
	say := func(s string) { fmt.Fprintf(os.Stderr, "[%d nodes %s] %s\n", n, time.Now().Format("15:04:05"), s) }
	say("dms devnet up")
	began := time.Now()
	up := exec.CommandContext(ctx, bin, "devnet", "up", "--nodes", strconv.Itoa(n), "--dir", dir,
		"--discovery", discovery.String(), "--cpu", "1", "--ram", "512MiB", "--disk", "1GiB")
	up.Stdout, up.Stderr = nil, os.Stderr
	upErr := up.Run()
	took := time.Since(began)
	defer func() {
		down := exec.Command(bin, "devnet", "down", "--dir", dir)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		_ = down.Run()
	}()
	if upErr != nil {
		return "", fmt.Errorf("devnet up: %w", upErr)
	}
	st, err := devnet.Load(dir)
	if err != nil {
		return "", err
	}
	r, err := scalebench.Measure(ctx, scalebench.Config{Bin: bin, State: st, Job: job, Samples: samples, Settle: settle, Idle: idle, Progress: say})
	if err != nil {
		return "", err
	}
	mesh := "-"
	if m := st.Mesh; m != nil {
		mesh = fmt.Sprintf("%.1f s", float64(m.TookMS)/1000)
		if !m.Discovered {
			mesh += fmt.Sprintf(" (%d pairs apart after %.0f s of discovery, dialed)", m.Apart, float64(m.GraceMS)/1000)
		}
	}
	ms := func(d scalebench.Dist) string {
		if d.N == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f / %.0f ms", d.P50, d.P99)
	}
	return fmt.Sprintf("| %d | %.0f s (start %.0f s) | %s | %d–%d | %s (%d of %d reached, %d samples) | %s (%d of %d) | %.0f MB / %.0f MB (max %.0f) | %.0f %% / %.2f %% | %.0f ms (%s) | %.1f |",
		n, took.Seconds(), float64(st.Times.StartMS)/1000, mesh, r.PeersMin, r.PeersMax,
		ms(r.Gossip), r.Reached, n-1, r.Gossip.N, ms(r.Bid), r.Answered, r.Asked,
		r.Idle.RSSTotalMB, r.Idle.RSSPerNodeMB, r.Idle.RSSMaxMB, r.Idle.CPUPercent, r.Idle.CPUPerNode,
		r.Deploy, r.DeployState, r.Load[0]), nil
}
