package devnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/api"
)

// Limits and files of a devnet made by Up.
//
// MaxNodes is a hundred: what two cores and a few GB hold with room for
// other work. A node of a full mesh keeps a connection to each other node
// (99 at most, below the connection manager's low watermark of 100, so
// none is trimmed; LeanSettings raises the inbound limit that node1, the
// bootstrap peer, would hit first), two loopback ports and some 40–60 MB;
// its idle work grows with its peers (each connection's keepalive and
// round-trip ping, gossip heartbeats, DHT lookups), so the whole devnet's idle CPU grows with the square of its
// size: at 100 nodes it is the largest part of two cores that a devnet
// should take (docs/PERFORMANCE.md, "Scale: a hundred real nodes").
const (
	MaxNodes     = 100
	StartTimeout = 30 * time.Second // for one node's API to answer; see startTimeout
	MeshTimeout  = 15 * time.Second // for every node to list every other, after MeshGrace
	// MeshGrace is how long Up lets the nodes' discovery (bootstrap and
	// DHT) connect them before it dials the pairs still apart.
	MeshGrace = 5 * time.Second
	// LeanNodes is the size from which Up gives every node LeanSettings.
	LeanNodes      = 20
	PassphraseFile = "passphrase" // in the devnet directory
	LogFile        = "dms.log"    // in each node's home
)

// Executors are the executors a devnet node may enable.
var Executors = []string{"docker", "vm", "wasm"}

// UpConfig says what Up starts.
type UpConfig struct {
	Dir   string // absolute; created, and must not hold anything yet
	Nodes int    // 1 to MaxNodes
	// Executors are enabled in every node's configuration (sorted, each
	// one of Executors). Up fails with an *UnusableError when this
	// machine cannot run one of them, unless KeepUsable: then every node
	// offers those it can run.
	Executors  []string
	KeepUsable bool
	Onboard    api.OnboardRequest // on every node
	Benchmark  time.Duration      // each node's machine benchmark, up to this long; 0: none
	Binary     string             // the dms binary every node runs
	LogLevel   string             // dms run --log-level; "": its default
	// MeshGrace is how long the nodes' discovery may connect them before
	// Up dials the pairs still apart (0: MeshGrace; negative: dial at
	// once). State.Mesh says what discovery did.
	MeshGrace time.Duration
	// Parallel bounds the nodes initialised and started at once (0:
	// DefaultParallel): each unlocks its keys with scrypt (32 MiB, tens of
	// milliseconds of a core), so a hundred at once only queue for the
	// CPU and hold gigabytes.
	Parallel int
	// Progress hears of each step (nil: nothing). It is called from Up's
	// goroutine, one event at a time.
	Progress func(Event)
}

// Step names a step of Up in its Events.
type Step string

// The steps of Up, in order. StepStart comes once per node; the mesh and
// the operator's trust only with more than one node.
const (
	StepHomes     Step = "homes"     // dms init and configure every home
	StepStart     Step = "start"     // one node: start it and wait for its API (Event.Node)
	StepExecutors Step = "executors" // ends only: what node1 can run (Event.Usable, Event.Missing)
	StepMesh      Step = "mesh"      // connect every node to every other
	StepTrust     Step = "trust"     // every node trusts the operator for /dms
	StepOnboard   Step = "onboard"   // onboard (and benchmark) every node
)

// Event reports that a step of Up began (Done false) or ended (Done
// true, with Err).
type Event struct {
	Step  Step
	Done  bool
	Err   error
	State *State // the devnet so far; read it only during the call
	Node  *Node  // StepStart: the node, with PeerID and API once it answered
	// StepExecutors: the executors every node offers, and those asked
	// for (KeepUsable) that this machine cannot run.
	Usable, Missing []string
}

// UnusableError is Up's error when this machine cannot run an executor it
// was asked for. Up removes the devnet's directory then: its logs tell
// nothing.
type UnusableError struct {
	Executor string
	// Why, one of: no Docker engine answers on DockerSocket; the QEMU
	// binary QEMU is not installed; this dms does not run the executor
	// (it offers Offers).
	DockerSocket string
	QEMU         string
	Offers       []string
}

func (e *UnusableError) Error() string {
	switch {
	case e.DockerSocket != "":
		return fmt.Sprintf("executor %s: no Docker engine answers on this machine (socket %q)", e.Executor, e.DockerSocket)
	case e.QEMU != "":
		return fmt.Sprintf("executor %s: QEMU (%s) is not installed", e.Executor, e.QEMU)
	}
	return fmt.Sprintf("executor %s: this dms does not run %s jobs (it offers %s)", e.Executor, e.Executor, strings.Join(e.Offers, ", "))
}

