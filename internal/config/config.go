// Package config is the node's configuration: the tree of settings, their
// defaults and documentation, loading from <home>/config.yaml, DMS_*
// environment overrides and command-line flags, and validation.
//
// Precedence, lowest to highest: Default(), the YAML file, environment
// variables, flags. The environment variable of a key is DMS_ followed by its
// path in upper case with dots as underscores: p2p.listen is DMS_P2P_LISTEN.
// List values in the environment or on the command line are comma-separated.
//
// Usage:
//
//	cfg, err := config.Load(config.Source{Home: home, Env: os.Environ(), Flags: map[string]string{"api.listen": addr}})
//	if err := cfg.Validate(); err != nil { ... } // every problem at once
//
// This is the only package that reads configuration files and the
// environment; each subsystem receives its own sub-struct.
package config

import (
	"fmt"
	"net/netip"

	"github.com/dmsnet/dms/internal/match"
)

// Config is the whole configuration tree. Every field carries a doc tag;
// docs/config.md is generated from them (go test ./internal/config -rewrite).
type Config struct {
	Log          Log          `yaml:"log" doc:"Logging."`
	P2P          P2P          `yaml:"p2p" doc:"Peer-to-peer networking (libp2p)."`
	API          API          `yaml:"api" doc:"The local REST API used by the CLI and dashboard."`
	Actor        Actor        `yaml:"actor" doc:"The actor runtime: mailboxes, limits, timeouts."`
	Cap          Cap          `yaml:"cap" doc:"Capability (UCAN) verification."`
	Resources    Resources    `yaml:"resources" doc:"What this machine keeps for itself, and machine benchmarks."`
	Executor     Executor     `yaml:"executor" doc:"The executors that run allocations on this node."`
	Orchestrator Orchestrator `yaml:"orchestrator" doc:"Deployments this node orchestrates, and the bids it makes as a provider."`
	Subnet       Subnet       `yaml:"subnet" doc:"The private IPv4 networks of the deployments this node orchestrates (ensemble network.subnet)."`
	Contract     Contract     `yaml:"contract" doc:"Contracts: the signed terms of each placement, and the usage notes providers send while allocations run (docs/contracts.md)."`
	Location     Location     `yaml:"location" doc:"Where this machine is, as its operator states it (no external look-ups)."`
	Storage      Storage      `yaml:"storage" doc:"Volumes of the allocations this node runs: S3 transfers, credentials the operator offers, results kept."`
	Telemetry    Telemetry    `yaml:"telemetry" doc:"Traces, Prometheus metrics and log export (docs/observability.md)."`
	Debug        Debug        `yaml:"debug" doc:"Diagnostics for operators and developers."`
}

// Debug configures diagnostics.
type Debug struct {
	Pprof string `yaml:"pprof" doc:"Loopback host:port to serve Go's pprof profiles on (/debug/pprof/); empty: off."`
	// MemoryLimit is applied with runtime/debug.SetMemoryLimit.
	MemoryLimit match.Bytes `yaml:"memory_limit" doc:"Soft limit of the Go heap (the garbage collector works harder near it); 0: none. Keeps an idle node small."`
}

// Log configures logging.
type Log struct {
	Level    string      `yaml:"level" doc:"Minimum level: debug, info, warn or error."`
	Format   string      `yaml:"format" doc:"text or json; empty means text on a terminal, else json."`
	File     string      `yaml:"file" doc:"Write the node's log records as JSON to this file (relative paths are under the dms home) as well as to the standard error; empty: none."`
	MaxSize  match.Bytes `yaml:"max_size" doc:"Size at which the log file is rotated: it is renamed with a timestamp and a new one started."`
	MaxFiles int         `yaml:"max_files" doc:"Rotated log files kept; older ones are removed."`
}

// Telemetry configures traces, metrics and the export of logs (package
// telemetry).
type Telemetry struct {
	// Traces
	OTLPEndpoint  string   `yaml:"otlp_endpoint" doc:"Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (http://127.0.0.1:4318); spans are posted to <url>/v1/traces. Empty: spans are only kept locally (dms deployment trace)."`
	Sampling      float64  `yaml:"sampling" doc:"Share of new traces (one per deployment) that are recorded, 0 to 1; a trace started elsewhere follows its sender's decision."`
	SpanQueue     int      `yaml:"span_queue" doc:"Finished spans held for export at most; when the collector is slow or down, newer spans are dropped and counted, and the node never waits."`
	SpanRetention Duration `yaml:"span_retention" doc:"How long this node keeps the spans it recorded, for dms deployment trace."`
	// Metrics
	Metrics bool `yaml:"metrics" doc:"Serve Prometheus metrics at /metrics on the API listener (the API token is required, as a bearer token)."`
	// Logs
	Elasticsearch Elasticsearch `yaml:"elasticsearch" doc:"Export of the node's log records (and the logs of allocations that ask for it) to an Elasticsearch-API store with the _bulk API."`
}

