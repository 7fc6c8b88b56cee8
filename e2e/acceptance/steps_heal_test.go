package acceptance

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps of self-healing (features/supervision.feature): nodes that
// supervise quickly, providers that die or freeze, redeploys, the
// deployment's timeline (its events), dependents told or restarted, and a
// standby orchestrator that takes over.
//
// A node that "dies" is killed with SIGKILL; it starts again (and is
// reconnected to the running nodes of the feature) when the scenario ends,
// so that the next scenarios find it. A frozen provider (SIGSTOP) is
// continued when the scenario ends, whatever happened.

// quickEnv shortens supervision for the nodes of a feature: heartbeats
// every 500ms, lost after 3s, a provider's own stop after 6s without word
// from its orchestrator, a standby's lease of 3s.
var quickEnv = []string{
	"DMS_ORCHESTRATOR_HEARTBEAT=500ms",
	"DMS_ORCHESTRATOR_LOST_AFTER=3s",
	"DMS_ORCHESTRATOR_STOP_AFTER=6s",
	"DMS_ORCHESTRATOR_LEASE=3s",
}

// statusVia returns the scenario's deployment as name's node shows it.
func (w *World) statusVia(name string) (api.Deployment, error) {
	id, _ := w.vals["deployment"].(string)
	if id == "" {
		w.T.Fatal("no deployment was submitted in this scenario")
	}
	var d api.Deployment
	r := w.home(name).Run(w.T, "-o", "json", "deployment", "status", id)
	if r.Code != 0 {
		return d, fmt.Errorf("%s: dms deployment status %s: %s", name, id, strings.TrimSpace(r.Stderr))
	}
	if err := jsonInto(r.Stdout, &d); err != nil {
		return d, fmt.Errorf("%s: dms deployment status %s: %w", name, id, err)
	}
	return d, nil
}

// waitVia polls the deployment as name shows it until cond holds.
func (w *World) waitVia(name string, timeout time.Duration, what string, cond func(api.Deployment) bool) (api.Deployment, error) {
	var d api.Deployment
	var last error
	if eventually(timeout, func() bool {
		d, last = w.statusVia(name)
		return last == nil && cond(d)
	}) {
		return d, nil
	}
	if last != nil {
		return d, fmt.Errorf("deployment: not %s within %s: %w", what, timeout, last)
	}
	return d, fmt.Errorf("deployment %s: not %s within %s (as %s shows it): state %s (%s), allocations %s, events %s", d.ID, what, timeout, name, d.State, d.Message, allocSummary(d), eventSummary(d))
}

func eventSummary(d api.Deployment) string {
	var parts []string
	for _, e := range d.Events {
		parts = append(parts, fmt.Sprintf("%s(%s)", e.Kind, e.Message))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func eventKinds(d api.Deployment) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, e.Kind)
	}
	return out
}

