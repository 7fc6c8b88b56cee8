// Package scalebench measures a running devnet as a whole system, through
// its nodes' CLI and REST API and /proc (docs/PERFORMANCE.md, "Scale: a
// hundred real nodes"): how its nodes came to be connected, how long a
// gossip broadcast takes to reach every node, a bid round across every
// provider, the idle nodes' memory and CPU, and deploy → running of a
// small wasm job.
//
//	st, err := devnet.Load(dir)                       // after dms devnet up --dir dir
//	r, err := scalebench.Measure(ctx, scalebench.Config{Bin: bin, State: st, Job: "examples/hello.yaml"})
//	fmt.Println(r.Gossip.P50, r.Bid.P99, r.Idle.RSSPerNodeMB)
//
// Every time is taken by the nodes themselves (a broadcast reply's
// after_ms, a plan's round_ms, a deployment's created and started), so the
// CLI's own start-up (its scrypt key unlock) is not in the figures. It
// reads /proc: Linux only.
package scalebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
)

// Config says what Measure measures.
type Config struct {
	Bin   string        // the dms binary (the devnet's)
	State *devnet.State // the devnet, as dms devnet up left it
	// Job is an ensemble file of one small task that every node can run
	// (examples/hello.yaml): planned Samples times, deployed once. Empty:
	// no bid rounds and no deployment.
	Job string
	// Samples is the number of broadcasts and of bid rounds (0: 10).
	Samples int
	// Settle is the pause before the idle window (0: none); Idle the
	// window (0: 30 s).
	Settle, Idle time.Duration
	// Collect is how long a broadcast collects replies (0: 2 s and 20 ms
	// per node).
	Collect time.Duration
	// Progress hears what is being measured (nil: nothing).
	Progress func(string)
}

// Dist summarises samples, in milliseconds: nearest-rank percentiles.
type Dist struct {
	N             int
	P50, P99, Max float64
}