// Elasticsearch configures the _bulk log sink.
type Elasticsearch struct {
	URL           string      `yaml:"url" doc:"Base URL of the Elasticsearch-API server (Elasticsearch, OpenSearch or ZincSearch's /es/); empty: no export."`
	Index         string      `yaml:"index" doc:"Index the records are written to."`
	Username      string      `yaml:"username" doc:"HTTP basic user; empty: none."`
	PasswordFile  string      `yaml:"password_file" doc:"File holding the HTTP basic password (never the password itself in the configuration)."`
	Batch         int         `yaml:"batch" doc:"Records sent in one _bulk request at most."`
	FlushInterval Duration    `yaml:"flush_interval" doc:"Longest a record waits before it is sent."`
	SpoolSize     match.Bytes `yaml:"spool_size" doc:"Disk the spool of records not yet accepted may use (<home>/data/logspool); when it is full the oldest records are dropped and counted."`
}

// P2P configures the libp2p host.
type P2P struct {
	Listen          []string    `yaml:"listen" doc:"Multiaddrs to listen on (TCP and QUIC)."`
	Bootstrap       []string    `yaml:"bootstrap" doc:"Full multiaddrs (with /p2p/<peer ID>) of peers to connect to at start."`
	MDNS            bool        `yaml:"mdns" doc:"Discover peers on the local network with mDNS."`
	DHT             bool        `yaml:"dht" doc:"Run a Kademlia DHT (our own protocol prefix) for peer discovery."`
	ProtocolPrefix  string      `yaml:"protocol_prefix" doc:"Prefix of our libp2p protocol IDs and DHT; nodes with different prefixes do not talk."`
	Relay           bool        `yaml:"relay" doc:"Use circuit relays to be reachable behind NAT."`
	RelayService    bool        `yaml:"relay_service" doc:"Offer a relay service to other peers (for publicly reachable nodes)."`
	HolePunching    bool        `yaml:"hole_punching" doc:"Try direct connections through NAT (DCUtR)."`
	ConnLow         int         `yaml:"conn_low" doc:"Connection manager low watermark."`
	ConnHigh        int         `yaml:"conn_high" doc:"Connection manager high watermark: above it, connections are trimmed to conn_low."`
	MaxMemory       match.Bytes `yaml:"max_memory" doc:"Memory the libp2p resource manager may use."`
	MaxFDs          int         `yaml:"max_fds" doc:"File descriptors the libp2p resource manager may use."`
	MaxInboundConns int         `yaml:"max_inbound_conns" doc:"Inbound connections held at most; 0 takes the resource manager's limit, scaled to max_memory and max_fds."`
	InboundReserve  int         `yaml:"inbound_reserve" doc:"Inbound connections kept for protected peers (bootstrap peers, peers this node's actors work with): others are refused once max_inbound_conns less this many are held. 0: an eighth of the inbound limit, at least 4."`
	MaxConnsPerPeer int         `yaml:"max_conns_per_peer" doc:"Inbound connections accepted from one peer."`
	MaxConnsPerIP   int         `yaml:"max_conns_per_ip" doc:"Connections accepted from one IPv4 address or IPv6 /56 (eight times as many per IPv6 /48)."`
	LimitLoopback   bool        `yaml:"limit_loopback" doc:"Apply max_conns_per_ip to loopback addresses too; they are exempt by default so that local devnets work."`
}

// API configures the local REST API.
type API struct {
	Listen string `yaml:"listen" doc:"host:port to listen on; must be a loopback address (127.0.0.1, ::1 or localhost). Port 0 picks a free port; the address is written to <home>/api.addr."`
}

