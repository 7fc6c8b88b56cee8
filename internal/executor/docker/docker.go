// Package docker is the Docker executor: it runs a Spec as a container
// through the Docker Engine API (github.com/moby/moby/client, API version
// negotiated, so Engine 20.10 with API 1.41 works).
//
// # Usage
//
//	ex, err := docker.New(docker.Config{Labels: map[string]string{"dms.node": peerID}})
//	...
//	defer ex.Close() // containers keep running; a new executor re-attaches
//	id, err := ex.Start(ctx, executor.Spec{Image: "alpine:3.20", Command: []string{"echo", "hi"}})
//
// # What a container gets
//
// The image is pulled only when it is absent (progress goes to
// Config.OnPull and the logger; with no registry reachable Start fails
// with ErrImage naming the image). Limits: Resources.CPU as NanoCPUs (the
// CFS quota), Resources.Memory as the memory limit with swap equal to it
// (no swap on top), Resources.PIDs as the pids limit, Resources.Disk as a
// storage-driver size limit when Config.DiskQuota says the driver supports
// it, and Resources.GPUs as device requests (nvidia) or device nodes (amd,
// intel). Every container runs under the daemon's init (docker-init), with
// no-new-privileges and every capability dropped; Privileged is refused
// unless Config.AllowPrivileged, network host unless
// Config.AllowHostNetwork. Logs are the json-file driver's, bounded by
// Config.LogMaxSize.
//
// # Network
//
// Containers with network "" or bridge join the job network (JobNetwork,
// Linux bridge dms-jobs0), not Docker's default bridge. The executor makes
// it at the first such Start and installs firewall rules for it, labelled
// with a comment, in chains of its own: DMS-JOBS (jumped to from
// DOCKER-USER: traffic the host forwards, to a cloud metadata service for
// one) and DMS-JOBS-INPUT (jumped to from INPUT: traffic to the host
// itself). New connections to Config.BlockNetworks are rejected — by
// default link-local (169.254.0.0/16, fe80::/10) and every address of the
// host; answers to connections made to the container (published ports)
// pass. Installing is idempotent; Close removes the rules and the network
// once no container is on it (running containers keep them).
//
// A job on the job network without published ports starts in the network
// namespace of a sandbox the executor keeps ready on that network (one
// kind for plain jobs, one for jobs with a subnet), so that Docker's setup of a new namespace (its embedded DNS
// resolver above all) is not on the start's path (sandbox.go).
//
// # Finding containers again
//
// Every container carries the label dms.managed=true, the spec's labels and
// Config.Labels; its timeout is a label too. List finds containers by
// label, and every method accepts the ID of such a container even when
// this executor did not start it (after a daemon restart): the executor
// re-attaches, re-arming the timeout from the labels. Containers without
// the labels are not touched (ErrNotFound).
//
// # Subnet
//
// A spec with a Subnet (not with network host or none) gets its
// interface from Subnet.AttachNetns, called with the container's network
// namespace before Start returns: in a sandbox, the sandbox's, before the
// container is created; else once the container has started (a failure
// removes the container, or the sandbox, and fails the start). Its
// resolver forwards to the subnet's DNS with the search domain "internal":
// subnet.Resolver in a sandbox, else Subnet.DNS (see subnet.go).
// The interface ends with dms: after a restart, AttachSubnet gives a
// running container its interface again.
//
// It implements executor.Executor, Lister, Pauser, Execer, Statser and
// SubnetAttacher.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