// dist returns the distribution of xs.
func dist(xs []float64) Dist {
	if len(xs) == 0 {
		return Dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(p float64) float64 { return s[max(int(math.Ceil(p*float64(len(s))))-1, 0)] }
	return Dist{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// Report is what Measure found.
type Report struct {
	Nodes int
	// PeersMin and PeersMax are the fewest and most connected peers a
	// node lists (a full mesh: both Nodes-1).
	PeersMin, PeersMax int
	// Gossip: per broadcast (/public/hello on topic hello, which every
	// node answers), the time until the last other node's reply arrived;
	// Reached is the fewest nodes that answered one broadcast (want
	// Nodes-1: the publisher does not answer its own).
	Gossip  Dist
	Reached int
	// Bid: per dry-run bid round (dms plan), its round_ms; Answered is the
	// fewest providers that answered one round, of Asked (this node
	// included).
	Bid             Dist
	Asked, Answered int
	Idle            Idle
	// Deploy is deploy → running of Job: from the deployment's creation
	// to its allocation's start, both as node1 recorded them, in ms;
	// DeployState is how it ended (completed).
	Deploy      float64
	DeployState string
	Load        [3]float64 // load average at the end
}

// Idle is the nodes' memory and CPU over the idle window.
type Idle struct {
	Window       time.Duration
	RSSTotalMB   float64 // sum of the nodes' VmRSS at the end
	RSSPerNodeMB float64 // mean
	RSSMaxMB     float64
	CPUPercent   float64 // all nodes together, in % of one core
	CPUPerNode   float64 // mean, in % of one core
}

// Measure measures the devnet of cfg.State. Each figure it cannot take is
// an error that says which.
func Measure(ctx context.Context, cfg Config) (*Report, error) {
	st := cfg.State
	if st == nil || len(st.Nodes) == 0 {
		return nil, errors.New("scalebench: no devnet")
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 10
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Second
	}
	if cfg.Collect <= 0 {
		cfg.Collect = 2*time.Second + time.Duration(len(st.Nodes))*20*time.Millisecond
	}
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf(format, args...))
		}
	}
	r := &Report{Nodes: len(st.Nodes)}
	env := devnet.Environ(st.PassphraseFile)

	// Peers as the nodes list them.
	r.PeersMin = math.MaxInt
	for _, n := range st.Nodes {
		c, err := devnet.Client(n.Home, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		ps, err := c.Peers(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: list peers: %w", n.Name, err)
		}
		conn := 0
		for _, p := range ps {
			if p.Connected {
				conn++
			}
		}
		r.PeersMin, r.PeersMax = min(r.PeersMin, conn), max(r.PeersMax, conn)
	}

	// Idle first, before the measurements below leave work behind.
	if cfg.Settle > 0 {
		say("settling %s", cfg.Settle)
		if err := sleep(ctx, cfg.Settle); err != nil {
			return nil, err
		}
	}
	say("idle window %s", cfg.Idle)
	idle, err := measureIdle(ctx, st, cfg.Idle)
	if err != nil {
		return nil, err
	}
	r.Idle = idle

	// Gossip: a broadcast from a different node each time.
	var reach []float64
	r.Reached = math.MaxInt
	for i := range cfg.Samples {
		n := st.Nodes[(i*7)%len(st.Nodes)]
		say("broadcast %d/%d from %s", i+1, cfg.Samples, n.Name)
		var res api.BroadcastResult
		if err := runJSON(ctx, cfg.Bin, n.Home, env, &res, "invoke", api.BehaviorHello, "--topic", api.TopicHello,
			"--timeout", cfg.Collect.String()); err != nil {
			return nil, fmt.Errorf("broadcast from %s: %w", n.Name, err)
		}
		last, from := 0.0, map[string]bool{}
		for _, rp := range res.Replies {
			if rp.Error != nil || rp.From.Host == n.PeerID {
				continue
			}
			from[rp.From.Host] = true
			last = max(last, rp.AfterMS)
		}
		r.Reached = min(r.Reached, len(from))
		if len(from) == len(st.Nodes)-1 {
			reach = append(reach, last)
		}
	}
	r.Gossip = dist(reach)

	if cfg.Job != "" {
		// Bid rounds from node1, the operator every node trusts.
		op := st.Nodes[0]
		var rounds []float64
		r.Answered = math.MaxInt
		for i := range cfg.Samples {
			say("bid round %d/%d", i+1, cfg.Samples)
			var p api.Plan
			if err := runJSON(ctx, cfg.Bin, op.Home, env, &p, "plan", "-f", cfg.Job); err != nil {
				return nil, fmt.Errorf("plan: %w", err)
			}
			rounds = append(rounds, p.RoundMS)
			r.Asked, r.Answered = max(r.Asked, p.Asked), min(r.Answered, p.Answered)
		}
		r.Bid = dist(rounds)

		say("deploy")
		var d api.Deployment
		if err := runJSON(ctx, cfg.Bin, op.Home, env, &d, "deploy", "-f", cfg.Job, "--timeout", "3m"); err != nil {
			return nil, fmt.Errorf("deploy: %w", err)
		}
		r.DeployState = d.State
		for _, a := range d.Allocations {
			if a.Started.IsZero() {
				return nil, fmt.Errorf("deploy: allocation %s has no start time (state %s, deployment %s)", a.Name, a.State, d.State)
			}
			r.Deploy = max(r.Deploy, float64(a.Started.Sub(d.Created).Microseconds())/1000)
		}
		if len(d.Allocations) == 0 {
			return nil, fmt.Errorf("deploy: deployment %s %s without allocations", d.ID, d.State)
		}
	}
	r.Load = loadavg()
	return r, nil
}

// measureIdle samples the nodes' CPU ticks over window and their RSS at
// its end.
func measureIdle(ctx context.Context, st *devnet.State, window time.Duration) (Idle, error) {
	idle := Idle{Window: window}
	t0, err := ticks(st)
	if err != nil {
		return idle, err
	}
	began := time.Now()
	if err := sleep(ctx, window); err != nil {
		return idle, err
	}
	t1, err := ticks(st)
	if err != nil {
		return idle, err
	}
	took := time.Since(began).Seconds()
	var total uint64
	for i := range t0 {
		total += t1[i] - t0[i]
	}
	// USER_HZ is 100 on Linux.
	idle.CPUPercent = float64(total) / took
	idle.CPUPerNode = idle.CPUPercent / float64(len(st.Nodes))
	for _, n := range st.Nodes {
		kb, err := statusKB(n.PID, "VmRSS:")
		if err != nil {
			return idle, fmt.Errorf("%s: %w", n.Name, err)
		}
		mb := float64(kb) * 1024 / 1e6 // /proc's "kB" are KiB; MB as in PERFORMANCE.md
		idle.RSSTotalMB += mb
		idle.RSSMaxMB = max(idle.RSSMaxMB, mb)
	}
	idle.RSSPerNodeMB = idle.RSSTotalMB / float64(len(st.Nodes))
	return idle, nil
}

// ticks returns each node's user and system CPU ticks.
func ticks(st *devnet.State) ([]uint64, error) {
	out := make([]uint64, len(st.Nodes))
	for i, n := range st.Nodes {
		if !devnet.Alive(n.PID, n.Home) {
			return nil, fmt.Errorf("%s (pid %d) is not running", n.Name, n.PID)
		}
		data, err := os.ReadFile("/proc/" + strconv.Itoa(n.PID) + "/stat")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		// pid (comm) state ... : fields after the last ')'; utime and
		// stime are the 14th and 15th of the whole line.
		j := bytes.LastIndexByte(data, ')')
		f := strings.Fields(string(data[j+1:]))
		if len(f) < 13 {
			return nil, fmt.Errorf("%s: short /proc stat", n.Name)
		}
		u, err1 := strconv.ParseUint(f[11], 10, 64)
		s, err2 := strconv.ParseUint(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s: /proc stat: %w", n.Name, err)
		}
		out[i] = u + s
	}
	return out, nil
}

// statusKB reads a kB field of /proc/<pid>/status.
func statusKB(pid int, field string) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// loadavg returns the load averages, or zeros.
func loadavg() (l [3]float64) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(data)) {
		if i == 3 {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

// runJSON runs `bin --home home -o json args...` with env and decodes its
// stdout into v.
func runJSON(ctx context.Context, bin, home string, env []string, v any, args ...string) error {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--home", home, "-o", "json"}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("dms %s: %s", strings.Join(args, " "), msg)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return fmt.Errorf("dms %s: decode output: %w", strings.Join(args, " "), err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