// Actor configures the actor runtime.
type Actor struct {
	Mailbox            int         `yaml:"mailbox" doc:"Envelopes queued per actor before senders get a mailbox-full error."`
	PeerRate           float64     `yaml:"peer_rate" doc:"Envelopes per second accepted from one peer (all behaviors together)."`
	PeerBurst          int         `yaml:"peer_burst" doc:"Burst above peer_rate accepted from one peer."`
	MaxEnvelope        match.Bytes `yaml:"max_envelope" doc:"Largest envelope accepted; larger ones are refused with an error."`
	DefaultTimeout     Duration    `yaml:"default_timeout" doc:"Deadline of an Invoke when the caller gives none."`
	MaxExpiry          Duration    `yaml:"max_expiry" doc:"Largest expiry accepted on an envelope; bounds the replay cache."`
	MaxSessionsPerLink int         `yaml:"max_sessions_per_link" doc:"Link sessions (verified invocations, one per sender actor, receiver actor and behavior) a peer may keep on one link; beyond it (or beyond 8 MiB of invocations) the oldest is evicted and its sender defines it again and resends the refused envelope; keep it above the allocations one orchestrator runs on one provider times their behaviors (about four). Each definition costs the peer one envelope of peer_rate."`
}

// Cap configures capability verification.
type Cap struct {
	MaxDepth  int      `yaml:"max_depth" doc:"Longest delegation chain accepted."`
	ClockSkew Duration `yaml:"clock_skew" doc:"Tolerance on token time bounds for clocks that differ between machines."`
}

// Resources configures what this machine keeps for itself.
type Resources struct {
	ReserveCPU      match.MilliCPU `yaml:"reserve_cpu" doc:"CPU (cores) never offered to the network."`
	ReserveRAM      match.Bytes    `yaml:"reserve_ram" doc:"Memory never offered to the network."`
	ReserveDisk     match.Bytes    `yaml:"reserve_disk" doc:"Disk never offered to the network."`
	BenchmarkBudget Duration       `yaml:"benchmark_budget" doc:"Longest a machine benchmark run may take."`
}

// Storage configures the volumes of the allocations this node runs.
type Storage struct {
	// Credentials are S3 keys the operator offers to jobs by name (an s3
	// volume's credentials.provider): each names a credentials file.
	Credentials map[string]string `yaml:"credentials" doc:"S3 keys offered to jobs by name (credentials.provider in an ensemble): name → path of a credentials file (KEY=VALUE lines: access_key_id, secret_access_key[, session_token]; mode 0600)."`
	PartSize    match.Bytes       `yaml:"part_size" doc:"Multipart part size of S3 transfers (at least 5MiB)."`
	Concurrency int               `yaml:"concurrency" doc:"Parts or objects transferred at once per volume."`
	// ResultsRetention is how long a local out volume stays on this node
	// after its allocation ends, to be fetched with dms deployment results.
	ResultsRetention Duration `yaml:"results_retention" doc:"How long a local out volume is kept after its allocation ends (dms deployment results fetches it), then removed."`
}

// Executor configures the executors.
type Executor struct {
	// BlockNetworks applies to every executor that gives jobs a network
	// (docker; vm and wasm jobs have none).
	BlockNetworks []string `yaml:"block_networks" doc:"Destinations jobs may not reach: CIDR prefixes, and host for every address of this machine. Default: link-local (169.254.0.0/16, where clouds serve instance metadata, and fe80::/10) and host; [] blocks nothing."`
	Docker        Docker   `yaml:"docker" doc:"Docker containers."`
	VM            VM       `yaml:"vm" doc:"QEMU microVMs."`
	WASM          WASM     `yaml:"wasm" doc:"WebAssembly (WASI) modules with wazero; runs anywhere."`
}

// Docker configures the docker executor.
type Docker struct {
	Enabled         bool   `yaml:"enabled" doc:"Offer the docker executor when the engine is reachable."`
	Host            string `yaml:"host" doc:"Docker engine address; empty means DOCKER_HOST, else the local socket."`
	AllowPrivileged bool   `yaml:"allow_privileged" doc:"Allow jobs to ask for privileged containers. Leave off unless you trust every job."`
}

// VM configures the microVM executor.
type VM struct {
	Enabled bool   `yaml:"enabled" doc:"Offer the vm executor when QEMU is installed."`
	QEMU    string `yaml:"qemu" doc:"QEMU binary."`
	Accel   string `yaml:"accel" doc:"tcg (software, works everywhere) or kvm (fast; needs a usable /dev/kvm)."`
	Kernel  string `yaml:"kernel" doc:"Absolute path of a kernel image on this machine for vm jobs that bring none; empty: every vm job brings its kernel."`
}