// Config configures the Docker executor. The zero value talks to the local
// daemon with safe defaults.
type Config struct {
	// Host is the daemon's address, e.g. unix:///var/run/docker.sock (the
	// default) or tcp://10.0.0.5:2376.
	Host string
	// AllowPrivileged lets specs ask for privileged containers.
	AllowPrivileged bool
	// AllowHostNetwork lets specs use network host, which exposes the
	// host's loopback services (the dms API among them) to the job.
	AllowHostNetwork bool
	// BlockNetworks are the destinations containers on the job network
	// may not reach: CIDR prefixes, and BlockHost for every address of
	// this machine. nil means DefaultBlockNetworks; an empty list blocks
	// nothing. The rules need root and Docker's iptables (DOCKER-USER).
	BlockNetworks []string
	// DiskQuota applies Resources.Disk as the container's size limit. Only
	// some storage drivers support it (overlay2 on xfs with pquota,
	// btrfs, zfs); elsewhere Disk is accounting only.
	DiskQuota bool
	// Labels are put on every container and required by List, so several
	// nodes can share one daemon without seeing each other's containers.
	Labels map[string]string
	// Runtime is the OCI runtime for containers; "" is the daemon's
	// default (e.g. "runsc" for gVisor where installed).
	Runtime string
	// LogMaxSize bounds each container's log (default 16 MiB); older
	// output is dropped.
	LogMaxSize match.Bytes
	// WarmSandboxes is how many network sandboxes the executor keeps
	// ready on the job network (sandbox.go): 0 means one, a negative
	// number none (every job's network is then set up at its start).
	WarmSandboxes int
	// OnPull, when set, receives the progress of image pulls.
	OnPull func(PullProgress)
	Logger *slog.Logger
}

// PullProgress is one step of an image pull, as the daemon reports it.
type PullProgress struct {
	Image  string
	Layer  string // the layer's ID, when the step is about one layer
	Status string // "Pulling fs layer", "Downloading", "Pull complete"...
	// Current and Total are bytes, when the daemon says.
	Current, Total int64
}

// Labels the executor sets besides executor.LabelManaged.
const (
	// labelTimeout holds Spec.Timeout, so a re-attached container keeps it.
	labelTimeout = "dms.timeout"
)

// Executor runs containers. Create it with New and Close it when done.
type Executor struct {
	cfg Config
	cli *client.Client
	log *slog.Logger

	// ctx ends the watchers on Close.
	ctx       context.Context
	cancel    context.CancelFunc
	watchers  sync.WaitGroup
	closeOnce sync.Once

	fw       *firewall
	pool     pool // sandbox.go
	netMu    sync.Mutex
	netReady bool // guarded by netMu: the job network and its rules are in place

	mu       sync.Mutex
	tracked  map[string]*tracked // guarded by mu: by full container ID
	closed   bool                // guarded by mu: no watcher starts once set
	adopting sync.Mutex          // serialises re-attaching
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Lister   = (*Executor)(nil)
	_ executor.Pauser   = (*Executor)(nil)
	_ executor.Execer   = (*Executor)(nil)
	_ executor.Statser  = (*Executor)(nil)

	_ executor.SubnetAttacher = (*Executor)(nil)
)

// tracked is a container this executor watches.
type tracked struct {
	id      string
	sandbox string // the network sandbox the container runs in ("": none; sandbox.go)
	timeout time.Duration
	done    chan struct{} // closed once result is set

	mu     sync.Mutex
	cause  executor.Reason // guarded by mu: why we ended it (cancelled, timed-out), "" if we did not
	usage  executor.Usage  // guarded by mu: the last stats sample
	result executor.Result // set before done is closed

	cgroup      *cgroupFiles // guarded by mu: the container's cgroup files (cgroup.go), nil if not found
	cgroupTried bool         // guarded by mu: cgroup was looked for
}

// New connects to the daemon (lazily: the first call negotiates the API
// version) and returns the executor.
func New(cfg Config) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogMaxSize == 0 {
		cfg.LogMaxSize = 16 << 20
	}
	for k := range cfg.Labels {
		if k == executor.LabelManaged || k == labelTimeout || k == labelSandbox || k == labelSandboxOf {
			return nil, fmt.Errorf("docker: label %s is the executor's own", k)
		}
	}
	if cfg.BlockNetworks == nil {
		cfg.BlockNetworks = DefaultBlockNetworks
	}
	prefixes, host, err := ParseBlockNetworks(cfg.BlockNetworks)
	if err != nil {
		return nil, fmt.Errorf("docker: block networks: %w", err)
	}
	opts := []client.Opt{}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w: %w", executor.ErrUnavailable, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Executor{
		cfg:     cfg,
		cli:     cli,
		fw:      &firewall{prefixes: prefixes, host: host},
		log:     cfg.Logger.With("component", "executor", "executor", "docker"),
		ctx:     ctx,
		cancel:  cancel,
		tracked: map[string]*tracked{},
	}, nil
}

