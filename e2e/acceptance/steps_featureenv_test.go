package acceptance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/e2e/featureenv"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps of network_environment.feature: dms nodes in Docker containers,
// grouped in regions with latency between them (e2e/featureenv).
//
// The feature's scenarios share one environment: the first Background
// starts it (a few seconds to build the image the first time, then about
// 15 s), and each later Background repairs it (heals partitions,
// reconnects, unpauses and restarts killed nodes, meshes the nodes again).
// The operator is the environment's first node (ap-1); "the operator's
// deployment" is the last one the scenario deployed from it. Deployments a
// scenario started are shut down when it ends. Without Docker (or root,
// or iptables) the Background step skips the scenario, saying why.

// envLogf logs on t (printed when the scenario fails) and, with
// DMS_FEATUREENV_VERBOSE=1, on stderr as it happens.
func envLogf(t testing.TB, format string, args ...any) {
	t.Logf(format, args...)
	if os.Getenv("DMS_FEATUREENV_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "          featureenv: "+strings.TrimPrefix(format, "featureenv: ")+"\n", args...)
	}
}

// envHolder is the feature's environment and the configuration it was
// started with.
type envHolder struct {
	key string
	env *featureenv.Env
}

func (h *envHolder) close(t testing.TB) {
	if h.env == nil {
		return
	}
	envLogf(t, "featureenv: the shaper's queues at the end:%s", h.env.QueueReport())
	if err := h.env.Close(); err != nil {
		t.Error(err)
	}
	h.env, h.key = nil, ""
}

// envOf returns the feature's environment; the Background started it.
func envOf(w *World) *featureenv.Env {
	h := featureValue(w.Feature, "featureenv", newEnvHolder)
	if h.env == nil {
		w.T.Fatal("no feature environment: the scenario needs the Background step that starts one")
	}
	return h.env
}

func newEnvHolder(t testing.TB) *envHolder {
	h := &envHolder{}
	t.Cleanup(func() { h.close(t) })
	return h
}

// envRun is what a scenario deployed from the operator.
type envRun struct {
	deployments []string // IDs, in order
	killed      []string // peer IDs of the nodes killed, in order
}

func envRunOf(w *World) *envRun {
	return scenarioValue(w, "featureenv.run", func(t testing.TB) *envRun {
		r := &envRun{}
		t.Cleanup(func() {
			env := featureValue(w.Feature, "featureenv", newEnvHolder).env
			if env == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, id := range r.deployments {
				var d api.Deployment
				if err := env.Operator().JSON(ctx, &d, "deployment", "status", id); err != nil || d.Terminal() {
					continue
				}
				if err := env.Operator().Run(ctx, "deployment", "shutdown", id); err != nil {
					envLogf(t, "shut down %s: %v", id, err)
				}
			}
		})
		return r
	})
}

// last returns the scenario's last deployment.
func (r *envRun) last(w *World) string {
	if len(r.deployments) == 0 {
		w.T.Fatal("the operator has deployed nothing in this scenario")
	}
	return r.deployments[len(r.deployments)-1]
}

// stepCtx bounds one step's commands.
func stepCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// parseRegions reads "eu:2, us:2, ap:1".
func parseRegions(s string) (map[string]int, int, error) {
	regions := map[string]int{}
	total := 0
	for _, part := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || name == "" {
			return nil, 0, fmt.Errorf("regions %q: want name:count, e.g. eu:2, us:2, ap:1", s)
		}
		regions[name] = n
		total += n
	}
	return regions, total, nil
}