// WASM configures the WebAssembly executor.
type WASM struct {
	Enabled   bool        `yaml:"enabled" doc:"Offer the wasm executor."`
	MaxMemory match.Bytes `yaml:"max_memory" doc:"Largest linear memory a module may grow to when its job sets no limit."`
	// CPUCgroup and RequireCPULimit: a job's cpu below one core is enforced
	// by moving the module's thread into a cgroup with a CFS quota.
	CPUCgroup       string `yaml:"cpu_cgroup" doc:"Cgroup directory (v1 cpu hierarchy or v2) under which modules limited to less than a core get a group each; empty: this process's own cpu cgroup."`
	RequireCPULimit bool   `yaml:"require_cpu_limit" doc:"Refuse to start the wasm executor when no cgroup can limit a module's CPU (not root, no cpu controller); off: such modules run unlimited, at most one core, with a warning at start."`
}

// Orchestrator configures deployments and bidding.
type Orchestrator struct {
	BidWindow      Duration `yaml:"bid_window" doc:"How long an orchestrator collects bids in one round."`
	QueueTimeout   Duration `yaml:"queue_timeout" doc:"How long a deployment waits in the queue for fitting providers before it fails (0 waits forever)."`
	ReservationTTL Duration `yaml:"reservation_ttl" doc:"How long a provider holds resources for a bid that is not committed."`
	// The per-peer bounds keep one orchestrator (trusted, but misbehaving)
	// from holding a provider's free resources with bids it never commits.
	ReservationsPerPeer  int      `yaml:"reservations_per_peer" doc:"As a provider: most live (uncommitted, unexpired) reservations one requesting peer may hold here; over it, its bid requests get a peer-limit no-bid."`
	ReservedSharePerPeer float64  `yaml:"reserved_share_per_peer" doc:"As a provider: most one requesting peer's live reservations may hold together, as a share (0 to 1] of the onboarded resources in every dimension; a peer holding no other reservation may always reserve what fits."`
	Heartbeat            Duration `yaml:"heartbeat" doc:"Interval of allocation heartbeats to their orchestrator."`
	LostAfter            Duration `yaml:"lost_after" doc:"An allocation with no heartbeat for this long is marked lost."`
	StopAfter            Duration `yaml:"stop_after" doc:"As a provider: an allocation that has had no acknowledgement from its orchestrator for this long stops its workload on its own (its node may have been placed elsewhere); a commit may give its own. 0 means twice orchestrator.lost_after."`
	Lease                Duration `yaml:"lease" doc:"As the orchestrator of a deployment with standby orchestrators: it makes supervision decisions only while a standby acknowledged it within this lease; a standby takes over after 1.5 leases without word from it."`
	Price                float64  `yaml:"price" doc:"Price this provider asks per core-hour (0 is free)."`
}

// Contract configures contracts (package contract). A provider whose
// onboarded price is not zero refuses a commit without a contract; a free
// provider accepts one.
type Contract struct {
	Interval Duration `yaml:"interval" doc:"Metering interval of the contracts this node proposes as an orchestrator, when the ensemble's contract.interval is not set: each provider signs a usage note this often (1s to 24h). A provider stops a contract's allocations after two intervals without a countersigned note."`
}

// Subnet configures where the subnets of the deployments this node
// orchestrates come from (package subnet).
type Subnet struct {
	Pool string `yaml:"pool" doc:"IPv4 prefix (CIDR) the subnets of this node's deployments are carved from, one block per deployment; it must not overlap a network of this machine (dms run refuses to start otherwise)."`
	Bits int    `yaml:"bits" doc:"Prefix length of one deployment's subnet, from the pool's own length to 30: 24 holds 253 allocations (the network, the gateway .1 and the broadcast address are kept back)."`
	// Datagrams is the provider's side: it carries the packets of the
	// subnets it runs.
	Datagrams bool `yaml:"datagrams" doc:"Carry subnet packets to other providers as UDP datagrams (an ephemeral port, keys agreed over libp2p) rather than on libp2p streams: faster under loss (docs/PERFORMANCE.md, Subnet). Both providers need it; the stream carries the packets until the peer answers a probe on the UDP path, and again whenever it stops answering (a firewall or a relay that drops UDP)."`
}