// Ping checks that the daemon answers.
func (e *Executor) Ping(ctx context.Context) error {
	if _, err := e.cli.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("docker: %w: %w", executor.ErrUnavailable, err)
	}
	return nil
}

// Close stops watching containers and closes the client. The containers
// keep running; a new executor finds them again (List) and re-attaches.
// Start then returns ErrUnavailable, and so do Wait and Stop on containers
// that had not ended. A second Close does nothing and returns nil.
func (e *Executor) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.cancel()
		e.watchers.Wait()
		e.closePool() // sandbox.go: before the job network can go
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(e.closeJobNetwork(ctx), e.cli.Close())
	})
	return err
}

// errClosed returns ErrUnavailable once Close was called.
func (e *Executor) errClosed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("docker: executor closed: %w", executor.ErrUnavailable)
	}
	return nil
}

// validate checks spec for Docker.
func (e *Executor) validate(spec *executor.Spec) error {
	var v executor.ValidationError
	v.Include(spec.Validate())
	if spec.Image == "" && (spec.Module != nil || spec.VM != nil) {
		v.Add("image", "required: the docker executor runs an image, not a module or a VM")
	}
	if spec.Privileged && !e.cfg.AllowPrivileged {
		v.Add("privileged", "not allowed by this provider")
	}
	if spec.Network == executor.NetworkHost && !e.cfg.AllowHostNetwork {
		v.Add("network", "host networking is not allowed by this provider")
	}
	if m := spec.Resources.Memory; m > 0 && m < 6<<20 {
		v.Add("resources.memory", "%s is below Docker's minimum of 6MiB", m)
	}
	if c := spec.Resources.CPU; c > 0 && c < 10 {
		v.Add("resources.cpu", "%s is below Docker's minimum of 0.01", c)
	}
	validateSubnet(&v, spec, e.cfg.Runtime)
	return v.Err()
}

// Start implements executor.Executor: create (pulling the image if it is
// absent), start, watch.
func (e *Executor) Start(ctx context.Context, spec executor.Spec) (string, error) {
	if err := e.errClosed(); err != nil {
		return "", err
	}
	if err := e.validate(&spec); err != nil {
		return "", err
	}
	opts, err := e.createOptions(&spec)
	if err != nil {
		return "", err
	}
	if kind, ok := e.pooled(&spec, &opts); ok { // sandbox.go
		defer e.refill(kind)
		if sb := e.claimSandbox(kind); sb != "" {
			id, err := e.startInSandbox(ctx, &spec, opts, sb)
			if !errors.Is(err, errSandboxGone) {
				return id, err
			}
			e.log.Debug("network sandbox gone; starting without one", "sandbox", sb[:12])
			if opts, err = e.createOptions(&spec); err != nil {
				return "", err
			}
		}
	}
	if opts.HostConfig.NetworkMode == JobNetwork {
		l, err := e.jobNetwork(ctx)
		if err != nil {
			return "", err
		}
		defer l.unlock() // once the container runs on the network
	}
	id, err := e.createStart(ctx, spec.Image, opts)
	if err != nil {
		return "", err
	}
	started := time.Now()
	if spec.Subnet != nil {
		if err := e.startSubnet(ctx, id, spec.Subnet); err != nil {
			return "", err
		}
	}
	e.track(id, "", spec.Timeout, started)
	e.log.Debug("started", "container", id[:12], "image", spec.Image)
	return id, nil
}

// errSandboxGone: the sandbox claimed for a start no longer runs.
var errSandboxGone = errors.New("the network sandbox is gone")

