//go:build integration

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// TestJobAttacks runs the attacks a job makes, deployed through a devnet
// of real dms processes as a user would deploy it: node 0 is the
// operator's and orchestrates, node 1 provides one core (docker and
// wasm). Each records its rows in the attack table.
//
//   - defect 8: an ensemble of 10,000 allocations (YAML aliases) is refused
//     by `dms validate` and by `dms deploy` before it contacts anything;
//     ensembles validate accepts near the limits, the node accepts.
//   - defect 7: a Docker job connects to the cloud metadata address and to
//     the provider's own addresses, where real listeners wait: refused, and
//     no listener accepts; a listener on another machine (a namespace the
//     host routes to) stays reachable.
//   - defect 6: a wasm job with cpu 0.5 spins; the provider process uses at
//     most half a core (plus a margin) over its run.
//
// It needs root (addresses on lo, cgroups) and skips the docker part
// without a Docker engine.
func TestJobAttacks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the job attacks need root: addresses on lo, cgroups")
	}
	c := newCluster(t, "", "1")
	t.Run("ensemble limits", func(t *testing.T) { jobAttackEnsembleLimits(t, c) })
	t.Run("metadata", func(t *testing.T) { jobAttackMetadata(t, c) })
	t.Run("wasm cpu", func(t *testing.T) { jobAttackWasmCPU(t, c) })
}

// aliasedEnsemble is an ensemble of n allocations, the first written out
// (body, a flow mapping) and anchored, the others aliases of it: what the
// red team wrote.
func aliasedEnsemble(n int, body string) string {
	var b strings.Builder
	b.WriteString("version: v1\nallocations:\n  a0: &x " + body + "\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  a%d: *x\n", i)
	}
	return b.String()
}

// countingListener listens on addr and counts the connections it accepts.
func countingListener(t *testing.T, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conn.Close()
		}
	}()
	return l, &n
}