// UpError is Up's error: the step that failed (Err), and what Up did
// about it. It stopped the nodes it had started (unless StopErr); after
// an interrupt (Err matches context.Canceled) or an *UnusableError it
// also removed Dir (Removed, unless RemoveErr), else it kept Dir for the
// nodes' logs.
type UpError struct {
	Err       error
	Dir       string
	StopErr   error
	Removed   bool
	RemoveErr error
}

func (e *UpError) Error() string {
	switch {
	case e.StopErr != nil:
		return fmt.Sprintf("devnet up: %v; stopping the started nodes failed too: %v", e.Err, e.StopErr)
	case e.RemoveErr != nil:
		return fmt.Sprintf("devnet up: %v; stopped its nodes, but removing %s failed: %v", e.Err, e.Dir, e.RemoveErr)
	case e.Removed:
		return fmt.Sprintf("devnet up: %v; stopped its nodes and removed %s", e.Err, e.Dir)
	}
	return fmt.Sprintf("devnet up: %v; stopped its nodes; logs kept in %s", e.Err, e.Dir)
}

func (e *UpError) Unwrap() error { return e.Err }

// startTimeout is how long a node of a devnet of n nodes may take to
// answer: StartTimeout, and 1.2 s more per node beyond 25, because the
// nodes already running take their share of the CPU (on a loaded machine
// of 2 cores, the 67th of 100 nodes once needed more than 30 s).
func startTimeout(n int) time.Duration {
	return StartTimeout + time.Duration(max(n-25, 0))*1200*time.Millisecond
}

// DefaultParallel is UpConfig.Parallel when it is 0: twice the cores,
// 2 to 8.
func DefaultParallel() int { return min(max(2*runtime.NumCPU(), 2), 8) }

// Up starts a devnet in cfg.Dir: a home per node (dms init, one random
// passphrase for every key in <dir>/passphrase, NodeSettings on loopback),
// node1 then the others with --bootstrap node1, each a detached `dms run`
// logging to <home>/dms.log; then the mesh, node1's user as the operator
// every node trusts for /dms, and the onboarding. It records each step in
// <dir>/devnet.json and returns the state. On failure it returns an
// *UpError.
func Up(ctx context.Context, cfg UpConfig) (st *State, err error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.Dir, err)
	}
	pass := filepath.Join(cfg.Dir, PassphraseFile)
	if err := writeNew(pass, []byte(randomHex()+"\n")); err != nil {
		return nil, fmt.Errorf("write passphrase: %w", err)
	}
	st = &State{Dir: cfg.Dir, Created: time.Now().UTC().Truncate(time.Second), Executors: cfg.Executors, PassphraseFile: pass}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("node%d", i+1)
		home := filepath.Join(cfg.Dir, name)
		st.Nodes = append(st.Nodes, Node{Name: name, Home: home, Log: filepath.Join(home, LogFile)})
	}
	st.Operator.Home = st.Nodes[0].Home
	if err := st.Save(); err != nil {
		return nil, err
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel()
	}
	switch {
	case cfg.MeshGrace == 0:
		cfg.MeshGrace = MeshGrace
	case cfg.MeshGrace < 0:
		cfg.MeshGrace = 0
	}
	u := &up{cfg: cfg, st: st, env: Environ(pass), procs: make([]*Process, cfg.Nodes), peers: make([]Peer, cfg.Nodes)}
	if err := u.run(ctx); err != nil {
		return nil, u.abort(err)
	}
	return st, nil
}

// Environ is the environment of a devnet's node processes: this
// process's without the DMS_* variables (which would override their
// configuration), and the passphrase file.
func Environ(passphraseFile string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DMS_") {
			env = append(env, kv)
		}
	}
	return append(env, "DMS_PASSPHRASE_FILE="+passphraseFile)
}

// up is one run of Up.
type up struct {
	cfg   UpConfig
	mu    sync.Mutex // guards st, procs and peers while nodes start, and serialises Progress
	st    *State
	env   []string
	procs []*Process // by node index; nil until started
	peers []Peer     // by node index; set once its API answers
}

// save writes the state; it may be called from several goroutines.
func (u *up) save() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st.Save()
}

func (u *up) report(e Event) {
	if u.cfg.Progress != nil {
		e.State = u.st
		u.cfg.Progress(e)
	}
}

