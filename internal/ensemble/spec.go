package ensemble

import (
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// Version is the only ensemble format version this package reads.
const Version = "v1"

// Struct tags used by the decoder, the defaults, the validator and the JSON
// Schema generator:
//
//	yaml:"name,omitempty"   the field's key
//	ens:"required"          the key must be present (and not null)
//	ens:"enum=a|b"          the value must be one of these
//	ens:"default=x"         the value when the key is absent (in YAML form)
//	ens:"min=1,max=65535"   bounds of an integer
//	doc:"..."               one sentence for editors (the schema's description)

// Spec is one ensemble: what to run (allocations), on how many machines
// (nodes) and under which constraints. Parse returns it with every default
// filled in (see SetDefaults), so consumers read explicit values.
type Spec struct {
	Version     string                `yaml:"version" ens:"required,enum=v1" doc:"Format version; always v1."`
	Metadata    map[string]string     `yaml:"metadata,omitempty" doc:"Free key/value labels, kept with the deployment (for example to filter lists)."`
	Timeouts    Timeouts              `yaml:"timeouts,omitempty" doc:"Time limits of the whole deployment."`
	Contracts   []string              `yaml:"contracts,omitempty" doc:"References of the contracts this deployment runs under (opaque for now, for example a DID)."`
	Contract    Contract              `yaml:"contract,omitempty" doc:"What the deployment may cost: the highest price per hour of a node, the budget of the whole deployment and how often providers send their usage notes."`
	Allocations map[string]Allocation `yaml:"allocations" ens:"required" doc:"The units of work, by name (a DNS label)."`
	Nodes       map[string]Node       `yaml:"nodes,omitempty" doc:"The machines, by name: which allocations share one. When omitted, each allocation gets a node of its own name."`
	Edges       []Edge                `yaml:"edges,omitempty" doc:"Network constraints between pairs of nodes."`
	Reschedule  Reschedule            `yaml:"reschedule,omitempty" doc:"How often a node is placed again on another provider when its provider is lost or its allocations fail there."`
	Supervision Supervision           `yaml:"supervision,omitempty" doc:"How failures propagate between allocations, and which nodes orchestrate."`
	Network     Network               `yaml:"network,omitempty" doc:"The deployment's private network between its allocations."`
}

// Contract bounds what a deployment costs. Each placed node runs under a
// contract with its provider (package contract): the provider's bid price
// applied to the usage it measures, noted every Interval.
type Contract struct {
	MaxPrice match.Money   `yaml:"max_price,omitempty" doc:"Highest price per hour of one node's resources (CPU, RAM, disk and GPUs at a provider's prices); dearer providers are not used. 0: no limit."`
	Budget   match.Money   `yaml:"budget,omitempty" doc:"Most the whole deployment may cost, over all its contracts; the deployment is stopped with budget exhausted when a provider's note would pass it. 0: no limit."`
	Interval time.Duration `yaml:"interval,omitempty" doc:"How often each provider sends a usage note (1s to 24h); default the node's contract.interval (60s)."`
}

// Network is the deployment's private network.
type Network struct {
	Subnet bool `yaml:"subnet,omitempty" doc:"Give every allocation (docker and vm) an IPv4 address on a private subnet shared across its providers, reachable as <name>.internal."`
}

// Timeouts bound a deployment in time. Zero means no limit.
type Timeouts struct {
	Queue     time.Duration `yaml:"queue,omitempty" doc:"How long the deployment may wait for machines before it fails (e.g. 10m)."`
	Execution time.Duration `yaml:"execution,omitempty" doc:"How long the allocations may run once started (e.g. 1h)."`
	Total     time.Duration `yaml:"total,omitempty" doc:"Limit of queue plus execution time."`
}

// AllocationType says whether an allocation runs to completion or keeps
// running.
type AllocationType string

// The allocation types.
const (
	Task    AllocationType = "task"    // runs to completion; its exit code is its result
	Service AllocationType = "service" // runs until the deployment is shut down
)

// Executor names what runs an allocation.
type Executor string

// The executors.
const (
	Docker Executor = "docker" // an OCI image in a container
	VM     Executor = "vm"     // a QEMU microvm: kernel plus initrd or root filesystem
	Wasm   Executor = "wasm"   // a WebAssembly (WASI preview 1) module under wazero
)

// Allocation is one unit of work on one provider, run by one executor.
type Allocation struct {
	Type        AllocationType    `yaml:"type,omitempty" ens:"enum=task|service,default=task" doc:"task runs to completion; service runs until shut down."`
	Executor    Executor          `yaml:"executor" ens:"required,enum=docker|vm|wasm" doc:"What runs it: docker, vm (QEMU microvm) or wasm (wazero)."`
	Resources   Resources         `yaml:"resources,omitempty" doc:"What the allocation reserves on its provider."`
	Execution   Execution         `yaml:"execution" ens:"required" doc:"What to run; the fields depend on the executor."`
	Ports       []Port            `yaml:"ports,omitempty" doc:"Ports the allocation listens on (docker and vm)."`
	Volumes     map[string]Volume `yaml:"volumes,omitempty" doc:"Volumes mounted into the allocation, by name."`
	Healthcheck *Healthcheck      `yaml:"healthcheck,omitempty" doc:"How to tell a service is healthy (services only)."`
	DependsOn   []string          `yaml:"depends_on,omitempty" doc:"Allocations that must be running (a service; healthy if it has a healthcheck) or completed successfully (a task) before this one starts."`
	Restart     Restart           `yaml:"restart,omitempty" doc:"What to do when the allocation exits."`
	Logs        Logs              `yaml:"logs,omitempty" doc:"What becomes of the allocation's output beyond its provider's log."`
}

// Logs says what becomes of an allocation's output (stdout and stderr)
// beyond the log its provider keeps (dms deployment logs).
type Logs struct {
	Ship bool `yaml:"ship,omitempty" doc:"Also send each line to the provider's log store (telemetry.elasticsearch), with the deployment and allocation ids; providers without one keep only their own log."`
}

// Resources is what an allocation reserves on its provider.
type Resources struct {
	CPU  match.MilliCPU `yaml:"cpu,omitempty" ens:"default=1" doc:"CPU cores: 1.5, or millicores: 500m."`
	RAM  match.Bytes    `yaml:"ram,omitempty" ens:"default=256MiB" doc:"Memory: 512MiB, 2GB, 1.5GiB."`
	Disk match.Bytes    `yaml:"disk,omitempty" doc:"Scratch disk space; none reserved when omitted."`
	GPUs []GPU          `yaml:"gpus,omitempty" doc:"GPUs, by kind."`
}

// Match converts r to the capability algebra's resources: one match.GPU
// per GPU asked for.
func (r Resources) Match() match.Resources {
	m := match.Resources{CPU: r.CPU, RAM: r.RAM, Disk: r.Disk}
	for _, g := range r.GPUs {
		for range g.Count {
			m.GPUs = append(m.GPUs, match.GPU{Vendor: g.Vendor, Model: g.Model, VRAM: g.VRAM})
		}
	}
	return m
}

// GPU asks for Count GPUs of one kind.
type GPU struct {
	Vendor string      `yaml:"vendor" ens:"required,enum=nvidia|amd|intel" doc:"nvidia, amd or intel."`
	Model  string      `yaml:"model,omitempty" doc:"Model name the provider reports (e.g. A100); any model when omitted."`
	VRAM   match.Bytes `yaml:"vram,omitempty" doc:"Least video memory per GPU."`
	Count  int         `yaml:"count,omitempty" ens:"default=1,min=1" doc:"How many GPUs of this kind."`
}

// Execution says what an executor runs. Which fields apply depends on the
// executor (Validate refuses the others):
//
//	docker: image (required), entrypoint, cmd, env, workdir
//	wasm:   module (required), args, env
//	vm:     kernel, initrd and/or rootfs (one required), kernel_args, cmd, env
//
// module, kernel, initrd and rootfs are file references: a path relative to
// the ensemble file, or "sha256:" followed by 64 hex digits naming content
// the network already holds. See Spec.LocalFiles.
type Execution struct {
	Image      string   `yaml:"image,omitempty" doc:"docker: the OCI image reference (nginx:1.27, ghcr.io/org/app@sha256:...)."`
	Entrypoint []string `yaml:"entrypoint,omitempty" doc:"docker: overrides the image's entrypoint."`
	Cmd        []string `yaml:"cmd,omitempty" doc:"docker: overrides the image's command; vm: the command the guest's init runs."`
	Env        Env      `yaml:"env,omitempty" doc:"Environment variables: a map, or a list of KEY=VALUE."`
	Workdir    string   `yaml:"workdir,omitempty" doc:"docker: the working directory (absolute)."`
	Module     string   `yaml:"module,omitempty" doc:"wasm: the module, a path relative to this file or sha256:<hex>."`
	Args       []string `yaml:"args,omitempty" doc:"wasm: the module's arguments (after argv[0])."`
	Kernel     string   `yaml:"kernel,omitempty" doc:"vm: the kernel, a path or sha256:<hex>; the provider's default kernel when omitted."`
	Initrd     string   `yaml:"initrd,omitempty" doc:"vm: an initramfs, a path or sha256:<hex>."`
	Rootfs     string   `yaml:"rootfs,omitempty" doc:"vm: a root filesystem image, a path or sha256:<hex>."`
	KernelArgs string   `yaml:"kernel_args,omitempty" doc:"vm: extra kernel command line."`
}

// Env is a set of environment variables. In YAML it is a mapping, or a list
// of KEY=VALUE strings.
type Env map[string]string

// Protocol is a transport protocol of a port.
type Protocol string

// The protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Port is one port an allocation listens on.
type Port struct {
	Port     int      `yaml:"port" ens:"required,min=1,max=65535" doc:"The port inside the container or guest."`
	Protocol Protocol `yaml:"protocol,omitempty" ens:"enum=tcp|udp,default=tcp" doc:"tcp or udp."`
	Public   int      `yaml:"public,omitempty" ens:"min=1,max=65535" doc:"The port on the provider's public address; when omitted, published on the provider's loopback only (for health checks)."`
}

// VolumeKind says where a volume's data lives.
type VolumeKind string

// The volume kinds.
const (
	// Local is a directory on the provider, optionally of a bounded size.
	// A local volume in mode out is a result: it is kept on the provider
	// for its retention after the allocation ends, and dms deployment
	// results fetches it through the network.
	Local VolumeKind = "local"
	// S3 is a prefix of an S3 bucket: staged into the directory before
	// the start (mode in), uploaded from it after the exit (mode out), or
	// both (inout).
	S3 VolumeKind = "s3"
	// URL is one file fetched over HTTP(S) and checked by its SHA-256,
	// mounted read-only.
	URL VolumeKind = "url"
)

// VolumeMode says which way a volume's data goes.
type VolumeMode string

// The volume modes.
const (
	ModeIn    VolumeMode = "in"    // inputs: staged before the start, mounted read-only
	ModeOut   VolumeMode = "out"   // outputs: empty at the start, kept (local) or uploaded (s3) after the exit
	ModeInOut VolumeMode = "inout" // both: staged before the start, writable, uploaded after the exit
)

// Volume is a directory mounted into an allocation.
type Volume struct {
	Path     string      `yaml:"path" ens:"required" doc:"Where the volume is mounted (absolute)."`
	ReadOnly bool        `yaml:"read_only,omitempty" doc:"Mount read-only (always so in mode in and for a url volume)."`
	Kind     VolumeKind  `yaml:"kind,omitempty" ens:"enum=local|s3|url,default=local" doc:"local: a directory on the provider; s3: a bucket prefix staged in and/or uploaded out; url: one file fetched over HTTP(S)."`
	Mode     VolumeMode  `yaml:"mode,omitempty" ens:"enum=in|out|inout" doc:"in: staged before the start, read-only; out: kept (local) or uploaded (s3) after the exit; inout: both. Required for s3; for local only out is allowed (a result to fetch)."`
	Size     match.Bytes `yaml:"size,omitempty" doc:"local and s3: the most the volume holds; writing past it gives the job ENOSPC (a loop-mounted filesystem on the provider)."`
	S3       *S3Volume   `yaml:"s3,omitempty" doc:"Where an s3 volume's objects are (kind s3 only)."`
	URL      string      `yaml:"url,omitempty" doc:"kind url: the HTTP(S) address of the file."`
	SHA256   string      `yaml:"sha256,omitempty" doc:"kind url: the file's SHA-256 (64 hex digits); required."`
	File     string      `yaml:"file,omitempty" doc:"kind url: the file's name in the volume; default the last element of the URL's path."`
}

// S3Volume is the bucket prefix of an s3 volume.
type S3Volume struct {
	Bucket   string `yaml:"bucket" ens:"required" doc:"The bucket."`
	Prefix   string `yaml:"prefix,omitempty" doc:"mode in: the objects staged are those under it (all of the bucket when empty); mode out: the keys uploaded start with it; default <deployment>/<allocation>/<attempt>/."`
	Endpoint string `yaml:"endpoint,omitempty" doc:"The server's URL, http(s)://host[:port]; default AWS S3 (https://s3.<region>.amazonaws.com)."`
	Region   string `yaml:"region,omitempty" ens:"default=us-east-1" doc:"The bucket's region."`
	// SyncEvery uploads a service's out volume periodically, not only
	// after it exits.
	SyncEvery   time.Duration `yaml:"sync_every,omitempty" doc:"mode out or inout: also upload every this long while the allocation runs (services); 0: only after the exit."`
	Credentials *Credentials  `yaml:"credentials,omitempty" doc:"Where the keys come from; anonymous access when omitted."`
}

// Credentials names the keys of an s3 volume. Exactly one field is set;
// the keys themselves never appear in an ensemble.
type Credentials struct {
	Secret   string `yaml:"secret,omitempty" doc:"A secret the user gives at deploy time (dms deploy --secret NAME=FILE): sealed to the chosen provider's key, dropped when the allocation ends."`
	Provider string `yaml:"provider,omitempty" doc:"Credentials the provider's operator configured under this name (storage.credentials in its config): the operator's bucket."`
}

// Healthcheck tells whether a service is healthy. Exactly one of Exec, HTTP
// and TCP is set.
type Healthcheck struct {
	Exec        []string      `yaml:"exec,omitempty" doc:"A command run inside the allocation; healthy when it exits 0."`
	HTTP        *HTTPProbe    `yaml:"http,omitempty" doc:"An HTTP GET; healthy on a 2xx or 3xx status."`
	TCP         *TCPProbe     `yaml:"tcp,omitempty" doc:"A TCP connect; healthy when it connects."`
	Interval    time.Duration `yaml:"interval,omitempty" ens:"default=10s" doc:"Time between checks."`
	Timeout     time.Duration `yaml:"timeout,omitempty" doc:"How long one check may take; default 5s, or the interval if shorter."`
	Retries     int           `yaml:"retries,omitempty" ens:"default=3,min=1" doc:"Consecutive failures before the allocation is unhealthy."`
	StartPeriod time.Duration `yaml:"start_period,omitempty" doc:"Grace time after start during which failures do not count."`
}

// HTTPProbe checks a service with an HTTP GET.
type HTTPProbe struct {
	Port int    `yaml:"port" ens:"required,min=1,max=65535" doc:"One of the allocation's ports."`
	Path string `yaml:"path,omitempty" ens:"default=/" doc:"The request path."`
}

// TCPProbe checks a service by connecting to a port.
type TCPProbe struct {
	Port int `yaml:"port" ens:"required,min=1,max=65535" doc:"One of the allocation's ports."`
}

// RestartPolicy says when an exited allocation is restarted.
type RestartPolicy string

// The restart policies.
const (
	Never     RestartPolicy = "never"
	OnFailure RestartPolicy = "on-failure"
	Always    RestartPolicy = "always"
)

// Restart is what the supervisor does when an allocation exits. After
// MaxRestarts restarts on one provider the allocation has failed there (a
// service is then redeployed elsewhere).
type Restart struct {
	Policy      RestartPolicy `yaml:"policy,omitempty" ens:"enum=never|on-failure|always" doc:"never, on-failure or always; default never for a task, always for a service."`
	MaxRestarts int           `yaml:"max_restarts,omitempty" ens:"min=1" doc:"Restarts before the allocation counts as failed; default 5 unless the policy is never."`
	Backoff     time.Duration `yaml:"backoff,omitempty" doc:"Delay before the first restart, doubled each time up to 1m; default 1s unless the policy is never."`
}

// Reschedule bounds the redeploys of a node: when its provider is lost, or
// one of its allocations fails there (after its restarts), the node is
// placed again on another provider, at most Attempts times within
// Interval, waiting Delay before the first redeploy of the interval and
// (with the exponential delay function) twice as long before each next
// one, up to MaxDelay. Once the budget is spent the deployment fails.
type Reschedule struct {
	Attempts      int           `yaml:"attempts,omitempty" ens:"min=0,max=1000" doc:"Redeploys of one node allowed within interval; 0 turns redeploys off. Default 3 for an ensemble with a service, else 1."`
	Interval      time.Duration `yaml:"interval,omitempty" doc:"The sliding window attempts count in; default 1h."`
	Delay         time.Duration `yaml:"delay,omitempty" doc:"Wait before the first redeploy within the interval; default 1s."`
	DelayFunction DelayFunction `yaml:"delay_function,omitempty" ens:"enum=constant|exponential,default=exponential" doc:"constant: every redeploy waits delay; exponential: each waits twice as long as the one before, up to max_delay."`
	MaxDelay      time.Duration `yaml:"max_delay,omitempty" doc:"Longest wait before a redeploy; default 1m."`
}

// DelayFunction says how the wait before a redeploy grows.
type DelayFunction string

// The delay functions.
const (
	DelayConstant    DelayFunction = "constant"
	DelayExponential DelayFunction = "exponential"
)

// Strategy is an Erlang/OTP supervision strategy: what else restarts when
// an allocation restarts or moves.
type Strategy string

// The supervision strategies.
const (
	OneForOne  Strategy = "one_for_one"  // only the failed allocation restarts
	OneForAll  Strategy = "one_for_all"  // every allocation of the deployment restarts
	RestForOne Strategy = "rest_for_one" // the failed one and those that depend on it, in depends_on order
)

// Supervision says how failures propagate between the allocations of a
// deployment, and which nodes orchestrate it.
type Supervision struct {
	Strategy      Strategy `yaml:"strategy,omitempty" ens:"enum=one_for_one|one_for_all|rest_for_one,default=one_for_one" doc:"one_for_one: only the failed allocation restarts; one_for_all: all restart; rest_for_one: the failed one and those that depend on it. Dependents are told of every restart or move in their logs either way."`
	Orchestrators int      `yaml:"orchestrators,omitempty" ens:"min=1,max=5,default=1" doc:"How many nodes orchestrate the deployment: the one it is submitted to and orchestrators-1 standbys that take over if it is gone."`
	Standbys      []string `yaml:"standbys,omitempty" doc:"Standby orchestrators by peer ID (12D3KooW...) or did:key; when fewer than orchestrators-1, the rest are chosen among connected peers."`
}

// Node is one machine of the ensemble: the allocations that share it and
// where it may be. Each node lands on its own provider: two nodes of an
// ensemble (and a node's redundant copies) never share a provider.
type Node struct {
	Allocations []string `yaml:"allocations" ens:"required" doc:"The allocations this machine runs."`
	Location    Location `yaml:"location,omitempty" doc:"Where the provider may be."`
	Peer        string   `yaml:"peer,omitempty" doc:"Pin the node to one provider: its peer ID (12D3KooW...) or did:key."`
	Redundancy  int      `yaml:"redundancy,omitempty" ens:"default=1,min=1" doc:"How many providers host a copy of this node: one active, the others standbys (this release deploys only 1)."`
}

// Location restricts where a node's provider may be. A location code is a
// continent (africa, antarctica, asia, europe, north-america, oceania,
// south-america), an ISO 3166-1 country code (DE), or an ISO 3166-2
// subdivision (US-CA).
type Location struct {
	Accept []string `yaml:"accept,omitempty" doc:"The provider must be in one of these (any place when empty)."`
	Reject []string `yaml:"reject,omitempty" doc:"The provider must be in none of these."`
}

// Edge constrains the network between two nodes.
type Edge struct {
	Between   []string      `yaml:"between" ens:"required" doc:"The two nodes."`
	RTT       time.Duration `yaml:"rtt,omitempty" doc:"Largest round-trip time allowed (e.g. 20ms)."`
	Bandwidth Bandwidth     `yaml:"bandwidth,omitempty" doc:"Least bandwidth needed (e.g. 100Mbps; not measured by this release, which refuses to deploy it)."`
}