// jobAttackEnsembleLimits: defect 8, "validate says valid, the node
// refuses". The red team's 10,000-allocation ensemble validated and the
// node refused it (after the CLI had spent minutes on it); now the limits
// are one set, checked by validate, by deploy before it sends anything,
// and by the node.
func jobAttackEnsembleLimits(t *testing.T, c *cluster) {
	op := c.homes[0]
	const unfit = "{executor: wasm, resources: {cpu: 2, ram: 16MiB}, execution: {module: workload.wasm}}" // over the provider's core: queued, never run
	huge := ensembleFile(t, aliasedEnsemble(10_000, unfit))
	want := fmt.Sprintf("10000 allocations, at most %d (ensemble.MaxAllocations)", ensemble.MaxAllocations)
	deployments := func() int {
		var list []deployment
		op.JSON(t, &list, "deployments")
		return len(list)
	}

	attackCase(t, "ensemble of 10,000 allocations (YAML aliases): dms validate", "8",
		"refused quickly, the limit named", func() (string, error) {
			start := time.Now()
			r := op.Run(t, "validate", "-f", huge)
			took := time.Since(start)
			out := r.Stdout + r.Stderr
			switch {
			case r.Code == 0:
				return "", fmt.Errorf("validate accepted it: %s", r)
			case !strings.Contains(out, want):
				return "", fmt.Errorf("validate refused it without naming the limit (want %q): %s", want, r)
			case took > 10*time.Second: // the red team's CLI spent minutes
				return "", fmt.Errorf("validate took %s, want well under 10s", took)
			}
			return fmt.Sprintf("exit %d in %s: %s", r.Code, took.Round(time.Millisecond), clip(firstLine(out), 120)), nil
		})

	attackCase(t, "ensemble of 10,000 allocations (YAML aliases): dms deploy", "8",
		"refused before contacting any node; no node sees it", func() (string, error) {
			// Pointed at a listener: deploy must not even connect.
			l, accepted := countingListener(t, "127.0.0.1:0")
			r := op.Run(t, "--api", l.Addr().String(), "deploy", "-f", huge, "--detach")
			switch {
			case r.Code == 0:
				return "", fmt.Errorf("deploy accepted it: %s", r)
			case !strings.Contains(r.Stdout+r.Stderr, want):
				return "", fmt.Errorf("deploy refused it without naming the limit (want %q): %s", want, r)
			case accepted.Load() != 0:
				return "", fmt.Errorf("deploy connected %d times to the API before refusing", accepted.Load())
			}
			// Pointed at the operator's node: the node has no trace of it.
			before := deployments()
			r = op.Run(t, "deploy", "-f", huge, "--detach")
			if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, want) {
				return "", fmt.Errorf("deploy to the node: %s; want a refusal naming the limit", r)
			}
			if after := deployments(); after != before {
				return "", fmt.Errorf("the node lists %d deployments after the refused deploy, %d before", after, before)
			}
			return fmt.Sprintf("exit %d, 0 connections to the API, the node's deployments unchanged (%d)", r.Code, before), nil
		})

	// Near the limits: what validate accepts, the node accepts. The
	// allocations ask for more than the provider has, so they queue and
	// never run; each deployment is shut down once the node took it.
	atLimit := ensembleFile(t, aliasedEnsemble(ensemble.MaxAllocations, unfit))
	// 407 allocations with a 10,000-byte env value are at ensemble.MaxSize
	// as deployed (aliases expanded, defaults filled in), to one
	// allocation: 408 are over. (An ensemble at MaxValues is as good a
	// case but costs half a minute of CPU to validate and deploy here.)
	const n, value = 407, 10_000
	big := envBody(1, strings.Repeat("x", value))
	over := ensembleFile(t, aliasedEnsemble(n+1, big))
	attackCase(t, "ensembles at the limits (MaxAllocations; MaxSize as deployed)", "8",
		"dms validate accepts them, and so does the node", func() (string, error) {
			// One allocation more is over: the second case is at the limit.
			r := op.Run(t, "validate", "-f", over)
			if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "(ensemble.MaxSize)") {
				return "", fmt.Errorf("%d allocations with a %d-byte env value: %s; want a refusal naming ensemble.MaxSize (did the size of an allocation as deployed change? find the new limit)", n+1, value, r)
			}
			refused := fmt.Sprintf("%d allocations with a %d-byte env value: validate refuses (MaxSize)", n+1, value)
			var details []string
			for _, tc := range []struct{ name, file string }{
				{fmt.Sprintf("%d allocations", ensemble.MaxAllocations), atLimit},
				{fmt.Sprintf("%d allocations with a %d-byte env value", n, value), ensembleFile(t, aliasedEnsemble(n, big))},
			} {
				start := time.Now()
				if r := op.Run(t, "validate", "-f", tc.file); r.Code != 0 {
					return "", fmt.Errorf("%s: validate refused it: %s", tc.name, r)
				}
				validated := time.Now()
				r := op.Run(t, "deploy", "-f", tc.file, "--detach")
				deployed := time.Now()
				if r.Code != 0 {
					return "", fmt.Errorf("%s: validate accepted it, the node refused it: %s", tc.name, r)
				}
				id := strings.TrimSpace(r.Stdout)
				var d deployment
				// Taken: a bid round ran and it waits, each provider saying
				// why it does not fit (or it failed, the node refusing it).
				poll.Eventually(t, 30*time.Second, tc.name+": queued after a bid round, or failed", func() bool {
					d = c.status(t, id)
					return d.State == "failed" || d.State == "queued" && len(d.Candidates) > 0
				})
				if d.State == "failed" {
					return "", fmt.Errorf("%s: validate accepted it, the node failed it: %s", tc.name, d.Message)
				}
				op.MustRun(t, "deployment", "shutdown", id)
				details = append(details, fmt.Sprintf("%s: validate %s, deploy --detach %s, %s (%d candidates say why not)", tc.name,
					validated.Sub(start).Round(100*time.Millisecond), deployed.Sub(validated).Round(100*time.Millisecond), d.State, len(d.Candidates)))
			}
			c.assertNothingHeld(t)
			return "accepted: " + strings.Join(details, "; ") + "; " + refused, nil
		})
}