// startInSandbox starts the container in the network namespace of
// sandbox sb (sandbox.go), which it owns from here on: a failed start
// removes it, and errSandboxGone says the sandbox had stopped (the caller
// starts the container without one). A job with a subnet has its
// interface attached to the sandbox's namespace first (the resolver is
// the sandbox's, set when it was made).
func (e *Executor) startInSandbox(ctx context.Context, spec *executor.Spec, opts client.ContainerCreateOptions, sb string) (string, error) {
	opts.HostConfig.NetworkMode = container.NetworkMode("container:" + sb)
	opts.Config.Labels[labelSandboxOf] = sb
	if s := spec.Subnet; s != nil {
		// Docker refuses DNS settings in container:<sandbox> mode.
		opts.HostConfig.DNS, opts.HostConfig.DNSSearch, opts.HostConfig.DNSOptions = nil, nil, nil
		if err := e.attachSubnet(ctx, sb, s); err != nil {
			e.removeSandbox(sb)
			if errors.Is(err, errNotRunning) {
				return "", fmt.Errorf("%w: %w", errSandboxGone, err)
			}
			return "", fmt.Errorf("docker: the subnet could not be attached to the container's network sandbox (%s), which was removed: %w", s.Addr, err)
		}
	}
	id, err := e.createStart(ctx, spec.Image, opts)
	if err != nil {
		gone := ctx.Err() == nil && !e.sandboxRunning(context.WithoutCancel(ctx), sb)
		e.removeSandbox(sb)
		if gone {
			return "", fmt.Errorf("%w: %w", errSandboxGone, err)
		}
		return "", err
	}
	e.track(id, sb, spec.Timeout, time.Now())
	e.log.Debug("started", "container", id[:12], "image", spec.Image, "sandbox", sb[:12])
	return id, nil
}

// createStart creates the container (pulling image when it is absent) and
// starts it; a container that does not start is removed.
func (e *Executor) createStart(ctx context.Context, image string, opts client.ContainerCreateOptions) (string, error) {
	created, err := e.cli.ContainerCreate(ctx, opts)
	if cerrdefs.IsNotFound(err) {
		if err = e.pull(ctx, image); err != nil {
			return "", err
		}
		created, err = e.cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", e.classify("create container", err)
	}
	id := created.ID
	if _, err := e.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		// Nothing runs: do not leave the container behind.
		e.cli.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		return "", e.classify("start container", err)
	}
	return id, nil
}

// classify wraps a daemon error: ErrUnavailable when the daemon cannot be
// reached.
func (e *Executor) classify(what string, err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("docker: %s: %w: %w", what, executor.ErrUnavailable, err)
	}
	return fmt.Errorf("docker: %s: %w", what, err)
}

// createOptions translates spec into the daemon's create request.
func (e *Executor) createOptions(spec *executor.Spec) (client.ContainerCreateOptions, error) {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, e.cfg.Labels)
	// Only the executor names a container's sandbox (sandbox.go).
	delete(labels, labelSandbox)
	delete(labels, labelSandboxOf)
	labels[executor.LabelManaged] = "true"
	if spec.Timeout > 0 {
		labels[labelTimeout] = spec.Timeout.String()
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Entrypoint: spec.Entrypoint,
		Cmd:        spec.Command,
		Env:        spec.EnvList(),
		WorkingDir: spec.WorkDir,
		Labels:     labels,
	}
	if len(spec.Command) == 0 && len(spec.Entrypoint) > 0 {
		cfg.Cmd = []string{} // not the image's CMD after our entrypoint
	}
	init := true
	r := spec.Resources
	hc := &container.HostConfig{
		Resources: container.Resources{
			NanoCPUs: int64(r.CPU) * 1e6,
			Memory:   int64(r.Memory),
		},
		Init:        &init,
		Privileged:  spec.Privileged,
		SecurityOpt: []string{"no-new-privileges"},
		CapDrop:     []string{"ALL"},
		Runtime:     e.cfg.Runtime,
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatUint(uint64(e.cfg.LogMaxSize)/2, 10),
			"max-file": "2",
		}},
	}
	if spec.Privileged {
		hc.CapDrop = nil // a privileged container has every capability
	}
	if r.Memory > 0 {
		hc.MemorySwap = int64(r.Memory) // swap equal to memory: no swap on top
	}
	if r.PIDs > 0 {
		pids := r.PIDs
		hc.PidsLimit = &pids
	}
	if r.Disk > 0 && e.cfg.DiskQuota {
		hc.StorageOpt = map[string]string{"size": strconv.FormatUint(uint64(r.Disk), 10)}
	}
	gpuRequests(hc, r.GPUs)
	subnetHostConfig(hc, spec.Subnet)
	for _, m := range spec.Mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	switch spec.Network {
	case executor.NetworkNone:
		hc.NetworkMode = "none"
	case executor.NetworkHost:
		hc.NetworkMode = "host"
	default:
		// Not Docker's default bridge: the job network, where the block
		// list applies.
		hc.NetworkMode = JobNetwork
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
		for i, p := range spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "tcp"
			}
			port, err := network.ParsePort(fmt.Sprintf("%d/%s", p.Guest, proto))
			if err != nil {
				return client.ContainerCreateOptions{}, fmt.Errorf("docker: port %d: %w", p.Guest, err)
			}
			b := network.PortBinding{}
			if p.Host != 0 {
				b.HostPort = strconv.Itoa(int(p.Host))
			}
			if p.HostIP != "" {
				ip, err := netip.ParseAddr(p.HostIP)
				if err != nil {
					var v executor.ValidationError
					v.Add(fmt.Sprintf("ports[%d].host_ip", i), "%q is not an IP address", p.HostIP)
					return client.ContainerCreateOptions{}, v.Err()
				}
				b.HostIP = ip
			}
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = append(hc.PortBindings[port], b)
		}
	}
	return client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: "dms-" + randomHex(6)}, nil
}