// PoolPrefix returns the pool as a prefix: IPv4, masked.
func (s Subnet) PoolPrefix() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s.Pool)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (example: %s)", s.Pool, defaultSubnetPool)
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4 (example: %s)", p, defaultSubnetPool)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
	case p.Contains(subnetResolver):
		return netip.Prefix{}, fmt.Errorf("%s contains %s, the subnets' DNS address (example: %s)", p, subnetResolver, defaultSubnetPool)
	}
	return p, nil
}

// defaultSubnetPool and defaultSubnetBits are subnet.DefaultPool and
// subnet.DefaultBits, subnetResolver is subnet.Resolver (a test keeps them
// equal).
const (
	defaultSubnetPool = "10.77.0.0/16"
	defaultSubnetBits = 24
)

var subnetResolver = netip.MustParseAddr("169.254.53.53")

// Location is where the machine is.
type Location struct {
	Continent string `yaml:"continent" doc:"Continent code (EU, NA, SA, AF, AS, OC, AN)."`
	Country   string `yaml:"country" doc:"ISO 3166-1 alpha-2 country code."`
	// Subdivision lets jobs accept or reject one state or province.
	Subdivision string `yaml:"subdivision" doc:"ISO 3166-2 code of the state or province, its country included (US-CA); a job's location rule that names a subdivision accepts or rejects only providers that state it."`
	City        string `yaml:"city" doc:"City name."`
	Region      string `yaml:"region" doc:"Free-form region label, used by edge constraints and test networks."`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Log: Log{Level: "info", MaxSize: 64 << 20, MaxFiles: 5},
		P2P: P2P{
			Listen:          []string{"/ip4/0.0.0.0/tcp/9000", "/ip4/0.0.0.0/udp/9000/quic-v1"},
			MDNS:            true,
			DHT:             true,
			ProtocolPrefix:  "/dms",
			Relay:           true,
			HolePunching:    true,
			ConnLow:         100,
			ConnHigh:        400,
			MaxMemory:       256 << 20,
			MaxFDs:          512,
			MaxConnsPerPeer: 4,
			MaxConnsPerIP:   8,
		},
		API: API{Listen: "127.0.0.1:9999"},
		Actor: Actor{
			Mailbox:            1024,
			PeerRate:           200_000,
			PeerBurst:          20_000,
			MaxEnvelope:        4 << 20,
			DefaultTimeout:     Duration(30e9),
			MaxExpiry:          Duration(10 * 60e9),
			MaxSessionsPerLink: 1024,
		},
		Cap: Cap{MaxDepth: 8, ClockSkew: Duration(30e9)},
		Resources: Resources{
			ReserveCPU:      500,
			ReserveRAM:      1 << 30,
			ReserveDisk:     5 << 30,
			BenchmarkBudget: Duration(10e9),
		},
		Executor: Executor{
			BlockNetworks: []string{"169.254.0.0/16", "fe80::/10", "host"},
			Docker:        Docker{Enabled: true},
			VM:            VM{Enabled: true, QEMU: "qemu-system-x86_64", Accel: "tcg"},
			WASM:          WASM{Enabled: true, MaxMemory: 1 << 30},
		},
		Subnet: Subnet{Pool: defaultSubnetPool, Bits: defaultSubnetBits, Datagrams: true},
		Telemetry: Telemetry{
			Sampling:      1,
			SpanQueue:     2048,
			SpanRetention: Duration(7 * 24 * 3600e9),
			Metrics:       true,
			Elasticsearch: Elasticsearch{
				Index:         "dms-logs",
				Batch:         500,
				FlushInterval: Duration(2e9),
				SpoolSize:     64 << 20,
			},
		},
		Orchestrator: Orchestrator{
			BidWindow:      Duration(1e9),
			QueueTimeout:   Duration(10 * 60e9),
			ReservationTTL: Duration(30e9),
			Heartbeat:      Duration(2e9),
			LostAfter:      Duration(10e9),
			Lease:          Duration(10e9),

			ReservationsPerPeer:  8,
			ReservedSharePerPeer: 0.5,
		},
		Contract: Contract{Interval: Duration(60e9)},
		Storage: Storage{
			PartSize:         8 << 20,
			Concurrency:      4,
			ResultsRetention: Duration(24 * 3600e9),
		},
	}
}