// envBody is an unfit wasm allocation (it asks for more than the
// provider's core) with an env of n entries, each value v.
func envBody(n int, v string) string {
	var b strings.Builder
	b.WriteString("{executor: wasm, resources: {cpu: 2, ram: 16MiB}, execution: {module: workload.wasm, env: {")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "K%d: %s", i, v)
	}
	b.WriteString("}}}")
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// onLoopback puts addr on the host's loopback interface for the test (a
// machine's own address, as a cloud metadata proxy on the host has) and
// listens on it; the counter counts the connections accepted.
func onLoopback(t *testing.T, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "add", addr+"/32", "dev", "lo").CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
		t.Skipf("cannot add %s to lo: %v: %s", addr, err, out)
	} else if err == nil {
		t.Cleanup(func() { exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").Run() })
	}
	return countingListener(t, net.JoinHostPort(addr, "0"))
}

// hostIPv4 lists the host's IPv4 addresses a container could try: every
// one but loopback and link-local (the job network's gateway among them).
func hostIPv4(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipn.IP.To4()
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// shellJob writes an ensemble of one docker allocation running script in
// the busybox image: a task, or a service.
func shellJob(t *testing.T, image, script string, service bool) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "job.yaml")
	typ := "task"
	if service {
		typ = "service"
	}
	spec := fmt.Sprintf(`version: v1
allocations:
  job:
    type: %s
    executor: docker
    resources: {cpu: 0.25, ram: 32MiB}
    execution:
      image: %s
      cmd: [/bin/sh, -c, %s]
`, typ, image, strconv.Quote(script))
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// jobAttackMetadata: defect 7, "jobs can reach the cloud metadata
// address". A job deployed through the devnet connects to 169.254.169.254
// and to every address of the provider's host, where listeners wait; and,
// as a control, to a container on the same job network.
func jobAttackMetadata(t *testing.T, c *cluster) {
	image := e2etest.BusyboxImage(t)
	meta, metaConns := onLoopback(t, "169.254.169.254")
	host, hostConns := countingListener(t, "0.0.0.0:0")
	_, hostPort, _ := net.SplitHostPort(host.Addr().String())
	op := c.homes[0]

	// The control: a listener on another machine, off the block list,
	// that the attack job must reach (a network namespace behind a veth,
	// routed by the host; not a neighbour on the job network, which lets
	// no container reach another).
	ctrl, ctrlConns := routedListener(t)
	ctrlIP, ctrlPort, _ := net.SplitHostPort(ctrl.Addr().String())

	metaHost, metaPort, _ := net.SplitHostPort(meta.Addr().String())
	type target struct{ name, host, port string }
	targets := []target{{"meta", metaHost, metaPort}}
	hosts := hostIPv4(t)
	for _, ip := range hosts {
		targets = append(targets, target{"host-" + ip, ip, hostPort})
	}
	targets = append(targets, target{"control", ctrlIP, ctrlPort})
	var script strings.Builder
	for _, tg := range targets {
		fmt.Fprintf(&script, "if nc -w 3 %s %s </dev/null; then echo %s open; else echo %s closed; fi; ", tg.host, tg.port, tg.name, tg.name)
	}
	r := op.Run(t, "deploy", "-f", shellJob(t, image, script.String(), false), "--follow")
	if r.Code != 0 {
		t.Fatalf("the attack job: %s", r)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[len(f)-1] == "open" || f[len(f)-1] == "closed") {
			seen[f[len(f)-2]] = f[len(f)-1]
		}
	}
	t.Logf("the attack job said:\n%s", r.Stdout)
	control := func() error {
		if seen["control"] != "open" || ctrlConns.Load() == 0 {
			return fmt.Errorf("the control connection to %s failed (%q, %d accepted): the test proves nothing", ctrl.Addr(), seen["control"], ctrlConns.Load())
		}
		return nil
	}

	attackCase(t, "docker job connects to the cloud metadata address 169.254.169.254", "7",
		"refused; the listener accepts nothing", func() (string, error) {
			switch {
			case seen["meta"] != "closed":
				return "", fmt.Errorf("the job says %q connecting to %s", seen["meta"], meta.Addr())
			case metaConns.Load() != 0:
				return "", fmt.Errorf("the listener on %s accepted %d connections", meta.Addr(), metaConns.Load())
			}
			if err := control(); err != nil {
				return "", err
			}
			return fmt.Sprintf("nc to %s: closed, 0 accepted; control %s behind the host: open", meta.Addr(), ctrl.Addr()), nil
		})

	attackCase(t, "docker job connects to the provider's own addresses", "7",
		"refused; the listener accepts nothing", func() (string, error) {
			if len(hosts) == 0 {
				return "", errors.New("the host has no address but loopback: nothing to try")
			}
			for _, ip := range hosts {
				if s := seen["host-"+ip]; s != "closed" {
					return "", fmt.Errorf("the job says %q connecting to %s:%s", s, ip, hostPort)
				}
			}
			if n := hostConns.Load(); n != 0 {
				return "", fmt.Errorf("the listener on the host's addresses accepted %d connections", n)
			}
			if err := control(); err != nil {
				return "", err
			}
			return fmt.Sprintf("nc to %s port %s: closed, 0 accepted", strings.Join(hosts, ", "), hostPort), nil
		})
	c.assertNothingHeld(t)
}