// gpuRequests gives the GPUs to the container: NVIDIA ones through the
// daemon's device requests (the NVIDIA container toolkit), AMD ones as
// /dev/kfd and their render nodes, Intel ones as their render nodes.
func gpuRequests(hc *container.HostConfig, gpus []match.GPU) {
	var nvidia []string
	kfd := false
	for _, g := range gpus {
		switch g.Vendor {
		case executor.GPUNvidia:
			nvidia = append(nvidia, strconv.Itoa(g.Index))
		case executor.GPUAMD, executor.GPUIntel:
			if g.Vendor == executor.GPUAMD && !kfd {
				kfd = true
				hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: "/dev/kfd", PathInContainer: "/dev/kfd", CgroupPermissions: "rwm"})
			}
			node := fmt.Sprintf("/dev/dri/renderD%d", 128+g.Index)
			hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: node, PathInContainer: node, CgroupPermissions: "rwm"})
		}
	}
	if len(nvidia) > 0 {
		hc.DeviceRequests = append(hc.DeviceRequests, container.DeviceRequest{
			Driver: "nvidia", DeviceIDs: nvidia, Capabilities: [][]string{{"gpu"}},
		})
	}
}

// pull fetches image, reporting progress.
func (e *Executor) pull(ctx context.Context, image string) error {
	began := time.Now()
	e.log.Info("pulling image", "image", image)
	fail := func(err error) error {
		return fmt.Errorf("docker: %w: %q is not present here and pulling it failed (no registry reachable?): %v", executor.ErrImage, image, err)
	}
	resp, err := e.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		if client.IsErrConnectionFailed(err) {
			return e.classify("pull "+image, err)
		}
		return fail(err)
	}
	defer resp.Close()
	last := time.Time{}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fail(err)
		}
		if msg.Error != nil {
			return fail(msg.Error)
		}
		p := PullProgress{Image: image, Layer: msg.ID, Status: msg.Status}
		if msg.Progress != nil {
			p.Current, p.Total = msg.Progress.Current, msg.Progress.Total
		}
		if e.cfg.OnPull != nil {
			e.cfg.OnPull(p)
		}
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			e.log.Debug("pull progress", "image", image, "layer", p.Layer, "status", p.Status, "current", p.Current, "total", p.Total)
		}
	}
	e.log.Info("pulled image", "image", image, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// track starts watching a container: its exit, its usage and its timeout.
// After Close (a Start that raced it) the container is tracked but not
// watched, as Close leaves every container.
func (e *Executor) track(id, sandbox string, timeout time.Duration, started time.Time) *tracked {
	t := &tracked{id: id, sandbox: sandbox, timeout: timeout, done: make(chan struct{})}
	e.mu.Lock()
	e.tracked[id] = t
	watch := !e.closed
	if watch {
		e.watchers.Add(1) // under mu: never after Close's Wait began
	}
	e.mu.Unlock()
	if watch {
		go e.watch(t, started)
	}
	return t
}

// get returns the tracked container for id, re-attaching to a container
// of ours this executor did not start.
func (e *Executor) get(ctx context.Context, id string) (*tracked, error) {
	e.mu.Lock()
	t, ok := e.tracked[id]
	e.mu.Unlock()
	if ok {
		return t, nil
	}
	e.adopting.Lock()
	defer e.adopting.Unlock()
	info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) || cerrdefs.IsInvalidArgument(err) {
			return nil, fmt.Errorf("docker: %s: %w", id, executor.ErrNotFound)
		}
		return nil, e.classify("inspect "+id, err)
	}
	c := info.Container
	if c.Config == nil || !e.ours(c.Config.Labels) {
		return nil, fmt.Errorf("docker: %s is not a dms container: %w", id, executor.ErrNotFound)
	}
	e.mu.Lock()
	t, ok = e.tracked[c.ID]
	e.mu.Unlock()
	if ok {
		return t, nil
	}
	timeout, _ := time.ParseDuration(c.Config.Labels[labelTimeout])
	started := parseTime(c.State.StartedAt)
	e.log.Info("re-attached", "container", c.ID[:12], "state", c.State.Status)
	return e.track(c.ID, c.Config.Labels[labelSandboxOf], timeout, started), nil
}