// step reports the start and the end of fn.
func (u *up) step(s Step, fn func() error) error {
	u.report(Event{Step: s})
	err := fn()
	u.report(Event{Step: s, Done: true, Err: err})
	return err
}

func (u *up) run(ctx context.Context) error {
	began := time.Now()
	err := u.step(StepHomes, func() error {
		return eachN(len(u.st.Nodes), u.cfg.Parallel, func(i int) error { return u.initHome(ctx, i) })
	})
	if err != nil {
		return err
	}
	u.st.Times.HomesMS = time.Since(began).Milliseconds()
	began = time.Now()
	u.st.Operator.DID = u.st.Nodes[0].UserDID

	if err := u.start(0, nil); err != nil {
		return err
	}
	if err := u.waitReady(ctx, 0); err != nil {
		return err
	}
	if err := u.checkExecutors(ctx); err != nil {
		return err
	}
	// The others, cfg.Parallel at a time: each is started, and the next
	// one once its API answers. The first failure stops the starts.
	boot := []string{"--bootstrap", u.peers[0].Addr}
	var (
		failed sync.Once
		cause  error // the first node that failed
	)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	err = eachN(len(u.st.Nodes)-1, u.cfg.Parallel, func(i int) error {
		if sctx.Err() != nil {
			return sctx.Err()
		}
		err := u.start(i+1, boot)
		if err == nil {
			err = u.waitReady(sctx, i+1)
		}
		if err != nil {
			failed.Do(func() { cause = err; stop() })
		}
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return cause
	}
	u.st.Times.StartMS = time.Since(began).Milliseconds()
	if len(u.peers) > 1 {
		err := u.step(StepMesh, func() error {
			res, err := MeshWith(ctx, u.peers, MeshOptions{Timeout: u.cfg.MeshGrace + MeshTimeout, Grace: u.cfg.MeshGrace})
			u.st.Mesh = &MeshRecord{TookMS: res.Took.Milliseconds(), GraceMS: u.cfg.MeshGrace.Milliseconds(),
				Discovered: res.Discovered, Apart: res.Apart, Dialed: res.Dialed}
			return err
		})
		if err != nil {
			return err
		}
		// node1 trusts its own user since dms init.
		if err := u.step(StepTrust, func() error { return TrustOperator(ctx, u.peers[1:], u.st.Operator.DID) }); err != nil {
			return err
		}
	}
	if err := u.step(StepOnboard, func() error { return Onboard(ctx, u.peers, u.cfg.Onboard, u.cfg.Benchmark) }); err != nil {
		return err
	}
	return u.st.Save()
}

// initHome runs dms init for node i and configures its home.
func (u *up) initHome(ctx context.Context, i int) error {
	node := &u.st.Nodes[i]
	id, err := Init(ctx, LocalRunner(u.cfg.Binary, node.Home, u.env))
	if err != nil {
		return fmt.Errorf("%s: %w", node.Name, err)
	}
	u.mu.Lock()
	node.DID, node.UserDID = id.NodeDID, id.UserDID
	u.mu.Unlock()
	settings := NodeSettings("/ip4/127.0.0.1/tcp/0", "127.0.0.1:0", u.cfg.Executors)
	if len(u.st.Nodes) >= LeanNodes {
		settings = append(settings, LeanSettings(len(u.st.Nodes))...)
	}
	if err := Configure(node.Home, settings...); err != nil {
		return fmt.Errorf("%s: %w", node.Name, err)
	}
	return nil
}

// start starts node i's `dms run`.
func (u *up) start(i int, extra []string) error {
	node := &u.st.Nodes[i]
	os.Remove(filepath.Join(node.Home, api.AddrFile))
	args := []string{"--home", node.Home, "--log-format", "json"}
	if u.cfg.LogLevel != "" {
		args = append(args, "--log-level", u.cfg.LogLevel)
	}
	args = append(append(args, "run"), extra...)
	p, err := Start(Command{Path: u.cfg.Binary, Args: args, Env: u.env, Dir: node.Home, Log: node.Log})
	if err != nil {
		return fmt.Errorf("%s: %w", node.Name, err)
	}
	u.mu.Lock()
	u.procs[i] = p
	node.PID = p.PID
	u.mu.Unlock()
	return u.save()
}

// process is a devnet node process as a Member.
type process struct {
	home, log string
	p         *Process
}

func (m process) API() (*api.Client, error) { return Client(m.home, nil) }

func (m process) Exited(context.Context) error {
	select {
	case <-m.p.Exited():
		return errors.New(lastLogLine(m.log))
	default:
		return nil
	}
}

// waitReady waits until node i's API answers, and records its identity.
// Node1 reports its start at once; the others, started several at a time,
// report it when they answered (or failed), so that each one's events
// come together.
func (u *up) waitReady(ctx context.Context, i int) error {
	u.mu.Lock()
	node := &u.st.Nodes[i]
	m := process{home: node.Home, log: node.Log, p: u.procs[i]}
	u.mu.Unlock()
	if i == 0 {
		u.report(Event{Step: StepStart, Node: node})
	}
	timeout := startTimeout(len(u.st.Nodes))
	c, self, err := WaitReady(ctx, m, timeout)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case errors.Is(err, ErrExited):
		err = fmt.Errorf("%s %w (log: %s)", node.Name, err, node.Log)
	case err != nil && ctx.Err() == nil:
		err = fmt.Errorf("%s: its API did not answer within %s (log: %s)", node.Name, timeout, node.Log)
	case err == nil:
		node.PeerID, node.Addrs, node.API = self.PeerID, self.Addrs, APIAddr(node.Home)
		u.peers[i] = Peer{Name: node.Name, PeerID: self.PeerID, Addr: LoopbackAddr(self.Addrs), API: c}
	}
	if i != 0 {
		u.report(Event{Step: StepStart, Node: node})
	}
	u.report(Event{Step: StepStart, Node: node, Done: true, Err: err})
	if err != nil {
		return err
	}
	return u.st.Save()
}