// routedListener listens on another machine than the host: a network
// namespace joined to the host by a veth pair (10.251.<n>.0/30, the host
// at .1, the listener at .2), which the host routes to like any network.
func routedListener(t *testing.T) (net.Listener, *atomic.Int32) {
	t.Helper()
	ns := subnettest.NewNetns(t)
	n := os.Getpid() % 250
	hostSide := fmt.Sprintf("dctl%d", os.Getpid())
	for _, args := range [][]string{
		{"link", "add", hostSide, "type", "veth", "peer", "name", "c0", "netns", filepath.Base(ns)},
		{"addr", "add", fmt.Sprintf("10.251.%d.1/30", n), "dev", hostSide},
		{"link", "set", hostSide, "up"},
		{"-n", filepath.Base(ns), "addr", "add", fmt.Sprintf("10.251.%d.2/30", n), "dev", "c0"},
		{"-n", filepath.Base(ns), "link", "set", "c0", "up"},
		{"-n", filepath.Base(ns), "route", "add", "default", "via", fmt.Sprintf("10.251.%d.1", n)},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostSide).Run() })
	var l net.Listener
	subnettest.InNetns(t, ns, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("10.251.%d.2:0", n))
		return err
	})
	t.Cleanup(func() { l.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return l, &conns
}

// procCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat, in clock ticks of 10 ms (USER_HZ 100).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// cpuSample is a process's CPU time at a moment.
type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// sampleCPU samples pid's CPU time every 50 ms until stop is called, which
// returns the samples.
func sampleCPU(t *testing.T, pid int) (stop func() []cpuSample) {
	var (
		mu      sync.Mutex
		samples []cpuSample
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if cpu, err := procCPU(pid); err == nil {
				mu.Lock()
				samples = append(samples, cpuSample{time.Now(), cpu})
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() []cpuSample {
		close(done)
		wg.Wait()
		return samples
	}
}

// reniceThreads sets the nice value of every thread of process pid (the
// threads it starts later inherit it): a process of ours, so that other
// work on a shared machine does not hide its CPU use.
func reniceThreads(pid, nice int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("renice thread %d: %w", tid, err)
		}
	}
	return nil
}

// spinRun is what the provider process used over a spinning job's run.
type spinRun struct {
	cores     float64 // CPU time / wall time
	cpu, wall time.Duration
}

func (r spinRun) String() string {
	return fmt.Sprintf("%.2f cores (%s CPU over %s)", r.cores, r.cpu.Round(10*time.Millisecond), r.wall.Round(10*time.Millisecond))
}

// spinJob deploys a wasm job with cpu that spins for d and measures the
// provider process's CPU time over the job's run (its first half second,
// the instance starting, left out), from samples of /proc/<pid>/stat.
func spinJob(t *testing.T, c *cluster, cpu string, d time.Duration) (spinRun, error) {
	op, provider := c.homes[0], c.nodes[1]
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("spin", cpu, "spin="+d.String()))
	stop := sampleCPU(t, provider.PID())
	id := strings.TrimSpace(op.MustRun(t, "deploy", "-f", f, "--detach"))
	var dep deployment
	poll.Eventually(t, 60*time.Second, "the spinning job ends", func() bool {
		dep = c.status(t, id)
		return dep.State == "completed" || dep.State == "failed"
	})
	samples := stop()
	if dep.State != "completed" || len(dep.Allocations) != 1 {
		return spinRun{}, fmt.Errorf("the job with cpu %s: %s (%s), %d allocations", cpu, dep.State, dep.Message, len(dep.Allocations))
	}
	a := dep.Allocations[0]
	if a.Started.IsZero() || a.Finished.IsZero() {
		return spinRun{}, fmt.Errorf("the allocation has no run times: started %v, finished %v", a.Started, a.Finished)
	}
	if logs := op.MustRun(t, "deployment", "logs", id); !strings.Contains(logs, "spun ") {
		return spinRun{}, fmt.Errorf("the module did not spin: logs %q", logs)
	}
	from, to := a.Started.Add(500*time.Millisecond), a.Finished
	var first, last *cpuSample
	for i := range samples {
		s := &samples[i]
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
	}
	if first == nil || last.at.Sub(first.at) < d/2 {
		return spinRun{}, fmt.Errorf("too few samples inside the run %s–%s (%d samples)", from.Format(time.StampMilli), to.Format(time.StampMilli), len(samples))
	}
	r := spinRun{cpu: last.cpu - first.cpu, wall: last.at.Sub(first.at)}
	r.cores = r.cpu.Seconds() / r.wall.Seconds()
	return r, nil
}