// ours reports whether a container's labels make it one of this executor's.
func (e *Executor) ours(labels map[string]string) bool {
	if labels[executor.LabelManaged] != "true" {
		return false
	}
	for k, v := range e.cfg.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// watch waits for the container to end and records its Result.
func (e *Executor) watch(t *tracked, started time.Time) {
	defer e.watchers.Done()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()

	if t.timeout > 0 {
		timer := time.AfterFunc(time.Until(started.Add(t.timeout)), func() {
			if t.setCause(executor.ReasonTimedOut) {
				e.log.Info("timed out", "container", t.id[:12], "timeout", t.timeout)
				e.cli.ContainerKill(ctx, t.id, client.ContainerKillOptions{Signal: "KILL"})
			}
		})
		defer timer.Stop()
	}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		e.sampleCgroup(ctx, t)
	}()

	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		w := e.cli.ContainerWait(ctx, t.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		var err error
		select {
		case <-w.Result:
		case err = <-w.Error:
		}
		if ctx.Err() != nil {
			return // Close: the container keeps running; t stays unfinished
		}
		if err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("waiting for container", "container", t.id[:12], "err", err)
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return
			}
		}
		break
	}
	// The sampler's last reading is the final one (cgroup.go).
	select {
	case <-sampled:
	case <-time.After(cgroupFinalWait):
	}
	res := e.result(ctx, t)
	t.mu.Lock()
	t.result = res
	t.mu.Unlock()
	close(t.done)
	e.log.Debug("ended", "container", t.id[:12], "reason", res.Reason, "exit_code", res.ExitCode)
}

// result reads how the container ended.
func (e *Executor) result(ctx context.Context, t *tracked) executor.Result {
	t.mu.Lock()
	cause, usage := t.cause, t.usage
	t.mu.Unlock()
	info, err := e.cli.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
	if err != nil {
		return executor.Result{ExitCode: -1, Reason: executor.ReasonFailed, Error: "container vanished: " + err.Error(), FinishedAt: time.Now(), Usage: usage}
	}
	s := info.Container.State
	res := executor.Result{
		ExitCode:   s.ExitCode,
		Reason:     executor.ReasonExited,
		StartedAt:  parseTime(s.StartedAt),
		FinishedAt: parseTime(s.FinishedAt),
		Usage:      usage,
		Error:      s.Error,
	}
	if res.FinishedAt.Before(res.StartedAt) {
		res.FinishedAt = res.StartedAt // the daemon notes a fast exit before the start
	}
	switch {
	case cause != "":
		res.Reason = cause
	case s.OOMKilled:
		res.Reason = executor.ReasonOOMKilled
	case s.Error != "":
		res.Reason = executor.ReasonFailed
	case t.timeout > 0 && s.ExitCode == 137 && res.FinishedAt.Sub(res.StartedAt) >= t.timeout:
		res.Reason = executor.ReasonTimedOut // killed by a previous executor
	}
	return res
}