// LoopbackAddr picks the address to dial a node on: a loopback TCP one
// when there is one.
func LoopbackAddr(addrs []string) string {
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// checkExecutors checks on node1 that the machine can run the executors
// asked for, and records what each node will offer.
func (u *up) checkExecutors(ctx context.Context) error {
	snap, err := u.peers[0].API.Resources(ctx)
	if err != nil {
		return fmt.Errorf("node1: resources: %w", err)
	}
	m := snap.Machine
	usable := m.Executors
	var missing []string
	if !u.cfg.KeepUsable {
		for _, e := range u.cfg.Executors {
			if slices.Contains(usable, e) {
				continue
			}
			switch {
			case e == "docker" && !m.Docker.Reachable:
				return &UnusableError{Executor: e, DockerSocket: m.Docker.Socket}
			case e == "vm" && m.QEMU == "":
				return &UnusableError{Executor: e, QEMU: "qemu-system-" + qemuArch(m.CPU.Arch)}
			default:
				// The machine has what it needs, but this dms does not
				// run that executor.
				return &UnusableError{Executor: e, Offers: slices.Clone(usable)}
			}
		}
	} else {
		missing = slices.DeleteFunc(slices.Clone(u.cfg.Executors), func(e string) bool { return slices.Contains(usable, e) })
	}
	for i := range u.st.Nodes {
		u.st.Nodes[i].Executors = slices.Clone(usable)
	}
	u.report(Event{Step: StepExecutors, Done: true, Usable: slices.Clone(usable), Missing: missing})
	return nil
}

func qemuArch(goarch string) string {
	switch goarch {
	case "amd64", "":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

// abort stops what was started. It keeps the directory for its logs,
// except after an interrupt or an unusable executor.
func (u *up) abort(cause error) error {
	e := &UpError{Err: cause, Dir: u.st.Dir}
	var procs []Proc
	for _, n := range u.st.Nodes {
		procs = append(procs, Proc{PID: n.PID, Home: n.Home})
	}
	// ctx may be cancelled (Ctrl-C): stopping must still happen.
	if _, err := Stop(context.Background(), procs, 10*time.Second); err != nil {
		e.StopErr = err
		return e
	}
	var unusable *UnusableError
	if errors.Is(cause, context.Canceled) || errors.As(cause, &unusable) {
		if err := os.RemoveAll(u.st.Dir); err != nil {
			e.RemoveErr = err
			return e
		}
		e.Removed = true
		return e
	}
	_ = u.st.Save()
	return e
}

// lastLogLine returns the last line of a node's log (its message when it
// is a JSON log record), or a placeholder.
func lastLogLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return "empty log"
	}
	var rec struct {
		Msg string `json:"msg"`
		Err string `json:"err"`
	}
	if json.Unmarshal([]byte(last), &rec) == nil && rec.Msg != "" {
		if rec.Err != "" {
			return rec.Msg + ": " + rec.Err
		}
		return rec.Msg
	}
	return last
}

// randomHex returns 32 random bytes in hex.
func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeNew creates path with mode 0600, refusing to overwrite.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
