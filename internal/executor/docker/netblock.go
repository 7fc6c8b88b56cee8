package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

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

// optICC is the bridge driver's inter-container communication switch:
// off on the job network, so that its containers (of any deployments)
// cannot reach each other through it; the allocations of a deployment
// talk over its subnet (docs/networking.md).
const optICC = "com.docker.network.bridge.enable_icc"

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

// netLockPath is the lock the executors of every dms process on this
// machine take on the job network: several nodes can share one Docker
// engine (a devnet, tests running in parallel), and with it the network
// and the host's iptables chains.
var netLockPath = filepath.Join(os.TempDir(), "dms-jobs-network.lock")

// netLock is a held lock on the job network, across processes (flock).
// Starts hold it shared from checking the network until their container
// runs on it; setting the network up and tearing it down hold it
// exclusive, so neither races the other nor a start.
type netLock struct{ f *os.File }

func lockNet(how int) (*netLock, error) {
	f, err := os.OpenFile(netLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("job network lock: %w", err)
	}
	l := &netLock{f: f}
	if err := l.set(how); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// set takes the lock shared (syscall.LOCK_SH) or exclusive (LOCK_EX),
// converting a lock already held.
func (l *netLock) set(how int) error {
	for {
		err := syscall.Flock(int(l.f.Fd()), how)
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("job network lock: %w", err)
			}
			return nil
		}
	}
}

// unlock releases the lock.
func (l *netLock) unlock() {
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// jobNetwork makes sure the job network exists and its rules are in
// place, and returns holding the job network's lock shared: the caller
// starts its container and then unlocks, so that no other process removes
// the network in between.
//
// netMu is taken before the lock, as closeJobNetwork does: a start that
// held the lock shared while it waited for netMu kept the start holding
// netMu, converting its own lock to exclusive to set the network up,
// waiting for ever (TestConcurrentFirstStarts).
func (e *Executor) jobNetwork(ctx context.Context) (*netLock, error) {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	l, err := lockNet(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	_, err = e.cli.NetworkInspect(ctx, JobNetwork, client.NetworkInspectOptions{})
	if err == nil && e.netReady {
		return l, nil
	}
	if err != nil && !cerrdefs.IsNotFound(err) {
		l.unlock()
		return nil, e.classify("job network "+JobNetwork, err)
	}
	// Set up (or again, after another process removed it): exclusive.
	if err := l.set(syscall.LOCK_EX); err != nil {
		l.unlock()
		return nil, err
	}
	if err := e.setupJobNetwork(ctx); err != nil {
		l.unlock()
		return nil, err
	}
	if err := l.set(syscall.LOCK_SH); err != nil {
		l.unlock()
		return nil, err
	}
	return l, nil
}

// setupJobNetwork creates the job network if it is missing and installs
// its rules; the caller holds the job network's lock exclusive.
func (e *Executor) setupJobNetwork(ctx context.Context) error {
	e.netReady = false
	in, err := e.cli.NetworkInspect(ctx, JobNetwork, client.NetworkInspectOptions{})
	missing := cerrdefs.IsNotFound(err)
	if err == nil && in.Network.Options[optICC] != "false" {
		// Made by an older dms, where containers reached each other:
		// made again once no container is on it.
		if n := len(in.Network.Containers); n > 0 {
			e.log.Warn("job network: its containers reach each other (made by an older dms); it is made again once none is on it",
				"network", JobNetwork, "containers", n)
		} else if _, err = e.cli.NetworkRemove(ctx, JobNetwork, client.NetworkRemoveOptions{}); err == nil || cerrdefs.IsNotFound(err) {
			missing, err = true, nil
		}
	}
	if missing {
		_, err = e.cli.NetworkCreate(ctx, JobNetwork, client.NetworkCreateOptions{
			Driver:  "bridge",
			Options: map[string]string{"com.docker.network.bridge.name": jobBridge, optICC: "false"},
			Labels:  map[string]string{executor.LabelManaged: "true"},
		})
		if cerrdefs.IsConflict(err) { // made meanwhile by a process that does not lock (an older dms)
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
// running; a new executor installs the rules again), and so does a start
// in progress in another process (it holds the lock shared).
func (e *Executor) closeJobNetwork(ctx context.Context) error {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if !e.netReady {
		return nil
	}
	e.netReady = false
	l, err := lockNet(syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.unlock()
	n, err := e.cli.NetworkInspect(ctx, JobNetwork, client.NetworkInspectOptions{})
	if err != nil || len(n.Network.Containers) > 0 {
		return nil
	}
	if _, err := e.cli.NetworkRemove(ctx, JobNetwork, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil // in use again (a process that does not lock): keep the rules
	}
	return e.fw.uninstall(ctx)
}
