package acceptance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps of deployments (orchestration, executors, supervision): providers
// that offer CPU to an orchestrating node's user, ensembles deployed with
// dms deploy, and what dms deployment status says.
//
// "bob offers 1 CPU to alice's deployments" makes alice the operator of
// bob (bob trusts alice's user for /dms, as in a devnet), connects them and
// onboards the CPU with 1 GiB of memory and of disk. Deployments a
// scenario leaves running are shut down when it ends.

// provide makes name a provider of orch's deployments offering cpu cores.
func (w *World) provide(orch, name, cpu string, env ...string) {
	n := netOf(w)
	t := w.T
	n.start(orch)
	if h, ok := n.homes[name]; ok {
		// The feature's nodes outlive a scenario: a provider started with
		// other executor settings would carry them into this one.
		for _, e := range env {
			if !slices.Contains(h.Env, e) {
				t.Fatalf("%s's home exists without %s: use another name for this provider", name, e)
			}
		}
		for _, e := range h.Env {
			if strings.HasPrefix(e, "DMS_EXECUTOR_") && !slices.Contains(env, e) {
				t.Fatalf("%s's home exists with %s: use another name for this provider", name, e)
			}
		}
	}
	n.home(name, env...)
	n.start(name)
	operator := n.id(t, orch, "user")
	var caps api.CapListing
	w.home(name).JSON(t, &caps, "cap", "list")
	trusted := false
	for _, a := range caps.Anchors {
		trusted = trusted || a.Root == operator && a.Cmd == api.CmdRoot
	}
	if !trusted {
		w.home(name).MustRun(t, "cap", "anchor", "--root", operator, "--cmd", "/dms")
	}
	n.connect(t, orch, name)
	want, err := strconv.ParseFloat(cpu, 64)
	if err != nil {
		t.Fatalf("%q is not a CPU amount", cpu)
	}
	if s := w.resources(name); s.Onboarded == nil || s.Onboarded.Resources.CPU != want {
		w.home(name).MustRun(t, "onboard", "--cpu", cpu, "--ram", "1GiB", "--disk", "1GiB")
	}
}

// resources returns what `dms resources -o json` says on name's node.
func (w *World) resources(name string) api.ResourceSnapshot {
	var s api.ResourceSnapshot
	w.home(name).JSON(w.T, &s, "resources")
	return s
}

// deploy submits an ensemble (detached, with more dms deploy args) from
// orch's home, keeps its ID as <deployment>, and shuts it down at the end
// of the scenario if it still runs.
func (w *World) deploy(orch, yaml string, args ...string) string {
	f := w.writeFile(fmt.Sprintf("deploy-%d.yaml", len(w.vals)), yaml)
	r := w.home(orch).Run(w.T, append([]string{"deploy", "-f", f, "--detach"}, args...)...)
	if r.Code != 0 {
		w.T.Fatalf("dms deploy --detach: %s", r)
	}
	id := strings.TrimSpace(r.Stdout)
	w.vals["deployment"], w.vals["orchestrator"] = id, orch
	w.T.Cleanup(func() {
		if !netOf(w).running(orch) {
			return
		}
		if d, ok := w.tryStatus(orch, id); ok && !d.Terminal() {
			if r := w.home(orch).Run(w.T, "deployment", "shutdown", id); r.Code != 0 {
				w.T.Errorf("shut down %s: %s", id, r)
			}
		}
	})
	return id
}

// status returns the scenario's deployment as its orchestrator shows it.
func (w *World) deployment() api.Deployment {
	id, _ := w.vals["deployment"].(string)
	orch, _ := w.vals["orchestrator"].(string)
	if id == "" {
		w.T.Fatal("no deployment was submitted in this scenario")
	}
	var d api.Deployment
	w.home(orch).JSON(w.T, &d, "deployment", "status", id)
	return d
}

func (w *World) tryStatus(orch, id string) (api.Deployment, bool) {
	var d api.Deployment
	r := w.home(orch).Run(w.T, "-o", "json", "deployment", "status", id)
	return d, r.Code == 0 && jsonInto(r.Stdout, &d) == nil
}

// waitState polls the deployment until cond holds, for at most timeout.
func (w *World) waitState(timeout time.Duration, what string, cond func(api.Deployment) bool) (api.Deployment, error) {
	var d api.Deployment
	if eventually(timeout, func() bool { d = w.deployment(); return cond(d) }) {
		return d, nil
	}
	return d, fmt.Errorf("deployment %s: not %s within %s: state %s (%s), allocations %s", d.ID, what, timeout, d.State, d.Message, allocSummary(d))
}