// sample keeps the container's last resource usage from the daemon's
// stats stream (about one sample a second), for the Result.
func (e *Executor) sample(ctx context.Context, t *tracked) {
	resp, err := e.cli.ContainerStats(ctx, t.id, client.ContainerStatsOptions{Stream: true})
	if err != nil {
		return
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var s container.StatsResponse
		if dec.Decode(&s) != nil {
			return
		}
		if s.Read.IsZero() || s.PidsStats.Current == 0 {
			continue // the empty sample of a stopped container
		}
		t.keep(usageOf(&s))
	}
}

func usageOf(s *container.StatsResponse) executor.Usage {
	return executor.Usage{
		CPUTime:    time.Duration(s.CPUStats.CPUUsage.TotalUsage),
		Memory:     match.Bytes(statsWorkingSet(&s.MemoryStats)),
		MemoryPeak: match.Bytes(max(s.MemoryStats.MaxUsage, s.MemoryStats.Usage)),
		PIDs:       int64(s.PidsStats.Current),
	}
}

// setCause records why we are ending the container, unless it has
// already ended or a cause is set; it reports whether it did.
func (t *tracked) setCause(r executor.Reason) bool {
	select {
	case <-t.done:
		return false
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cause != "" {
		return false
	}
	t.cause = r
	return true
}

// Wait implements executor.Executor.
func (e *Executor) Wait(ctx context.Context, id string) (executor.Result, error) {
	t, err := e.get(ctx, id)
	if err != nil {
		return executor.Result{}, err
	}
	select {
	case <-t.done:
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.result, nil
	case <-ctx.Done():
		return executor.Result{}, ctx.Err()
	case <-e.ctx.Done():
		return executor.Result{}, fmt.Errorf("docker: executor closed: %w", executor.ErrUnavailable)
	}
}

// Stop implements executor.Executor: SIGTERM (forwarded by docker-init),
// SIGKILL after grace, rounded up to whole seconds.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	select {
	case <-t.done:
		return nil
	default:
	}
	t.setCause(executor.ReasonCancelled) // unless a timeout got there first
	secs := int(math.Ceil(grace.Seconds()))
	if _, err := e.cli.ContainerStop(ctx, t.id, client.ContainerStopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return e.classify("stop "+t.id[:12], err)
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.ctx.Done():
		return fmt.Errorf("docker: executor closed: %w", executor.ErrUnavailable)
	}
}

// Logs implements executor.Executor.
func (e *Executor) Logs(ctx context.Context, id string, opts executor.LogOptions, stdout, stderr io.Writer) error {
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := e.cli.ContainerLogs(ctx, t.id, lo)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: %s: %w", id, executor.ErrNotFound)
		}
		return e.classify("logs of "+t.id[:12], err)
	}
	defer rc.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	out, errw := &countWriter{w: stdout}, &countWriter{w: stderr}
	if _, err := stdcopy.StdCopy(out, errw, rc); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("docker: logs of %s: %w", t.id[:12], err)
	}
	if !opts.Follow || opts.Tail > 0 {
		return nil
	}
	// A follow ends when the container does, and the json-file driver
	// does not hand a follower the last line when it lacks its newline
	// ("13 21" from cat of a file with none): read the logs once more and
	// write what the follow missed.
	lo.Follow = false
	rc2, err := e.cli.ContainerLogs(ctx, t.id, lo)
	if err != nil {
		return nil // the follow's output stands
	}
	defer rc2.Close()
	_, _ = stdcopy.StdCopy(&skipWriter{w: stdout, skip: out.n}, &skipWriter{w: stderr, skip: errw.n}, rc2)
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// skipWriter drops the first skip bytes written to it.
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	k := min(int64(len(p)), s.skip)
	s.skip -= k
	if rest := p[k:]; len(rest) > 0 {
		if _, err := s.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Remove implements executor.Executor: kill, then delete the container
// and its anonymous volumes. A ctx that is already done changes nothing.
func (e *Executor) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	if err := e.Stop(ctx, t.id, 0); err != nil {
		return err
	}
	if _, err := e.cli.ContainerRemove(ctx, t.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return e.classify("remove "+t.id[:12], err)
	}
	if t.sandbox != "" {
		e.removeSandbox(t.sandbox) // sandbox.go
	}
	e.mu.Lock()
	delete(e.tracked, t.id)
	e.mu.Unlock()
	return nil
}