// startEnv starts the feature's environment, or repairs the one it has
// when it has the same configuration; with docker, its nodes also run
// docker workloads (featureenv.Config.Docker).
func startEnv(ctx context.Context, w *World, nodes int, regionList string, latencyMS int, docker bool) error {
	regions, total, err := parseRegions(regionList)
	if err != nil {
		return err
	}
	if total != nodes {
		return fmt.Errorf("%d nodes, but the regions %s hold %d", nodes, regionList, total)
	}
	h := featureValue(w.Feature, "featureenv", newEnvHolder)
	key := fmt.Sprintf("%s/%d/%t", regionList, latencyMS, docker)
	if h.env != nil && h.key == key {
		return repairEnv(ctx, w, h.env)
	}
	h.close(w.Feature.T)
	var settings map[string]string
	if docker {
		// A provider killed and started again is back well within it.
		settings = map[string]string{"orchestrator.lost_after": "10s"}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // includes waiting for another environment on this machine
	defer cancel()
	env, err := featureenv.Start(sctx, featureenv.Config{
		Regions:            regions,
		InterRegionLatency: time.Duration(latencyMS) * time.Millisecond,
		Docker:             docker,
		Settings:           settings,
		Logf:               func(format string, args ...any) { envLogf(w.Feature.T, format, args...) },
	})
	if errors.Is(err, featureenv.ErrUnsupported) {
		w.T.Skipf("@featureenv: %v", err)
	}
	if err != nil {
		return err
	}
	h.env, h.key = env, key
	return nil
}

// repairEnv undoes what an earlier scenario did to the environment: it
// heals every partition, unpauses and restarts nodes, and meshes them.
func repairEnv(ctx context.Context, w *World, env *featureenv.Env) error {
	ctx, cancel := stepCtx(ctx, 2*time.Minute)
	defer cancel()
	if err := env.HealAll(ctx); err != nil {
		return err
	}
	for _, n := range env.Nodes() {
		switch n.State() {
		case featureenv.Paused:
			if err := env.Unpause(ctx, n); err != nil {
				return err
			}
		case featureenv.Killed:
			if err := env.Restart(ctx, n); err != nil {
				return err
			}
			envLogf(w.T, "restarted %s, killed by an earlier scenario", n.Name)
		}
	}
	return env.Mesh(ctx)
}

// nodeNamed returns the environment's node called name.
func nodeNamed(w *World, name string) *featureenv.Node {
	n := envOf(w).Node(name)
	if n == nil {
		var names []string
		for _, n := range envOf(w).Nodes() {
			names = append(names, n.Name)
		}
		w.T.Fatalf("no node %q in the environment (nodes: %s)", name, strings.Join(names, ", "))
	}
	return n
}

// deployFromOperator writes the ensemble (and the modules it names) into
// the operator's home and deploys it, detached.
func deployFromOperator(ctx context.Context, w *World, yaml string) (string, error) {
	op := envOf(w).Operator()
	run := envRunOf(w)
	name := fmt.Sprintf("deploy-%d.yaml", len(run.deployments)+1)
	if strings.Contains(yaml, "workload.wasm") {
		data, err := os.ReadFile(e2etest.WasmModule(w.T, e2etest.Workload))
		if err != nil {
			return "", err
		}
		if _, err := op.WriteFile("workload.wasm", data); err != nil {
			return "", err
		}
	}
	path, err := op.WriteFile(name, []byte(yaml))
	if err != nil {
		return "", err
	}
	out, err := op.Output(ctx, "deploy", "-f", path, "--detach")
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	run.deployments = append(run.deployments, id)
	return id, nil
}

// status returns the deployment's status on the operator.
func status(ctx context.Context, w *World, id string) (api.Deployment, error) {
	var d api.Deployment
	err := envOf(w).Operator().JSON(ctx, &d, "deployment", "status", id)
	return d, err
}

// waitDeployment waits until the deployment satisfies cond; the error
// says what it was last.
func waitDeployment(ctx context.Context, w *World, id string, seconds int, what string, cond func(api.Deployment) bool) (api.Deployment, error) {
	var d api.Deployment
	err := poll.Until(ctx, time.Duration(seconds)*time.Second, what, func(ctx context.Context) (bool, error) {
		cur, err := status(ctx, w, id)
		if err != nil {
			return false, err
		}
		d = cur
		// A deployment that ended otherwise will not get there.
		return cond(d), nil
	})
	if err != nil {
		return d, fmt.Errorf("deployment %s: %w; it is %q (%s), allocations: %s", id, err, d.State, d.Message, allocSummary(d))
	}
	return d, nil
}

// placementRegions returns the regions of a deployment's providers, by
// ensemble node.
func placementRegions(w *World, d api.Deployment) (map[string]string, error) {
	env := envOf(w)
	out := map[string]string{}
	for _, p := range d.Placement {
		n := env.NodeByPeerID(p.Provider)
		if n == nil {
			return nil, fmt.Errorf("deployment %s: node %s placed on %s, not a node of the environment", d.ID, p.Node, p.Provider)
		}
		out[p.Node] = n.Name + " (" + n.Region + ")"
	}
	return out, nil
}

// regionCount returns how many regions a deployment's providers are in,
// and where each node went.
func regionCount(w *World, d api.Deployment) (int, string, error) {
	where, err := placementRegions(w, d)
	if err != nil {
		return 0, "", err
	}
	regions := map[string]bool{}
	var parts []string
	for _, node := range slices.Sorted(maps.Keys(where)) {
		parts = append(parts, node+" on "+where[node])
		p := where[node]
		regions[p[strings.Index(p, "(")+1:len(p)-1]] = true
	}
	return len(regions), strings.Join(parts, ", "), nil
}

// invoke runs /public/hello from one node to another.
func invoke(ctx context.Context, w *World, from, to string, timeout time.Duration) (featureenv.Result, error) {
	a, b := nodeNamed(w, from), nodeNamed(w, to)
	return a.Exec(ctx, "invoke", "/public/hello", "--to", b.PeerID, "--timeout", timeout.String())
}

// liveEnv returns the feature's environment if a Background started it.
func liveEnv(w *World) *featureenv.Env {
	if h, ok := w.Feature.vals["featureenv"].(*envHolder); ok {
		return h.env
	}
	return nil
}

// queuesOnFailure adds the shaper's queue counters (Env.QueueReport) to
// the error of a failing step of a feature with an environment: a packet
// the queue lost costs a TCP retransmission (200 ms or more), which may be
// the slow round trip or the command that timed out.
func queuesOnFailure(ctx context.Context, st *godog.Step, status godog.StepResultStatus, err error) (context.Context, error) {
	if err == nil || status != godog.StepFailed {
		return ctx, nil
	}
	w := worldOf(ctx)
	env := liveEnv(w)
	if env == nil {
		return ctx, nil
	}
	report := "the shaper's queues (read: packets the environment read; lost: id_sequence − read, passed unshaped; late: passed over 10 ms after their time):" + env.QueueReport()
	envLogf(w.T, "featureenv: %s", report)
	if strings.HasPrefix(w.failure, fmt.Sprintf("step %q:", st.Text)) {
		w.failure += "; " + report
	}
	return ctx, errors.New(report)
}

func featureenvSteps(sc *godog.ScenarioContext) {
	sc.StepContext().After(queuesOnFailure)

	sc.Step(`^a feature environment of (\d+) nodes in the regions ([a-z0-9:, -]+) with (\d+) ms between regions$`, func(ctx context.Context, nodes int, regions string, ms int) error {
		return startEnv(ctx, worldOf(ctx), nodes, regions, ms, false)
	})

	sc.Step(`^every node of the environment but the operator offers ([\d.]+) CPUs?$`, func(ctx context.Context, cpu string) error {
		w := worldOf(ctx)
		env := envOf(w)
		want, err := strconv.ParseFloat(cpu, 64)
		if err != nil {
			return fmt.Errorf("%q is not a CPU amount", cpu)
		}
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		for _, n := range env.Nodes()[1:] {
			var s api.ResourceSnapshot
			if err := n.JSON(ctx, &s, "resources"); err != nil {
				return err
			}
			if s.Onboarded != nil && s.Onboarded.Resources.CPU == want {
				continue
			}
			if err := n.Run(ctx, "onboard", "--cpu", cpu, "--ram", "1GiB", "--disk", "1GiB"); err != nil {
				return err
			}
		}
		return nil
	})

	sc.Step(`^the environment's nodes have measured their round trips: under (\d+) ms within a region, (\d+) to (\d+) ms between regions$`, func(ctx context.Context, within, low, high int) error {
		w := worldOf(ctx)
		env := envOf(w)
		var problem string
		start := time.Now()
		// 150 s: yamux measures every 30 s, halving each sample into the
		// last, and on a loaded machine one ping can be slow (the nodes
		// are starved of CPU too); two normal samples bring such an
		// outlier back under the bound. The bounds themselves stay. A
		// failure says what the shaper's queues did (Env.QueueReport).
		err := poll.Until(ctx, 150*time.Second, "the round trips every node measured (the connections measure them: yamux every 30 s, halved into the last)", func(ctx context.Context) (bool, error) {
			problem = ""
			for _, n := range env.Nodes() {
				ps, err := n.Peers(ctx)
				if err != nil {
					return false, err
				}
				lat := map[string]float64{}
				for _, p := range ps {
					if p.Connected {
						lat[p.ID] = p.LatencyMS
					}
				}
				for _, m := range env.Nodes() {
					if m == n {
						continue
					}
					l, ok := lat[m.PeerID]
					switch {
					case !ok || l == 0:
						problem = fmt.Sprintf("%s has no round trip to %s yet", n.Name, m.Name)
					case n.Region == m.Region && l >= float64(within):
						problem = fmt.Sprintf("%s → %s (same region): %.2f ms, want under %d ms", n.Name, m.Name, l, within)
					case n.Region != m.Region && (l < float64(low) || l > float64(high)):
						problem = fmt.Sprintf("%s → %s (other region): %.2f ms, want %d to %d ms", n.Name, m.Name, l, low, high)
					}
					if problem != "" {
						return false, nil
					}
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("%w: %s", err, problem)
		}
		envLogf(w.T, "round trips measured as wanted after %s; the shaper's queues:%s", time.Since(start).Round(time.Second), env.QueueReport())
		return nil
	})

	sc.Step(`^the operator deploys (\d+) times, without waiting, the ensemble:$`, func(ctx context.Context, times int, doc *godog.DocString) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		for range times {
			if _, err := deployFromOperator(ctx, w, doc.Content); err != nil {
				return err
			}
		}
		return nil
	})

	sc.Step(`^the operator deploys, without waiting, the ensemble:$`, func(ctx context.Context, doc *godog.DocString) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		_, err := deployFromOperator(ctx, w, doc.Content)
		return err
	})

	sc.Step(`^within (\d+) seconds each of the operator's deployments is "([a-z-]+)"$`, func(ctx context.Context, seconds int, state string) error {
		w := worldOf(ctx)
		for _, id := range envRunOf(w).deployments {
			if _, err := waitDeployment(ctx, w, id, seconds, "state "+state, func(d api.Deployment) bool { return d.State == state }); err != nil {
				return err
			}
		}
		return nil
	})

	sc.Step(`^each of the operator's deployments has its nodes in one region$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		for _, id := range envRunOf(w).deployments {
			d, err := status(ctx, w, id)
			if err != nil {
				return err
			}
			n, where, err := regionCount(w, d)
			if err != nil {
				return err
			}
			envLogf(w.T, "deployment %s: %s", id, where)
			if n != 1 {
				return fmt.Errorf("deployment %s: %s; want every node in one region", id, where)
			}
		}
		return nil
	})

	sc.Step(`^within (\d+) seconds the operator's deployment is "([a-z-]+)"$`, func(ctx context.Context, seconds int, state string) error {
		w := worldOf(ctx)
		_, err := waitDeployment(ctx, w, envRunOf(w).last(w), seconds, "state "+state, func(d api.Deployment) bool { return d.State == state })
		return err
	})

	sc.Step(`^the operator's deployment has its nodes in (\d+) regions$`, func(ctx context.Context, want int) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		id := envRunOf(w).last(w)
		d, err := status(ctx, w, id)
		if err != nil {
			return err
		}
		n, where, err := regionCount(w, d)
		if err != nil {
			return err
		}
		envLogf(w.T, "deployment %s: %s", id, where)
		if n != want {
			return fmt.Errorf("deployment %s: %s, in %d region(s); want %d", id, where, n, want)
		}
		return nil
	})

	sc.Step(`^within (\d+) seconds the operator's deployment is "([a-z-]+)" with a reason of kind "([a-z-]+)"$`, func(ctx context.Context, seconds int, state, kind string) error {
		w := worldOf(ctx)
		d, err := waitDeployment(ctx, w, envRunOf(w).last(w), seconds, fmt.Sprintf("%s, saying why (%s)", state, kind), func(d api.Deployment) bool {
			if d.State != state {
				return false
			}
			for _, c := range d.Candidates {
				if c.Kind == kind {
					return true
				}
			}
			return false
		})
		if err != nil {
			var kinds []string
			for _, c := range d.Candidates {
				kinds = append(kinds, c.Kind+": "+strings.Join(c.Reasons, "; "))
			}
			return fmt.Errorf("%w; reasons: %s", err, strings.Join(kinds, " | "))
		}
		for _, c := range d.Candidates {
			if c.Kind == kind {
				envLogf(w.T, "deployment %s is %s: %s", d.ID, d.State, strings.Join(c.Reasons, "; "))
				break
			}
		}
		return nil
	})

	sc.Step(`^the environment's node running "([^"]+)" is killed$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		env := envOf(w)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		n, err := nodeRunning(ctx, w, alloc)
		if err != nil {
			return err
		}
		envLogf(w.T, "killing %s, which runs %s", n.Name, alloc)
		run := envRunOf(w)
		run.killed = append(run.killed, n.PeerID)
		return env.Kill(ctx, n)
	})

	sc.Step(`^within (\d+) seconds the operator's deployment runs "([^"]+)" again on another node$`, func(ctx context.Context, seconds int, alloc string) error {
		w := worldOf(ctx)
		run := envRunOf(w)
		d, err := waitDeployment(ctx, w, run.last(w), seconds, "running "+alloc+" on a node not killed", func(d api.Deployment) bool {
			a, err := w.alloc(d, alloc)
			return err == nil && d.State == "running" && a.State == "running" && !slices.Contains(run.killed, a.Provider)
		})
		if err == nil {
			a, _ := w.alloc(d, alloc)
			envLogf(w.T, "deployment %s runs %s again, on %s", d.ID, alloc, a.Provider)
		}
		return err
	})

	sc.Step(`^within (\d+) seconds the operator's deployment is "([a-z-]+)" with the allocation "([^"]+)" "([a-z-]+)"$`, func(ctx context.Context, seconds int, state, alloc, astate string) error {
		w := worldOf(ctx)
		_, err := waitDeployment(ctx, w, envRunOf(w).last(w), seconds, fmt.Sprintf("%s with %s %s", state, alloc, astate), func(d api.Deployment) bool {
			a, err := w.alloc(d, alloc)
			return err == nil && d.State == state && a.State == astate
		})
		return err
	})

	sc.Step(`^the region "([a-z0-9-]+)" is cut off from the other regions$`, func(ctx context.Context, region string) error {
		env := envOf(worldOf(ctx))
		for _, r := range env.Regions() {
			if r == region {
				continue
			}
			if err := env.Partition(region, r); err != nil {
				return err
			}
		}
		if len(env.Region(region)) == 0 {
			return fmt.Errorf("no region %q (regions: %s)", region, strings.Join(env.Regions(), ", "))
		}
		return nil
	})

	sc.Step(`^within (\d+) seconds no node outside the region "([a-z0-9-]+)" lists a node of it as connected$`, func(ctx context.Context, seconds int, region string) error {
		env := envOf(worldOf(ctx))
		inside := env.Region(region)
		var still string
		start := time.Now()
		err := poll.Until(ctx, time.Duration(seconds)*time.Second, "the nodes outside "+region+" see its nodes gone", func(ctx context.Context) (bool, error) {
			still = ""
			for _, n := range env.Nodes() {
				if n.Region == region {
					continue
				}
				for _, m := range inside {
					ok, err := n.Connected(ctx, m)
					if err != nil {
						return false, err
					}
					if ok {
						still = n.Name + " still lists " + m.Name + " as connected"
						return false, nil
					}
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("%w: %s", err, still)
		}
		envLogf(worldOf(ctx).T, "the nodes outside %s saw its nodes gone after %s", region, time.Since(start).Round(time.Second))
		return nil
	})

	sc.Step(`^an invocation from "([^"]+)" to "([^"]+)" fails with a "([a-z-]+)" or "([a-z-]+)" error$`, func(ctx context.Context, from, to, code1, code2 string) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		r, err := invoke(ctx, w, from, to, 3*time.Second)
		if err != nil {
			return err
		}
		if r.Code == 0 || !(strings.HasPrefix(r.Stderr, code1+":") || strings.HasPrefix(r.Stderr, code2+":")) {
			return fmt.Errorf("dms invoke /public/hello from %s to %s: %s; want a failure starting %s: or %s:", from, to, r, code1, code2)
		}
		envLogf(w.T, "from %s to %s: %s", from, to, strings.TrimSpace(r.Stderr))
		return nil
	})

	sc.Step(`^an invocation from "([^"]+)" to "([^"]+)" succeeds$`, func(ctx context.Context, from, to string) error {
		w := worldOf(ctx)
		ctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		r, err := invoke(ctx, w, from, to, 10*time.Second)
		if err != nil {
			return err
		}
		if r.Code != 0 {
			return fmt.Errorf("dms invoke /public/hello from %s to %s: %s", from, to, r)
		}
		return nil
	})

	sc.Step(`^the partition heals$`, func(ctx context.Context) error {
		return envOf(worldOf(ctx)).HealAll(ctx)
	})

	sc.Step(`^within (\d+) seconds every node of the environment lists every other as connected, without being told to connect$`, func(ctx context.Context, seconds int) error {
		w := worldOf(ctx)
		env := envOf(w)
		var missing string // the last pair found unconnected, kept across tries for the error
		start := time.Now()
		err := poll.Until(ctx, time.Duration(seconds)*time.Second, "every node connected again (bootstrap redial, DHT discovery)", func(ctx context.Context) (bool, error) {
			for _, n := range env.Nodes() {
				for _, m := range env.Nodes() {
					if n == m {
						continue
					}
					ok, err := n.Connected(ctx, m)
					if err != nil {
						return false, err
					}
					if !ok {
						missing = n.Name + " does not list " + m.Name + " as connected"
						return false, nil
					}
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("%w: %s", err, missing)
		}
		envLogf(w.T, "every node connected again %s after the heal", time.Since(start).Round(time.Second))
		return nil
	})
}

// nodeRunning is the environment's node that runs allocation alloc of the
// last deployment.
func nodeRunning(ctx context.Context, w *World, alloc string) (*featureenv.Node, error) {
	d, err := status(ctx, w, envRunOf(w).last(w))
	if err != nil {
		return nil, err
	}
	a, err := w.alloc(d, alloc)
	if err != nil {
		return nil, err
	}
	n := envOf(w).NodeByPeerID(a.Provider)
	if n == nil {
		return nil, fmt.Errorf("allocation %s runs on %q, not a node of the environment", alloc, a.Provider)
	}
	return n, nil
}
