package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
)

// The job network: containers with network "" or bridge join it instead of
// Docker's default bridge, so that the firewall rules below apply to them
// and to nothing else on the machine.
const (
	// JobNetwork is the Docker network of jobs.
	JobNetwork = "dms-jobs"
	// jobBridge is its Linux bridge, which the rules match on.
	jobBridge = "dms-jobs0"
	// chainForward holds the rules for traffic the host forwards from the
	// job network (to other machines: a cloud metadata service), jumped to
	// from DOCKER-USER; chainInput those for traffic to the host itself,
	// jumped to from INPUT.
	chainForward = "DMS-JOBS"
	chainInput   = "DMS-JOBS-INPUT"
	ruleComment  = "dms: job network block list"
)

// BlockHost in Config.BlockNetworks stands for every address of this
// machine.
const BlockHost = "host"

// DefaultBlockNetworks is what jobs may not reach when Config.BlockNetworks
// is nil: link-local addresses (where clouds put their metadata service,
// 169.254.169.254, and IPv6's fe80::/10) and the host itself.
var DefaultBlockNetworks = []string{"169.254.0.0/16", "fe80::/10", BlockHost}

// ParseBlockNetworks checks a block list: CIDR prefixes, or BlockHost. It
// returns the prefixes and whether the host is blocked.
func ParseBlockNetworks(list []string) (prefixes []netip.Prefix, host bool, err error) {
	var errs []error
	for _, s := range list {
		if s == BlockHost {
			host = true
			continue
		}
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			errs = append(errs, fmt.Errorf("%q: want a CIDR prefix such as 169.254.0.0/16, or %q", s, BlockHost))
			continue
		}
		prefixes = append(prefixes, p.Masked())
	}
	return prefixes, host, errors.Join(errs...)
}

// firewall installs and removes the block list's rules, with iptables and
// ip6tables (the tools Docker's own rules are made with, so both land in
// the same tables).
type firewall struct {
	prefixes []netip.Prefix
	host     bool
}

// run runs one iptables command.
func run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, append([]string{"-w"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// install makes the chains (or empties them), fills them and jumps to
// them: running it again gives the same rules.
func (f *firewall) install(ctx context.Context) error {
	for _, tool := range []string{"iptables", "ip6tables"} {
		v6 := tool == "ip6tables"
		if v6 && !hasTool(tool) {
			continue // no IPv6 firewall, and so no IPv6 for containers to use
		}
		for _, chain := range []string{chainForward, chainInput} {
			if run(ctx, tool, "-n", "-L", chain) != nil {
				if err := run(ctx, tool, "-N", chain); err != nil {
					return err
				}
			}
			if err := run(ctx, tool, "-F", chain); err != nil {
				return err
			}
			// Answers to connections made to the job (published ports)
			// pass.
			if err := run(ctx, tool, "-A", chain, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN", "-m", "comment", "--comment", ruleComment); err != nil {
				return err
			}
			for _, p := range f.prefixes {
				if p.Addr().Is6() != v6 {
					continue
				}
				if err := run(ctx, tool, "-A", chain, "-d", p.String(), "-j", "REJECT", "-m", "comment", "--comment", ruleComment); err != nil {
					return err
				}
			}
			if chain == chainInput && f.host {
				if err := run(ctx, tool, "-A", chain, "-j", "REJECT", "-m", "comment", "--comment", ruleComment); err != nil {
					return err
				}
			}
		}
		for _, j := range jumps(ctx, tool) {
			if run(ctx, tool, append([]string{"-C"}, j...)...) == nil {
				continue
			}
			if err := run(ctx, tool, append([]string{"-I"}, j...)...); err != nil {
				return fmt.Errorf("%w (does Docker manage iptables, with its DOCKER-USER chain?)", err)
			}
		}
	}
	return nil
}

// jumps are the rules that send the job network's traffic to the chains:
// forwarded traffic from DOCKER-USER, which Docker keeps first in FORWARD,
// or, for IPv6 where Docker (before 27) leaves ip6tables alone, from the
// top of FORWARD.
func jumps(ctx context.Context, tool string) [][]string {
	forward := "DOCKER-USER"
	if tool == "ip6tables" && run(ctx, tool, "-n", "-L", forward) != nil {
		forward = "FORWARD"
	}
	return [][]string{
		{forward, "-i", jobBridge, "-j", chainForward, "-m", "comment", "--comment", ruleComment},
		{"INPUT", "-i", jobBridge, "-j", chainInput, "-m", "comment", "--comment", ruleComment},
	}
}

// uninstall removes the jumps and the chains; what is already gone is no
// error.
func (f *firewall) uninstall(ctx context.Context) error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if !hasTool(tool) {
			continue
		}
		for _, j := range jumps(ctx, tool) {
			for run(ctx, tool, append([]string{"-C"}, j...)...) == nil {
				if err := run(ctx, tool, append([]string{"-D"}, j...)...); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
		for _, chain := range []string{chainForward, chainInput} {
			if run(ctx, tool, "-n", "-L", chain) != nil {
				continue
			}
			if err := run(ctx, tool, "-F", chain); err != nil {
				errs = append(errs, err)
			}
			if err := run(ctx, tool, "-X", chain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// jobNetwork makes sure the job network exists and its rules are in
// place; it runs once per executor (again after a failure).
func (e *Executor) jobNetwork(ctx context.Context) error {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if e.netReady {
		return nil
	}
	_, err := e.cli.NetworkInspect(ctx, JobNetwork, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		_, err = e.cli.NetworkCreate(ctx, JobNetwork, client.NetworkCreateOptions{
			Driver:  "bridge",
			Options: map[string]string{"com.docker.network.bridge.name": jobBridge},
			Labels:  map[string]string{executor.LabelManaged: "true"},
		})
		if cerrdefs.IsConflict(err) { // another node sharing the engine made it
			err = nil
		}
	}
	if err != nil {
		return e.classify("job network "+JobNetwork, err)
	}
	if len(e.fw.prefixes) == 0 && !e.fw.host {
		// Nothing to block: rules a previous configuration left go.
		if err := e.fw.uninstall(ctx); err != nil {
			e.log.Warn("job network: remove firewall rules", "err", err)
		}
	} else if err := e.fw.install(ctx); err != nil {
		return fmt.Errorf("docker: job network %s: firewall: %w: %w", JobNetwork, executor.ErrUnavailable, err)
	}
	e.netReady = true
	e.log.Debug("job network ready", "network", JobNetwork, "blocked", e.cfg.BlockNetworks)
	return nil
}

// closeJobNetwork removes the rules and the network when no container is
// on it any more. Containers still running keep both (Close leaves them
// running; a new executor installs the rules again).
func (e *Executor) closeJobNetwork(ctx context.Context) error {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if !e.netReady {
		return nil
	}
	e.netReady = false
	n, err := e.cli.NetworkInspect(ctx, JobNetwork, client.NetworkInspectOptions{})
	if err != nil || len(n.Network.Containers) > 0 {
		return nil
	}
	if _, err := e.cli.NetworkRemove(ctx, JobNetwork, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil // in use again (another node sharing the engine): keep the rules
	}
	return e.fw.uninstall(ctx)
}