// jobAttackWasmCPU: defect 6, "wasm CPU is not limited". A wasm job with
// cpu 0.5 keeps a core busy for 3 s; the provider process (which runs the
// module on one of its threads) uses at most 0.5 cores plus a margin over
// the job's run (the same margin as the executor's own test, which
// measured the same way). The red team's module used 0.85. The anchor, in the same
// run: the same job with cpu 1 (not limited) uses a whole core, so that the
// measure can tell; the provider is reniced to -10 for that, as other work
// on a shared machine would otherwise take the core and hide a missing
// limit. Where even then the unlimited job gets no more than the bound, the
// result is inconclusive and the test skips.
func jobAttackWasmCPU(t *testing.T, c *cluster) {
	const (
		limit = 0.5
		// margin: 0.1 core, as the executor's TestWasmCPULimit. A wider
		// one cannot fail here: an unlimited module gets 0.64–0.77 of a
		// core on this shared machine (the red team's, 0.85).
		margin = 0.1
		spin   = 3 * time.Second
	)
	provider := c.nodes[1]
	if strings.Contains(provider.Log(), "wasm modules run without CPU limits") {
		t.Skip("the provider logs that it cannot limit wasm CPU (no usable cpu cgroup): defect 6 not testable here")
	}
	if err := reniceThreads(provider.PID(), -10); err != nil {
		t.Fatal(err)
	}
	op := c.homes[0]
	// A first run compiles the module (and fetches it): measure only the
	// spinning runs.
	if r := op.Run(t, "deploy", "-f", ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("warm", "0.5", "print=warm")), "--follow"); r.Code != 0 {
		t.Fatalf("the warm-up job: %s", r)
	}
	anchor, err := spinJob(t, c, "1", spin)
	if err != nil {
		t.Fatalf("the anchor (cpu 1, not limited): %v", err)
	}
	name := fmt.Sprintf("wasm job with cpu: %g spins for %s", limit, spin)
	expect := fmt.Sprintf("provider process uses ≤ %g cores (+%g margin)", limit, margin)
	if anchor.cores <= limit+margin {
		recordAttack(attackRow{Attack: name, Defect: "6", Expect: expect, Result: "inconclusive",
			Detail: fmt.Sprintf("the anchor, not limited, used only %s: this machine cannot show a missing limit", anchor)})
		t.Skipf("inconclusive: the same job not limited (cpu 1) used only %s, not more than %.2f: the machine is too busy to show a missing limit", anchor, limit+margin)
	}
	attackCase(t, name, "6", expect, func() (string, error) {
		r, err := spinJob(t, c, strconv.FormatFloat(limit, 'f', -1, 64), spin)
		if err != nil {
			return "", err
		}
		detail := fmt.Sprintf("provider used %s; anchor, cpu 1 not limited: %s", r, anchor)
		if r.cores > limit+margin {
			return detail, fmt.Errorf("over %.2f cores", limit+margin)
		}
		return detail, nil
	})
	c.assertNothingHeld(t)
}
