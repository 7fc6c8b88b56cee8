//go:build linux

package featureenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/devnet"
)

// Labels on everything the environment creates.
const (
	labelRun    = "dms.featureenv.run"    // the run ID, on containers and networks
	labelNode   = "dms.featureenv.node"   // the node name, on containers
	labelRegion = "dms.featureenv.region" // the node's region, on containers
	labelImage  = "dms.featureenv.image"  // on the images
)

// Defaults of Config.
const (
	DefaultCPUs         = 1.0
	DefaultMemory       = 512 << 20
	DefaultStartTimeout = 60 * time.Second
	// Passphrase encrypts every key of every node.
	Passphrase = "featureenv"
	// P2PPort is the TCP port every node listens on, on its container's
	// address.
	P2PPort = 4001
)

// Config says what environment to start.
type Config struct {
	// Regions maps each region's name (a DNS label: eu, us-east) to its
	// number of nodes. Nodes are named <region>-<k> (eu-1, eu-2…).
	Regions map[string]int
	// InterRegionLatency is the round trip added between two nodes of
	// different regions: each packet is held for half of it, in each
	// direction. Nodes of one region see none.
	InterRegionLatency time.Duration
	// Loss is the probability that a packet between two regions is lost,
	// in each direction (0 ≤ Loss < 1).
	Loss float64
	// Binary is a statically linked dms to run; empty: $DMS_FEATUREENV_BIN,
	// else one built from this checkout (CGO_ENABLED=0). The node image
	// is built from it, and rebuilt only when its content changes.
	Binary string
	// Settings are dms configuration keys set on every node after the
	// environment's own (orchestrator.lost_after: 4s).
	Settings map[string]string
	// Env is extra environment of every node (KEY=VALUE).
	Env []string
	// Docker also gives every node the docker executor, on this
	// machine's Docker engine, and what a subnet needs (docker.go): the
	// engine's socket, the host's PID namespace (to reach its containers'
	// network namespaces), /dev/net/tun, CAP_NET_ADMIN, CAP_SYS_ADMIN,
	// CAP_SYS_PTRACE and a writable /proc/sys. Its workload containers are siblings of the nodes'
	// (removed by Close, found by the nodes' dms.node labels); a published
	// port is published on this machine.
	Docker bool
	// CPUs and Memory limit each container (defaults 1 core, 512 MiB).
	CPUs   float64
	Memory int64
	// StartTimeout bounds each node's start and the mesh (default 60s).
	StartTimeout time.Duration
	// Logf receives progress lines (nil: none), e.g. t.Logf.
	Logf func(format string, args ...any)
}