// List implements executor.Lister.
func (e *Executor) List(ctx context.Context, labels map[string]string) ([]executor.Instance, error) {
	f := client.Filters{}
	f.Add("label", executor.LabelManaged+"=true")
	for _, m := range []map[string]string{e.cfg.Labels, labels} {
		for k, v := range m {
			f.Add("label", k+"="+v)
		}
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, e.classify("list containers", err)
	}
	out := make([]executor.Instance, 0, len(list.Items))
	for _, c := range list.Items {
		info, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			continue // removed meanwhile
		}
		s := info.Container.State
		in := executor.Instance{
			ID:        c.ID,
			State:     executor.StateExited,
			Labels:    c.Labels,
			StartedAt: parseTime(s.StartedAt),
		}
		switch {
		case s.Paused:
			in.State = executor.StatePaused
		case s.Running:
			in.State = executor.StateRunning
		}
		for _, p := range c.Ports {
			if p.PublicPort != 0 {
				in.Ports = append(in.Ports, executor.Port{Guest: p.PrivatePort, Host: p.PublicPort, Protocol: p.Type, HostIP: p.IP.String()})
			}
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b executor.Instance) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

// Pause implements executor.Pauser (the cgroup freezer).
func (e *Executor) Pause(ctx context.Context, id string) error {
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	if _, err := e.cli.ContainerPause(ctx, t.id, client.ContainerPauseOptions{}); err != nil {
		return e.classify("pause "+t.id[:12], err)
	}
	return nil
}

// Resume implements executor.Pauser.
func (e *Executor) Resume(ctx context.Context, id string) error {
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	if _, err := e.cli.ContainerUnpause(ctx, t.id, client.ContainerUnpauseOptions{}); err != nil {
		return e.classify("resume "+t.id[:12], err)
	}
	return nil
}

// Exec implements executor.Execer.
func (e *Executor) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	t, err := e.get(ctx, id)
	if err != nil {
		return 0, err
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return 0, fmt.Errorf("docker: exec in %s: empty command", t.id[:12])
	}
	created, err := e.cli.ExecCreate(ctx, t.id, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return 0, e.classify("exec in "+t.id[:12], err)
	}
	att, err := e.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, e.classify("exec in "+t.id[:12], err)
	}
	defer att.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if _, err := stdcopy.StdCopy(stdout, stderr, att.Reader); err != nil {
		return 0, fmt.Errorf("docker: exec in %s: %w", t.id[:12], err)
	}
	return e.execExitCode(ctx, t.id, created.ID)
}

// Stats implements executor.Statser: it reads the container's cgroup
// files (cgroup.go), or asks the daemon where they cannot be read. An
// ended container's usage is its Result's.
func (e *Executor) Stats(ctx context.Context, id string) (executor.Usage, error) {
	t, err := e.get(ctx, id)
	if err != nil {
		return executor.Usage{}, err
	}
	select {
	case <-t.done:
		return t.result.Usage, nil
	default:
	}
	if cf := e.cgroupOf(ctx, t); cf != nil {
		if u, err := cf.read(); err == nil {
			t.keep(u)
			return u, nil
		}
	}
	resp, err := e.cli.ContainerStats(ctx, t.id, client.ContainerStatsOptions{})
	if err != nil {
		return executor.Usage{}, e.classify("stats of "+t.id[:12], err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return executor.Usage{}, fmt.Errorf("docker: stats of %s: %w", t.id[:12], err)
	}
	return usageOf(&s), nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// execExitCode waits for an exec, whose streams have ended, to be reported
// finished by the engine, and returns its exit code.
func (e *Executor) execExitCode(ctx context.Context, container, execID string) (int, error) {
	for {
		info, err := e.cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil {
			return 0, e.classify("exec in "+container[:12], err)
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
