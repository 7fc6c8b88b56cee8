//go:build linux

// Command featureenv starts a feature environment (e2e/featureenv) and
// keeps it up until interrupted: dms nodes in Docker containers, grouped
// in regions, with latency between regions. The traffic shaping runs in
// this process, so it stays in the foreground; Ctrl-C removes everything.
//
//	go run ./e2e/featureenv/cmd/featureenv -regions eu:2,us:2,ap:1 -latency 50ms
//	docker exec dmsfe-<run>-eu-1 dms peers ping <peer ID of us-1>
//
// It must run as root on the machine of the Docker engine (see
// docs/feature-environment.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dmsnet/dms/e2e/featureenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "featureenv:", strings.TrimPrefix(err.Error(), "featureenv: "))
		os.Exit(1)
	}
}

func run() error {
	regions := flag.String("regions", "eu:2,us:2,ap:1", "regions and their node counts, name:count,...")
	latency := flag.Duration("latency", 50*time.Millisecond, "round trip added between two regions")
	loss := flag.Float64("loss", 0, "probability a packet between regions is lost, each way (0 to <1)")
	bin := flag.String("bin", "", "a statically linked dms (default: $DMS_FEATUREENV_BIN, else built from this checkout)")
	cpu := flag.String("onboard", "", "cores every node but the operator onboards, e.g. 1 (default: none)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	rs := map[string]int{}
	for _, part := range strings.Split(*regions, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			return fmt.Errorf("-regions %q: want name:count,..., e.g. eu:2,us:2,ap:1", *regions)
		}
		rs[name] = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	env, err := featureenv.Start(ctx, featureenv.Config{Regions: rs, InterRegionLatency: *latency, Loss: *loss, Binary: *bin, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		logf("featureenv: removing run %s...", env.RunID())
		if err := env.Close(); err != nil {
			logf("%v", err)
		}
	}()
	if *cpu != "" {
		for _, n := range env.Nodes()[1:] {
			if err := n.Run(ctx, "onboard", "--cpu", *cpu, "--ram", "1GiB", "--disk", "1GiB"); err != nil {
				return err
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREGION\tADDRESS\tPEER ID\tCONTAINER")
	for _, n := range env.Nodes() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Region, n.IP, n.PeerID, n.Container())
	}
	tw.Flush()
	op := env.Operator()
	fmt.Printf("\noperator: %s (every node trusts its user for /dms); act as it with\n  docker exec -it %s dms peers list\n", op.Name, op.Container())
	fmt.Println("Ctrl-C stops the environment and removes its containers, network and homes.")
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