func allocSummary(d api.Deployment) string {
	var parts []string
	for _, a := range d.Allocations {
		parts = append(parts, fmt.Sprintf("%s %s restarts=%d reason=%s %s", a.Name, a.State, a.Restarts, a.Reason, a.Message))
	}
	for _, c := range d.Candidates {
		parts = append(parts, fmt.Sprintf("candidate %s for %s: %s %v", c.Peer, c.Node, c.Kind, c.Reasons))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func (w *World) alloc(d api.Deployment, name string) (api.DeploymentAlloc, error) {
	for _, a := range d.Allocations {
		if a.Name == name {
			return a, nil
		}
	}
	return api.DeploymentAlloc{}, fmt.Errorf("deployment %s has no allocation %q: %s", d.ID, name, allocSummary(d))
}

func deploySteps(sc *godog.ScenarioContext) {
	sc.Step(`^`+names+` (?:offers|each offer) ([\d.]+) CPU to ([a-z]+)'s deployments$`, func(ctx context.Context, list, cpu, orch string) error {
		w := worldOf(ctx)
		for _, name := range splitNames(list) {
			w.provide(orch, name, cpu)
		}
		return nil
	})
	sc.Step(`^([a-z]+) offers ([\d.]+) CPU to ([a-z]+)'s deployments, with the (docker|vm) executor off$`, func(ctx context.Context, name, cpu, orch, executor string) error {
		w := worldOf(ctx)
		w.provide(orch, name, cpu, "DMS_EXECUTOR_"+strings.ToUpper(executor)+"_ENABLED=false")
		// It offers nothing once the scenario ends, so that later scenarios
		// of the feature see the providers they name.
		w.T.Cleanup(func() {
			if netOf(w).running(name) {
				if r := w.home(name).Run(w.T, "offboard"); r.Code != 0 {
					w.T.Errorf("offboard %s: %s", name, r)
				}
			}
		})
		return nil
	})
	sc.Step(`^([a-z]+) offers ([\d.]+) CPU for this scenario$`, func(ctx context.Context, name, cpu string) error {
		w := worldOf(ctx)
		s := w.resources(name)
		if s.Onboarded == nil {
			return fmt.Errorf("%s is not a provider", name)
		}
		before := strconv.FormatFloat(s.Onboarded.Resources.CPU, 'f', -1, 64)
		w.home(name).MustRun(w.T, "onboard", "--cpu", cpu)
		w.T.Cleanup(func() {
			if netOf(w).running(name) {
				if r := w.home(name).Run(w.T, "onboard", "--cpu", before); r.Code != 0 {
					w.T.Errorf("%s back to %s CPU: %s", name, before, r)
				}
			}
		})
		return nil
	})
	sc.Step(`^([a-z]+) offers the (docker|vm) executor$`, func(ctx context.Context, name, executor string) error {
		w := worldOf(ctx)
		if why := executorAbsent(w.resources(name).Machine, executor); why != "" {
			w.T.Skipf("%s: %s", name, why)
		}
		return nil
	})

	sc.Step(`^([a-z]+)'s node boots vm jobs that bring no kernel with its own$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		kernel, why := e2etest.TestKernel()
		if kernel == "" {
			w.T.Skip(why)
		}
		n := netOf(w)
		peers := n.peersOf(w.T, name)
		n.stop(w.T, name, false)
		if r := n.home(name).Run(w.T, "config", "set", "executor.vm.kernel", kernel); r.Code != 0 {
			return fmt.Errorf("dms config set: %s", r)
		}
		n.start(name)
		if len(peers) > 0 {
			n.connect(w.T, append([]string{name}, peers...)...)
		}
		return nil
	})
	sc.Step(`^an initramfs holding the workload, as "([^"]+)"$`, func(ctx context.Context, initrdName string) error {
		w := worldOf(ctx)
		return os.WriteFile(w.Path(initrdName), e2etest.VMInitramfs(w.T, e2etest.Workload), 0o644)
	})
	sc.Step(`^a kernel and an initramfs holding the workload, as "([^"]+)" and "([^"]+)"$`, func(ctx context.Context, kernelName, initrdName string) error {
		w := worldOf(ctx)
		kernel, why := e2etest.TestKernel()
		if kernel == "" {
			w.T.Skip(why)
		}
		// The compressed kernel beside it, when there is one: it is
		// shipped with the job (8 MB rather than 60).
		if z := filepath.Join(filepath.Dir(kernel), "vmlinuz"); fileExists(z) {
			kernel = z
		}
		e2etest.CopyFile(w.T, kernel, w.Path(kernelName))
		return os.WriteFile(w.Path(initrdName), e2etest.VMInitramfs(w.T, e2etest.Workload), 0o644)
	})
	sc.Step(`^([a-z]+) has deployed(, without waiting,)? the ensemble:$`, func(ctx context.Context, orch, noWait string, doc *godog.DocString) error {
		w := worldOf(ctx)
		w.deploy(orch, doc.Content)
		if noWait != "" {
			return nil
		}
		_, err := w.waitState(time.Minute, "ended", func(d api.Deployment) bool { return d.Terminal() })
		return err
	})
	sc.Step(`^the deployment (completes|ends|is running) within (\d+) seconds$`, func(ctx context.Context, what, secs string) error {
		w := worldOf(ctx)
		d, err := w.waitState(seconds(secs), what, func(d api.Deployment) bool {
			switch what {
			case "completes":
				return d.Terminal()
			case "ends":
				return d.Terminal()
			}
			return d.State == "running" || d.Terminal()
		})
		if err != nil {
			return err
		}
		want := map[string]string{"completes": "completed", "is running": "running"}[what]
		if want != "" && d.State != want {
			return fmt.Errorf("deployment %s is %s (%s), want %s: %s", d.ID, d.State, d.Message, want, allocSummary(d))
		}
		return nil
	})
	sc.Step(`^the deployment is "([a-z-]+)"$`, func(ctx context.Context, state string) error {
		w := worldOf(ctx)
		if d := w.deployment(); d.State != state {
			return fmt.Errorf("deployment %s is %s (%s), want %s: %s", d.ID, d.State, d.Message, state, allocSummary(d))
		}
		return nil
	})
	sc.Step(`^the allocation "([^"]+)" ended with the reason "([^"]+)"$`, func(ctx context.Context, name, reason string) error {
		w := worldOf(ctx)
		a, err := w.alloc(w.deployment(), name)
		if err != nil {
			return err
		}
		if a.Reason != reason {
			return fmt.Errorf("allocation %s ended %s (%s), want %s", name, a.Reason, a.Message, reason)
		}
		return nil
	})
	sc.Step(`^the allocation "([^"]+)" was restarted (\d+) times$`, func(ctx context.Context, name string, n int) error {
		w := worldOf(ctx)
		a, err := w.alloc(w.deployment(), name)
		if err != nil {
			return err
		}
		if a.Restarts != n {
			return fmt.Errorf("allocation %s was restarted %d times, want %d (state %s, reason %s)", name, a.Restarts, n, a.State, a.Reason)
		}
		return nil
	})
	sc.Step(`^the allocation "([^"]+)" started after "([^"]+)" finished$`, func(ctx context.Context, second, first string) error {
		w := worldOf(ctx)
		d := w.deployment()
		a, err := w.alloc(d, second)
		if err != nil {
			return err
		}
		b, err := w.alloc(d, first)
		if err != nil {
			return err
		}
		if a.Started.IsZero() || b.Finished.IsZero() || a.Started.Before(b.Finished) {
			return fmt.Errorf("%s started at %s, %s finished at %s", second, a.Started, first, b.Finished)
		}
		return nil
	})
	sc.Step(`^its nodes are placed on (\d+) different providers$`, func(ctx context.Context, n int) error {
		d := worldOf(ctx).deployment()
		seen := map[string]bool{}
		for _, p := range d.Placement {
			seen[p.Provider] = true
		}
		if len(d.Placement) != n || len(seen) != n {
			return fmt.Errorf("placement %+v, want %d nodes on %d different providers", d.Placement, n, n)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds the deployment is queued because of "([a-z-]+)" on `+names+`$`, func(ctx context.Context, secs, kind, list string) error {
		w := worldOf(ctx)
		n := netOf(w)
		_, err := w.waitState(seconds(secs), "queued because of "+kind, func(d api.Deployment) bool {
			kinds := map[string]string{}
			for _, c := range d.Candidates {
				kinds[c.Peer] = c.Kind
			}
			for _, name := range splitNames(list) {
				if kinds[n.id(w.T, name, "peer")] != kind {
					return false
				}
			}
			return d.State == "queued"
		})
		return err
	})
	sc.Step(`^it ran on ([a-z]+)$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		d := w.deployment()
		if want := netOf(w).id(w.T, name, "peer"); len(d.Placement) != 1 || d.Placement[0].Provider != want {
			return fmt.Errorf("placement %+v, want %s (%s)", d.Placement, name, want)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds no provider holds any resources$`, func(ctx context.Context, secs string) error {
		w := worldOf(ctx)
		n := netOf(w)
		for name := range n.nodes {
			if !n.running(name) {
				continue
			}
			var s api.ResourceSnapshot
			if !eventually(seconds(secs), func() bool {
				s = w.resources(name)
				return s.Allocated.CPU == 0 && s.Reserved.CPU == 0
			}) {
				return fmt.Errorf("%s still holds cpu %v allocated, %v reserved", name, s.Allocated.CPU, s.Reserved.CPU)
			}
		}
		return nil
	})
	sc.Step(`^the provider running "([^"]+)" is killed with SIGKILL$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		n := netOf(w)
		a, err := w.alloc(w.deployment(), alloc)
		if err != nil {
			return err
		}
		for name := range n.nodes {
			if n.running(name) && n.id(w.T, name, "peer") == a.Provider {
				n.stop(w.T, name, true)
				return nil
			}
		}
		return fmt.Errorf("no running node of this feature is the provider %q of %s", a.Provider, alloc)
	})
	sc.Step(`^within (\d+) seconds the deployment is "([a-z-]+)" with the allocation "([^"]+)" "([a-z-]+)"$`, func(ctx context.Context, secs, state, alloc, astate string) error {
		w := worldOf(ctx)
		_, err := w.waitState(seconds(secs), state+" with "+alloc+" "+astate, func(d api.Deployment) bool {
			a, err := w.alloc(d, alloc)
			return err == nil && d.State == state && a.State == astate
		})
		return err
	})
	sc.Step(`^the deployment stays "([a-z-]+)" for (\d+) seconds$`, func(ctx context.Context, state, secs string) error {
		// The deployment's state holds throughout; its allocations may
		// pass through other live states (a resumed orchestrator shows
		// "starting" until the next heartbeat) but end the wait in it.
		w := worldOf(ctx)
		deadline := time.Now().Add(seconds(secs))
		// Each check runs dms: the wait may end a little after the deadline.
		return poll.Until(ctx, seconds(secs)+time.Minute, "the deployment stays "+state, func(context.Context) (bool, error) {
			d := w.deployment()
			if d.State != state {
				return false, fmt.Errorf("deployment %s became %s (%s) after %s: %s", d.ID, d.State, d.Message, seconds(secs)-time.Until(deadline), allocSummary(d))
			}
			for _, a := range d.Allocations {
				if slices.Contains([]string{"lost", "failed", "exited", "stopped"}, a.State) {
					return false, fmt.Errorf("allocation %s became %s: %s", a.Name, a.State, allocSummary(d))
				}
			}
			if time.Now().Before(deadline) {
				return false, nil
			}
			for _, a := range d.Allocations {
				if a.State != state {
					return false, fmt.Errorf("after %ss allocation %s is %s, want %s: %s", secs, a.Name, a.State, state, allocSummary(d))
				}
			}
			return true, nil
		})
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// executorAbsent says why a machine does not offer an executor ("" when it
// does).
func executorAbsent(m api.Machine, executor string) string {
	if slices.Contains(m.Executors, executor) {
		return ""
	}
	switch {
	case executor == "docker" && !m.Docker.Reachable:
		return fmt.Sprintf("no Docker engine answers on this machine (socket %q)", m.Docker.Socket)
	case executor == "vm" && m.QEMU == "":
		return "QEMU is not installed on this machine"
	}
	return fmt.Sprintf("this dms does not run %s jobs (its node offers %v)", executor, m.Executors)
}

// missingPart says why a scenario tagged @docker or @vm cannot run on this
// machine: no Docker engine, no QEMU ("" when nothing is missing). Whether
// the providers of this dms offer the executor is checked by the step
// "NAME offers the docker executor".
func missingPart(tags []string) string {
	if slices.Contains(tags, "@docker") {
		sock := "/var/run/docker.sock"
		if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
			sock = strings.TrimPrefix(h, "unix://")
		}
		if _, err := os.Stat(sock); err != nil {
			return fmt.Sprintf("@docker: no Docker engine on this machine (%v)", err)
		}
	}
	if slices.Contains(tags, "@vm") {
		found := false
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			if _, err := os.Stat(filepath.Join(dir, "qemu-system-x86_64")); err == nil {
				found = true
			}
		}
		if !found {
			return "@vm: QEMU (qemu-system-x86_64) is not installed on this machine"
		}
	}
	return ""
}