// inOrder reports whether want is a subsequence of kinds.
func inOrder(kinds, want []string) bool {
	i := 0
	for _, k := range kinds {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

var quoted = regexp.MustCompile(`"([^"]+)"`)

// comeBack starts name's node again, if it does not run, and connects it
// to the running nodes of the feature.
func (n *network) comeBack(w *World, name string) {
	if n.running(name) {
		return
	}
	n.start(name)
	others := []string{name}
	for other := range n.nodes {
		if other != name && n.running(other) {
			others = append(others, other)
		}
	}
	if len(others) > 1 {
		n.connect(w.T, others...)
	}
}

// die kills name's node with SIGKILL; it comes back when the scenario
// ends.
func (w *World) die(name string) {
	n := netOf(w)
	n.stop(w.T, name, true)
	w.T.Cleanup(func() { n.comeBack(w, name) })
}

// providerOf returns the name of the running node of the feature that runs
// alloc.
func (w *World) providerOf(alloc string) (name, peer string, err error) {
	a, err := w.alloc(w.deployment(), alloc)
	if err != nil {
		return "", "", err
	}
	n := netOf(w)
	for name := range n.nodes {
		if n.running(name) && n.id(w.T, name, "peer") == a.Provider {
			return name, a.Provider, nil
		}
	}
	return "", "", fmt.Errorf("no running node of this feature is the provider %q of %s", a.Provider, alloc)
}

// movedOff polls until alloc runs on a provider other than the one the
// scenario took away (w.vals["gone"]), at attempt (0: any).
func (w *World) movedOff(alloc string, timeout time.Duration, attempt int) (api.DeploymentAlloc, error) {
	gone, _ := w.vals["gone"].(string)
	if gone == "" {
		w.T.Fatal("no provider was taken away in this scenario")
	}
	var a api.DeploymentAlloc
	_, err := w.waitState(timeout, alloc+" running on another provider", func(d api.Deployment) bool {
		var err error
		a, err = w.alloc(d, alloc)
		return err == nil && d.State == "running" && a.State == "running" && a.Provider != gone && a.Provider != "" && (attempt == 0 || a.Attempt >= attempt)
	})
	if err != nil {
		return a, err
	}
	if attempt != 0 && a.Attempt != attempt {
		return a, fmt.Errorf("allocation %s runs on %s at attempt %d, want %d", alloc, a.Provider, a.Attempt, attempt)
	}
	return a, nil
}

// keepsRunning checks, until done says stop, that alloc runs on the
// provider it runs on now and that the deployment runs.
func (w *World) keepsRunning(ctx context.Context, alloc string, timeout time.Duration, done func() bool) error {
	d := w.deployment()
	a, err := w.alloc(d, alloc)
	if err != nil {
		return err
	}
	where := a.Provider
	return poll.Until(ctx, timeout, alloc+" keeps running on "+where, func(context.Context) (bool, error) {
		d := w.deployment()
		b, err := w.alloc(d, alloc)
		if err != nil {
			return false, err
		}
		if d.State != "running" || b.State != "running" || b.Provider != where {
			return false, fmt.Errorf("%s stopped running on %s: deployment %s (%s), allocations %s, events %s", alloc, where, d.State, d.Message, allocSummary(d), eventSummary(d))
		}
		return done(), nil
	})
}

// signal sends sig to name's node process.
func (n *network) signal(t interface{ Fatalf(string, ...any) }, name string, sig syscall.Signal) {
	nd, ok := n.nodes[name]
	if !ok {
		t.Fatalf("%s's node was never started", name)
	}
	if err := syscall.Kill(nd.PID(), sig); err != nil {
		t.Fatalf("%s's node: %v: %v", name, sig, err)
	}
}

func healSteps(sc *godog.ScenarioContext) {
	sc.Step(`^`+names+` supervises? quickly$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		n := netOf(w)
		for _, name := range splitNames(list) {
			if h, ok := n.homes[name]; ok {
				for _, e := range quickEnv {
					if !slices.Contains(h.Env, e) {
						return fmt.Errorf("%s's home was made without %s: name these nodes first in the Background", name, e)
					}
				}
				continue
			}
			n.home(name, quickEnv...)
		}
		return nil
	})
	sc.Step(`^the provider running "([^"]+)" dies$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		name, peer, err := w.providerOf(alloc)
		if err != nil {
			return err
		}
		w.vals["gone"] = peer
		w.die(name)
		return nil
	})
	sc.Step(`^([a-z]+)'s node dies$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		n := netOf(w)
		n.node(w.T, name)
		w.vals["gone"] = n.id(w.T, name, "peer")
		w.die(name)
		return nil
	})
	sc.Step(`^([a-z]+)'s node comes back$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		netOf(w).comeBack(w, name)
		return nil
	})
	sc.Step(`^the provider running "([^"]+)" is frozen with SIGSTOP$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		n := netOf(w)
		name, peer, err := w.providerOf(alloc)
		if err != nil {
			return err
		}
		n.signal(w.T, name, syscall.SIGSTOP)
		w.vals["gone"], w.vals["frozen"], w.vals["frozen-at"] = peer, name, time.Now()
		w.T.Cleanup(func() {
			if n.running(name) {
				n.signal(w.T, name, syscall.SIGCONT)
			}
		})
		return nil
	})
	sc.Step(`^the frozen provider is continued with SIGCONT$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		name, _ := w.vals["frozen"].(string)
		if name == "" {
			return fmt.Errorf("no provider was frozen in this scenario")
		}
		netOf(w).signal(w.T, name, syscall.SIGCONT)
		return nil
	})
	sc.Step(`^within (\d+) seconds the frozen provider holds no resources$`, func(ctx context.Context, secs string) error {
		w := worldOf(ctx)
		name, _ := w.vals["frozen"].(string)
		if name == "" {
			return fmt.Errorf("no provider was frozen in this scenario")
		}
		var s api.ResourceSnapshot
		if !eventually(seconds(secs), func() bool {
			s = w.resources(name)
			return s.Allocated.CPU == 0 && s.Reserved.CPU == 0
		}) {
			return fmt.Errorf("%s still holds cpu %v allocated, %v reserved", name, s.Allocated.CPU, s.Reserved.CPU)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds "([^"]+)" runs on another provider(?:, attempt (\d+))?$`, func(ctx context.Context, secs, alloc, attempt string) error {
		n := 0
		fmt.Sscan(attempt, &n)
		_, err := worldOf(ctx).movedOff(alloc, seconds(secs), n)
		return err
	})
	sc.Step(`^"([^"]+)" keeps running on its new provider until the frozen provider has been frozen for (\d+) seconds$`, func(ctx context.Context, alloc, secs string) error {
		w := worldOf(ctx)
		at, ok := w.vals["frozen-at"].(time.Time)
		if !ok {
			return fmt.Errorf("no provider was frozen in this scenario")
		}
		until := at.Add(seconds(secs))
		return w.keepsRunning(ctx, alloc, seconds(secs)+time.Minute, func() bool { return !time.Now().Before(until) })
	})
	sc.Step(`^"([^"]+)" keeps running on its new provider for (\d+) seconds$`, func(ctx context.Context, alloc, secs string) error {
		w := worldOf(ctx)
		until := time.Now().Add(seconds(secs))
		return w.keepsRunning(ctx, alloc, seconds(secs)+time.Minute, func() bool { return !time.Now().Before(until) })
	})
	sc.Step(`^the events(?: as ([a-z]+) shows them)? say ((?:"[a-z-]+"(?:, then )?)+)$`, func(ctx context.Context, via, list string) error {
		w := worldOf(ctx)
		var want []string
		for _, m := range quoted.FindAllStringSubmatch(list, -1) {
			want = append(want, m[1])
		}
		d, err := w.via(via)
		if err != nil {
			return err
		}
		if !inOrder(eventKinds(d), want) {
			return fmt.Errorf("the events of %s are %v, want %v in this order: %s", d.ID, eventKinds(d), want, eventSummary(d))
		}
		return nil
	})
	sc.Step(`^the events(?: as ([a-z]+) shows them)? (include|do not include) "([a-z-]+)"$`, func(ctx context.Context, via, how, kind string) error {
		w := worldOf(ctx)
		d, err := w.via(via)
		if err != nil {
			return err
		}
		if has := slices.Contains(eventKinds(d), kind); has != (how == "include") {
			return fmt.Errorf("the events of %s %s %q: %s", d.ID, map[bool]string{true: "include", false: "do not include"}[has], kind, eventSummary(d))
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds the events(?: as ([a-z]+) shows them)? include "([a-z-]+)"$`, func(ctx context.Context, secs, via, kind string) error {
		w := worldOf(ctx)
		if via == "" {
			via, _ = w.vals["orchestrator"].(string)
		}
		_, err := w.waitVia(via, seconds(secs), "with the event "+kind, func(d api.Deployment) bool {
			return slices.Contains(eventKinds(d), kind)
		})
		return err
	})
	sc.Step(`^the deployment failed with the reason "([a-z-]+)"$`, func(ctx context.Context, reason string) error {
		w := worldOf(ctx)
		d := w.deployment()
		if d.State != "failed" || d.Reason != reason {
			return fmt.Errorf("deployment %s is %s with the reason %q (%s), want failed with %q: %s; events %s", d.ID, d.State, d.Reason, d.Message, reason, allocSummary(d), eventSummary(d))
		}
		return nil
	})
	sc.Step(`^the deployment's message contains "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		if d := w.deployment(); !strings.Contains(d.Message, unquote(want)) {
			return fmt.Errorf("deployment %s says %q, want it to contain %q", d.ID, d.Message, want)
		}
		return nil
	})
	sc.Step(`^the allocation "([^"]+)" is at attempt (\d+)$`, func(ctx context.Context, name string, n int) error {
		w := worldOf(ctx)
		a, err := w.alloc(w.deployment(), name)
		if err != nil {
			return err
		}
		if a.Attempt != n {
			return fmt.Errorf("allocation %s is at attempt %d, want %d (state %s, provider %s)", name, a.Attempt, n, a.State, a.Provider)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds the allocation "([^"]+)" was restarted at least (\d+) times?$`, func(ctx context.Context, secs, name string, n int) error {
		w := worldOf(ctx)
		_, err := w.waitState(seconds(secs), fmt.Sprintf("with %s restarted %d times", name, n), func(d api.Deployment) bool {
			a, err := w.alloc(d, name)
			return err == nil && a.Restarts >= n
		})
		return err
	})
	sc.Step(`^(within (\d+) seconds )?the logs of "([^"]+)" contain "(.*)"$`, func(ctx context.Context, within, secs, alloc, want string) error {
		want = unquote(want)
		if out, ok := worldOf(ctx).logsShow(alloc, orSettle(secs), func(out string) bool { return strings.Contains(out, want) }); !ok {
			return fmt.Errorf("the logs of %s lack %q:\n%s", alloc, want, tail(out, 20))
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds ([a-z]+) orchestrates the deployment$`, func(ctx context.Context, secs, name string) error {
		w := worldOf(ctx)
		peer := netOf(w).id(w.T, name, "peer")
		_, err := w.waitVia(name, seconds(secs), "orchestrated by "+name, func(d api.Deployment) bool {
			return d.Orchestrator == peer
		})
		return err
	})
	sc.Step(`^(?:within (\d+) seconds )?the deployment as ([a-z]+) shows it is "([a-z-]+)" with every allocation "([a-z-]+)"$`, func(ctx context.Context, secs, name, state, astate string) error {
		w := worldOf(ctx)
		timeout := orSettle(secs)
		_, err := w.waitVia(name, timeout, state+" with every allocation "+astate, func(d api.Deployment) bool {
			if d.State != state || len(d.Allocations) == 0 {
				return false
			}
			for _, a := range d.Allocations {
				if a.State != astate {
					return false
				}
			}
			return true
		})
		return err
	})
}

// orSettle returns the seconds of a step's optional "within N seconds", or
// settle when it has none: a step that states a fact right after another
// gives the nodes that long to agree on it (a CLI call checks it each
// time).
func orSettle(secs string) time.Duration {
	if secs == "" {
		return settle
	}
	return seconds(secs)
}

const settle = 10 * time.Second

// via returns the deployment as name's node shows it, or as its
// orchestrator shows it when name is "".
func (w *World) via(name string) (api.Deployment, error) {
	if name == "" {
		return w.deployment(), nil
	}
	return w.statusVia(name)
}

// logsShow polls `dms deployment logs` of the scenario's deployment,
// allocation alloc (stdout and stderr), until ok holds of them or timeout
// passes; it returns the last logs read.
func (w *World) logsShow(alloc string, timeout time.Duration, ok func(string) bool) (string, bool) {
	id, _ := w.vals["deployment"].(string)
	orch, _ := w.vals["orchestrator"].(string)
	var out string
	done := eventually(timeout, func() bool {
		r := w.home(orch).Run(w.T, "deployment", "logs", id, "--allocation", alloc)
		out = r.Stdout + r.Stderr
		return r.Code == 0 && ok(out)
	})
	return out, done
}