var regionName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$`)

// validate checks cfg and fills in its defaults.
func (cfg *Config) validate() error {
	var errs []error
	if len(cfg.Regions) == 0 {
		errs = append(errs, errors.New("Regions: give at least one region with nodes"))
	}
	total := 0
	for r, n := range cfg.Regions {
		if !regionName.MatchString(r) {
			errs = append(errs, fmt.Errorf("region %q: want 1 to 16 lower-case letters, digits and -", r))
		}
		if n < 1 || n > 20 {
			errs = append(errs, fmt.Errorf("region %s: %d nodes, want 1 to 20", r, n))
		}
		total += n
	}
	if total > 20 {
		errs = append(errs, fmt.Errorf("%d nodes in all: at most 20", total))
	}
	if cfg.InterRegionLatency < 0 || cfg.InterRegionLatency > 10*time.Second {
		errs = append(errs, fmt.Errorf("InterRegionLatency %s: want 0 to 10s", cfg.InterRegionLatency))
	}
	if cfg.Loss < 0 || cfg.Loss >= 1 {
		errs = append(errs, fmt.Errorf("Loss %g: want 0 ≤ Loss < 1", cfg.Loss))
	}
	if cfg.CPUs < 0 || cfg.Memory < 0 || cfg.StartTimeout < 0 {
		errs = append(errs, errors.New("CPUs, Memory and StartTimeout must not be negative"))
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = DefaultCPUs
	}
	if cfg.Memory == 0 {
		cfg.Memory = DefaultMemory
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return errors.Join(errs...)
}

// Env is a running environment. Its methods may be called from several
// goroutines.
type Env struct {
	cfg     Config
	run     string // run ID, in every name and label
	cli     *client.Client
	dir     string // the nodes' homes, on this machine
	image   string
	netID   string
	subnet  netip.Prefix
	nodes   []*Node // by region name, then number
	shaper  *shaper
	unlock  func()
	closeMu sync.Mutex
	closed  bool // guarded by closeMu
}

// Start builds the image if needed, creates the network and a container
// per node, shapes the traffic between regions, and returns once every
// node's API answers, every node is connected to every other and trusts
// the operator (Operator: the first node) for /dms.
//
// Only one environment runs on a machine at a time: Start waits (within
// ctx) for the one running to close, then removes whatever a run that
// did not close left behind. On error, everything Start created is
// removed; the error says which node failed and ends with its log.
func Start(ctx context.Context, cfg Config) (*Env, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("featureenv: %w", err)
	}
	if err := hostTools(); err != nil {
		return nil, fmt.Errorf("featureenv: %w", err)
	}
	cli, err := client.New(client.FromEnv)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pctx, client.PingOptions{})
		cancel()
	}
	if err != nil {
		if cli != nil {
			cli.Close()
		}
		return nil, fmt.Errorf("featureenv: %w: no Docker engine answers: %v", ErrUnsupported, err)
	}
	unlock, err := lockMachine(ctx, cfg.Logf)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("featureenv: %w", err)
	}
	var id [4]byte
	rand.Read(id[:])
	e := &Env{cfg: cfg, run: hex.EncodeToString(id[:]), cli: cli, unlock: unlock,
		shaper: newShaper(cfg.InterRegionLatency, cfg.Loss, cfg.Logf)}
	if err := e.start(ctx); err != nil {
		if cerr := e.Close(); cerr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return nil, fmt.Errorf("featureenv: run %s: %w", e.run, err)
	}
	return e, nil
}

func (e *Env) start(ctx context.Context) error {
	start := time.Now()
	if err := removeStale(ctx, e.cli, e.cfg.Logf); err != nil {
		return err
	}
	binDir := filepath.Join(os.TempDir(), "dms-featureenv-bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	bin, err := staticBinary(ctx, e.cfg.Binary, binDir, e.cfg.Logf)
	if err != nil {
		return err
	}
	if e.image, err = ensureImage(ctx, e.cli, bin, e.cfg.Logf); err != nil {
		return err
	}
	e.dir = filepath.Join(os.TempDir(), "dms-featureenv-"+e.run)
	if err := os.Mkdir(e.dir, 0o700); err != nil {
		return fmt.Errorf("homes: %w", err)
	}
	if err := e.createNetwork(ctx); err != nil {
		return err
	}
	regions := slices.Sorted(maps.Keys(e.cfg.Regions))
	for _, r := range regions {
		for k := range e.cfg.Regions[r] {
			name := fmt.Sprintf("%s-%d", r, k+1)
			e.nodes = append(e.nodes, &Node{Name: name, Region: r, Home: filepath.Join(e.dir, name), env: e,
				container: "dmsfe-" + e.run + "-" + name})
		}
	}
	if err := e.each(func(n *Node) error { return e.initHome(ctx, bin, n) }); err != nil {
		return err
	}
	// The operator first: the others bootstrap from it, so that each
	// redials it after a partition.
	op := e.nodes[0]
	if err := e.startNode(ctx, op, nil); err != nil {
		return err
	}
	boot := []string{"--bootstrap", op.Addr}
	if err := e.each(func(n *Node) error {
		if n == op {
			return nil
		}
		return e.startNode(ctx, n, boot)
	}); err != nil {
		return err
	}
	if err := e.Mesh(ctx); err != nil {
		return err
	}
	if err := devnet.TrustOperator(ctx, e.peers(e.nodes[1:]), op.UserDID); err != nil {
		return err
	}
	e.cfg.Logf("featureenv: %d nodes in %d regions up in %s (run %s, network %s, rtt between regions %s, loss %g)",
		len(e.nodes), len(regions), time.Since(start).Round(100*time.Millisecond), e.run, e.subnet, e.cfg.InterRegionLatency, e.cfg.Loss)
	return nil
}

// each runs fn for every node at once and returns the errors joined, in
// node order.
func (e *Env) each(fn func(n *Node) error) error {
	errs := make([]error, len(e.nodes))
	var wg sync.WaitGroup
	for i, n := range e.nodes {
		wg.Go(func() { errs[i] = fn(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createNetwork creates the run's bridge network: internal (no way out of
// the machine), with the subnet Docker picks.
func (e *Env) createNetwork(ctx context.Context) error {
	name := "dmsfe-" + e.run
	res, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge", Internal: true, Labels: map[string]string{labelRun: e.run},
	})
	if err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	e.netID = res.ID
	info, err := e.cli.NetworkInspect(ctx, e.netID, client.NetworkInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	for _, c := range info.Network.IPAM.Config {
		if c.Subnet.Addr().Is4() {
			e.subnet = c.Subnet
		}
	}
	if !e.subnet.IsValid() {
		return fmt.Errorf("network %s has no IPv4 subnet", name)
	}
	return nil
}

// initHome creates a node's home with `dms init` (run here: the binary is
// static) and writes its configuration.
func (e *Env) initHome(ctx context.Context, bin string, n *Node) error {
	id, err := devnet.Init(ctx, devnet.LocalRunner(bin, n.Home, append(os.Environ(), "DMS_PASSPHRASE="+Passphrase)))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	n.DID, n.UserDID = id.NodeDID, id.UserDID
	// The API stays on the container's loopback: the environment reaches
	// it from the container's network namespace.
	executors := []string{"wasm"}
	if e.cfg.Docker {
		executors = append(executors, "docker")
	}
	settings := append(devnet.NodeSettings(fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", P2PPort), "127.0.0.1:0", executors),
		devnet.Setting{Key: "location.region", Value: n.Region},
		devnet.Setting{Key: "resources.benchmark_budget", Value: "1s"},
		devnet.Setting{Key: "orchestrator.lost_after", Value: "4s"},
	)
	if e.cfg.Docker {
		settings = append(settings, dockerSettings()...)
	}
	for _, k := range slices.Sorted(maps.Keys(e.cfg.Settings)) {
		settings = append(settings, devnet.Setting{Key: k, Value: e.cfg.Settings[k]})
	}
	if err := devnet.Configure(n.Home, settings...); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// startNode creates and starts a node's container, shapes its traffic and
// waits until its API answers.
func (e *Env) startNode(ctx context.Context, n *Node, extra []string) error {
	pids := int64(512)
	env := append([]string{"DMS_PASSPHRASE=" + Passphrase}, e.cfg.Env...)
	opts := client.ContainerCreateOptions{
		Name: n.container,
		Config: &container.Config{
			Image:    e.image,
			Hostname: n.Name,
			Cmd:      append([]string{"--log-format", "json", "run"}, extra...),
			Env:      env,
			Labels:   map[string]string{labelRun: e.run, labelNode: n.Name, labelRegion: n.Region},
		},
		HostConfig: &container.HostConfig{
			Binds:       []string{n.Home + ":" + homePath},
			NetworkMode: container.NetworkMode(e.netID),
			Resources: container.Resources{
				NanoCPUs:  int64(e.cfg.CPUs * 1e9),
				Memory:    e.cfg.Memory,
				PidsLimit: &pids,
			},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{e.netID: {}}},
	}
	if e.cfg.Docker {
		if err := withDocker(opts.HostConfig); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	_, err := e.cli.ContainerCreate(ctx, opts)
	if err != nil {
		return fmt.Errorf("%s: create container: %w", n.Name, err)
	}
	return e.boot(ctx, n)
}

// boot starts a node's created (or stopped) container, shapes its
// traffic and waits until its API answers.
func (e *Env) boot(ctx context.Context, n *Node) error {
	if _, err := e.cli.ContainerStart(ctx, n.container, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%s: start container: %w", n.Name, err)
	}
	info, err := e.cli.ContainerInspect(ctx, n.container, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: inspect container: %w", n.Name, err)
	}
	c := info.Container
	if c.State == nil || c.State.Pid == 0 {
		return fmt.Errorf("%s: container is not running: %s", n.Name, e.tail(ctx, n))
	}
	var ip netip.Addr
	if c.NetworkSettings != nil {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.NetworkID == e.netID {
				ip = ep.IPAddress
			}
		}
	}
	if !ip.IsValid() {
		return fmt.Errorf("%s: no address on the environment's network", n.Name)
	}
	e.shaper.setRegion(ip, n.Region)
	if err := e.shaper.attach(ctx, ip, fmt.Sprintf("/proc/%d/ns/net", c.State.Pid), e.subnet); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	m := &member{e: e, n: n, netns: fmt.Sprintf("/proc/%d/ns/net", c.State.Pid)}
	client, self, err := devnet.WaitReady(ctx, m, e.cfg.StartTimeout)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", n.Name, err, e.tail(ctx, n))
	}
	e.closeMu.Lock()
	n.IP, n.PeerID, n.state, n.api = ip, self.PeerID, Running, client
	n.Addr = fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", ip, P2PPort, self.PeerID)
	e.closeMu.Unlock()
	return nil
}

// member is a node's container as a devnet.Member: its API is on the
// container's loopback, reached from its network namespace.
type member struct {
	e     *Env
	n     *Node
	netns string // /proc/PID/ns/net of its dms
}

func (m *member) API() (*api.Client, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetns(m.netns, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return devnet.Client(m.n.Home, &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}})
}

func (m *member) Exited(ctx context.Context) error {
	st, err := m.e.cli.ContainerInspect(ctx, m.n.container, client.ContainerInspectOptions{})
	if err == nil && st.Container.State != nil && !st.Container.State.Running {
		return fmt.Errorf("dms run exited (%d)", st.Container.State.ExitCode)
	}
	return nil
}

// tail returns the end of a node's log, for error messages.
func (e *Env) tail(ctx context.Context, n *Node) string {
	log, err := n.Log(ctx)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "log of " + n.Name + ":\n" + strings.Join(lines, "\n")
}

// Nodes returns every node: by region name, then number.
func (e *Env) Nodes() []*Node { return slices.Clone(e.nodes) }

// Node returns the node called name (eu-1), or nil.
func (e *Env) Node(name string) *Node {
	for _, n := range e.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Region returns the nodes of a region.
func (e *Env) Region(name string) []*Node {
	var out []*Node
	for _, n := range e.nodes {
		if n.Region == name {
			out = append(out, n)
		}
	}
	return out
}

// Regions returns the region names, sorted.
func (e *Env) Regions() []string { return slices.Sorted(maps.Keys(e.cfg.Regions)) }

// Operator returns the first node: its user is trusted by every node for
// /dms, and the other nodes bootstrap from it.
func (e *Env) Operator() *Node { return e.nodes[0] }

// NodeByPeerID returns the node with that peer ID, or nil.
func (e *Env) NodeByPeerID(id string) *Node {
	for _, n := range e.nodes {
		if n.PeerID == id {
			return n
		}
	}
	return nil
}

// RunID is the ID in the names and labels of everything this run created.
func (e *Env) RunID() string { return e.run }

// Subnet is the network's IPv4 subnet.
func (e *Env) Subnet() netip.Prefix { return e.subnet }

// Mesh connects every running node to every other (through their APIs,
// again while a dial fails: libp2p backs off from an address it just
// failed to dial) and waits until each lists every other as connected
// (devnet.Mesh).
func (e *Env) Mesh(ctx context.Context) error {
	return devnet.Mesh(ctx, e.peers(e.running()), e.cfg.StartTimeout)
}

// peers returns nodes as the devnet steps reach them.
func (e *Env) peers(nodes []*Node) []devnet.Peer {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	out := make([]devnet.Peer, len(nodes))
	for i, n := range nodes {
		out[i] = devnet.Peer{Name: n.Name, PeerID: n.PeerID, Addr: n.Addr, API: n.api}
	}
	return out
}

// running returns the nodes whose container runs and is not paused.
func (e *Env) running() []*Node {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	var out []*Node
	for _, n := range e.nodes {
		if n.state == Running {
			out = append(out, n)
		}
	}
	return out
}

// Kill kills a node's container (SIGKILL to dms, as a machine that dies)
// and waits until it has stopped.
func (e *Env) Kill(ctx context.Context, n *Node) error {
	if _, err := e.cli.ContainerKill(ctx, n.container, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	w := e.cli.ContainerWait(ctx, n.container, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case err := <-w.Error:
		return fmt.Errorf("kill %s: wait: %w", n.Name, err)
	}
	e.shaper.detach(n.IP)
	e.setState(n, Killed)
	return nil
}

// Restart starts a killed node again, with its home (keys, store) as it
// was, and waits until its API answers. Its address may change; the
// other nodes learn it when it connects to them (Mesh, or its bootstrap).
func (e *Env) Restart(ctx context.Context, n *Node) error {
	if n.State() != Killed {
		return fmt.Errorf("restart %s: it is %s, not killed", n.Name, n.State())
	}
	e.shaper.forget(n.IP)
	if err := e.boot(ctx, n); err != nil {
		return fmt.Errorf("restart %w", err)
	}
	return nil
}

// Pause freezes every process of a node (docker pause): its connections
// stay open but nothing answers.
func (e *Env) Pause(ctx context.Context, n *Node) error {
	if _, err := e.cli.ContainerPause(ctx, n.container, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause %s: %w", n.Name, err)
	}
	e.setState(n, Paused)
	return nil
}

// Unpause thaws a paused node.
func (e *Env) Unpause(ctx context.Context, n *Node) error {
	if _, err := e.cli.ContainerUnpause(ctx, n.container, client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause %s: %w", n.Name, err)
	}
	e.setState(n, Running)
	return nil
}

func (e *Env) setState(n *Node, s State) {
	e.closeMu.Lock()
	n.state = s
	e.closeMu.Unlock()
}

// Disconnect cuts a node off the network: every packet between it and
// another node is dropped, as when its cable is pulled. Its processes and
// connections live on; the others notice when their connections time
// out.
func (e *Env) Disconnect(ctx context.Context, n *Node) error {
	if err := e.shaper.setCut(ctx, n.IP, true); err != nil {
		return fmt.Errorf("disconnect %s: %w", n.Name, err)
	}
	return nil
}

// Reconnect undoes Disconnect. Connections that timed out meanwhile are
// not restored: the nodes dial again by themselves (bootstrap, DHT) or
// through Mesh.
func (e *Env) Reconnect(ctx context.Context, n *Node) error {
	if err := e.shaper.setCut(ctx, n.IP, false); err != nil {
		return fmt.Errorf("reconnect %s: %w", n.Name, err)
	}
	return nil
}

// Partition drops every packet between the nodes of regions a and b.
func (e *Env) Partition(a, b string) error {
	if err := e.checkRegions(a, b); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	e.shaper.setParted(a, b, true)
	return nil
}

// Heal undoes Partition(a, b).
func (e *Env) Heal(a, b string) error {
	if err := e.checkRegions(a, b); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	e.shaper.setParted(a, b, false)
	return nil
}

// HealAll lifts every partition and reconnects every disconnected node.
func (e *Env) HealAll(ctx context.Context) error {
	if err := e.shaper.healAll(ctx); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	return nil
}

// SetLink changes the round trip and loss between regions from now on.
func (e *Env) SetLink(rtt time.Duration, loss float64) error {
	if rtt < 0 || loss < 0 || loss >= 1 {
		return fmt.Errorf("set link: rtt %s, loss %g: want rtt ≥ 0 and 0 ≤ loss < 1", rtt, loss)
	}
	e.shaper.setLink(rtt, loss)
	return nil
}

// Traffic returns what the environment's queue did with the packets a
// node received from other regions since it (re)started.
func (e *Env) Traffic(n *Node) Traffic { return e.shaper.traffic(n.IP) }

// QueueStats returns the kernel's counters of the netfilter queue that
// shapes what node n receives from other regions, and how many packets
// the environment read from it since n (re)started.
func (e *Env) QueueStats(n *Node) (QueueStats, uint64, error) { return e.shaper.queueStats(n.IP) }

// QueueReport describes the queue of every running node in one line
// each: what the environment read and lost, how many packets it passed
// late and its worst lags (Traffic), and the kernel's counters
// (QueueStats). For a failing step's message, where a lost packet (a TCP
// retransmission: 200 ms or more) may explain a slow round trip.
func (e *Env) QueueReport() string {
	var b strings.Builder
	for _, n := range e.Nodes() {
		if n.State() == Killed {
			continue
		}
		st, seen, err := e.QueueStats(n)
		if err != nil {
			fmt.Fprintf(&b, "\n  %s: %v", n.Name, err)
			continue
		}
		tr := e.Traffic(n)
		fmt.Fprintf(&b, "\n  %s: read %d, lost %d, late %d (max read lag %s, max release lag %s; kernel: %s)",
			n.Name, seen, st.Lost(seen), tr.Late, tr.MaxReadLag.Round(time.Microsecond), tr.MaxReleaseLag.Round(time.Microsecond), st)
	}
	return b.String()
}

func (e *Env) checkRegions(a, b string) error {
	for _, r := range []string{a, b} {
		if _, ok := e.cfg.Regions[r]; !ok {
			return fmt.Errorf("no region %q (regions: %s)", r, strings.Join(e.Regions(), ", "))
		}
	}
	if a == b {
		return fmt.Errorf("regions %s and %s: want two different regions", a, b)
	}
	return nil
}

// Close removes every container and the network of the environment, and
// the nodes' homes; the iptables rules and queues go with the containers'
// namespaces. It is safe to call more than once.
func (e *Env) Close() error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return nil
	}
	e.closed = true
	e.closeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e.shaper.close()
	err := removeRun(ctx, e.cli, e.run)
	if e.cfg.Docker {
		err = errors.Join(err, e.removeWorkloads(ctx))
	}
	if e.dir != "" {
		if rerr := os.RemoveAll(e.dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", e.dir, rerr))
		}
	}
	e.unlock()
	e.cli.Close()
	if err != nil {
		return fmt.Errorf("featureenv: close run %s: %w", e.run, err)
	}
	return nil
}

// removeRun removes the containers and networks labelled with run (any
// run when run is "").
func removeRun(ctx context.Context, cli *client.Client, run string) error {
	label := labelRun
	if run != "" {
		label += "=" + run
	}
	f := client.Filters{}.Add("label", label)
	var errs []error
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range list.Items {
		wg.Go(func() {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("remove container %s: %w", strings.Join(c.Names, ","), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range nets.Items {
		if _, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// removeStale removes what earlier runs left behind: their containers,
// networks and homes. The caller holds the machine lock, so no other
// environment is running: everything labelled is stale.
func removeStale(ctx context.Context, cli *client.Client, logf func(string, ...any)) error {
	f := client.Filters{}.Add("label", labelRun)
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	if len(list.Items)+len(nets.Items) > 0 {
		logf("featureenv: removing %d containers and %d networks an earlier run left behind", len(list.Items), len(nets.Items))
		if err := removeRun(ctx, cli, ""); err != nil {
			return fmt.Errorf("remove an earlier run: %w", err)
		}
	}
	homes, _ := filepath.Glob(filepath.Join(os.TempDir(), "dms-featureenv-*"))
	for _, h := range homes {
		if filepath.Base(h) == "dms-featureenv-bin" {
			continue
		}
		if err := os.RemoveAll(h); err != nil {
			return fmt.Errorf("remove an earlier run's homes: %w", err)
		}
	}
	return nil
}

// quote shows a command line.
func quote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \"'") {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}
