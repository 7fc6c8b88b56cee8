package p2p

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Host. The daemon fills it from the p2p section of the
// configuration (plus MaxFrame from the actor section); zero values take the
// defaults noted on each field.
type Config struct {
	// Listen are the multiaddrs to listen on. Default: TCP and QUIC on every
	// IPv4 interface, on ports the system picks.
	Listen []string
	// Bootstrap are full multiaddrs (with /p2p/<peer ID>) of peers dialled at
	// start, and again whenever they drop, with backoff.
	Bootstrap []string
	// MDNS discovers peers on the local network.
	MDNS bool
	// DHT runs a Kademlia DHT in ProtocolPrefix's namespace, for discovery
	// and peer routing.
	DHT bool
	// ProtocolPrefix prefixes every protocol ID, topic and the DHT. Default
	// "/dms". Hosts with different prefixes do not talk.
	ProtocolPrefix string
	// Relay uses circuit relays (the bootstrap peers) when this host is not
	// reachable directly.
	Relay bool
	// RelayService offers a relay and AutoNAT service to other peers.
	RelayService bool
	// HolePunching tries direct connections through NAT (DCUtR).
	HolePunching bool
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh, connections are trimmed to ConnLow. Defaults 100 and 400.
	ConnLow, ConnHigh int
	// MaxMemory and MaxFDs size the resource manager. Defaults: a share of
	// the machine's memory and the process's file descriptor limit.
	MaxMemory int64
	MaxFDs    int
	// MaxInboundConns bounds the inbound connections the host holds.
	// Default: the resource manager's, scaled to MaxMemory and MaxFDs.
	MaxInboundConns int
	// InboundReserve of those are kept for protected peers (bootstrap
	// peers, peers the actor runtime works with, see Protect): an
	// unprotected peer is refused once MaxInboundConns-InboundReserve
	// inbound connections are held. Default: an eighth of
	// MaxInboundConns, at least 4.
	InboundReserve int
	// MaxConnsPerPeer bounds the inbound connections from one peer.
	// Default 4.
	MaxConnsPerPeer int
	// MaxConnsPerIP bounds the connections from one IPv4 address or IPv6
	// /56 (eight times as many per IPv6 /48). Default 8.
	MaxConnsPerIP int
	// LimitLoopback applies MaxConnsPerIP to loopback addresses too, which
	// are exempt by default so that a local devnet of many nodes works.
	LimitLoopback bool
	// MaxFrame is the largest link frame and gossip message accepted, in
	// bytes. Default 4 MiB + 64 KiB.
	MaxFrame int
	// SendQueue is how many frames a link queues before Send blocks.
	// Default 1024.
	SendQueue int
	// DiscoveryInterval is the longest pause between two rounds of DHT
	// discovery and bootstrap checks; rounds start at one second apart and
	// double up to it. Default one minute.
	DiscoveryInterval time.Duration
	// Registerer receives libp2p's Prometheus metrics; nil disables them.
	Registerer prometheus.Registerer
}

// Defaults of Config's zero fields.
const (
	DefaultProtocolPrefix    = "/dms"
	DefaultMaxFrame          = 4<<20 + 64<<10
	DefaultSendQueue         = 1024
	DefaultConnLow           = 100
	DefaultConnHigh          = 400
	DefaultDiscoveryInterval = time.Minute
	DefaultMaxConnsPerPeer   = 4
	DefaultMaxConnsPerIP     = 8
	minInboundReserve        = 4
)

// Protocol IDs and names below the protocol prefix.
const (
	actorProtocolSuffix = "/actor/1.1.0"
	rendezvousSuffix    = "/nodes"
	topicInfix          = "/topic/"
)

func (c Config) withDefaults() Config {
	if len(c.Listen) == 0 {
		c.Listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	if c.ProtocolPrefix == "" {
		c.ProtocolPrefix = DefaultProtocolPrefix
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.ConnLow == 0 && c.ConnHigh == 0 {
		c.ConnLow, c.ConnHigh = DefaultConnLow, DefaultConnHigh
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if c.MaxConnsPerPeer == 0 {
		c.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	return c
}

// parsed is the checked form of a Config.
type parsed struct {
	listen    []ma.Multiaddr
	bootstrap []peer.AddrInfo
}

// check validates c (after withDefaults) and returns every problem at once.
func (c Config) check() (parsed, error) {
	var p parsed
	var errs []error
	for _, s := range c.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen address %q: %w", s, err))
			continue
		}
		p.listen = append(p.listen, a)
	}
	for _, s := range c.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("bootstrap address %q (want a multiaddr ending in /p2p/<peer ID>): %w", s, err))
			continue
		}
		p.bootstrap = mergeAddrInfo(p.bootstrap, *ai)
	}
	if !strings.HasPrefix(c.ProtocolPrefix, "/") || strings.HasSuffix(c.ProtocolPrefix, "/") || strings.ContainsAny(c.ProtocolPrefix, " \t\n") {
		errs = append(errs, fmt.Errorf("protocol prefix %q: must start with / and not end with one, without spaces", c.ProtocolPrefix))
	}
	if c.MaxFrame < 0 {
		errs = append(errs, fmt.Errorf("max frame %d: must not be negative", c.MaxFrame))
	}
	if c.SendQueue < 0 {
		errs = append(errs, fmt.Errorf("send queue %d: must not be negative", c.SendQueue))
	}
	if c.ConnLow < 0 || c.ConnHigh < c.ConnLow {
		errs = append(errs, fmt.Errorf("connection watermarks %d..%d: want 0 <= low <= high", c.ConnLow, c.ConnHigh))
	}
	if c.MaxMemory < 0 || c.MaxFDs < 0 {
		errs = append(errs, fmt.Errorf("resource limits (memory %d, fds %d): must not be negative", c.MaxMemory, c.MaxFDs))
	}
	if c.MaxInboundConns < 0 || c.InboundReserve < 0 || c.MaxConnsPerPeer < 0 || c.MaxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("connection limits (inbound %d, reserve %d, per peer %d, per IP %d): must not be negative", c.MaxInboundConns, c.InboundReserve, c.MaxConnsPerPeer, c.MaxConnsPerIP))
	}
	if c.MaxInboundConns > 0 && c.InboundReserve >= c.MaxInboundConns {
		errs = append(errs, fmt.Errorf("inbound reserve %d: must be below the inbound limit %d", c.InboundReserve, c.MaxInboundConns))
	}
	if c.DiscoveryInterval < 0 {
		errs = append(errs, fmt.Errorf("discovery interval %s: must not be negative", c.DiscoveryInterval))
	}
	return p, errors.Join(errs...)
}

// mergeAddrInfo adds ai to list, merging the addresses of one peer given
// several times.
func mergeAddrInfo(list []peer.AddrInfo, ai peer.AddrInfo) []peer.AddrInfo {
	for i := range list {
		if list[i].ID == ai.ID {
			list[i].Addrs = append(list[i].Addrs, ai.Addrs...)
			return list
		}
	}
	return append(list, ai)
}

func (c Config) actorProtocol() protocol.ID {
	return protocol.ID(c.ProtocolPrefix + actorProtocolSuffix)
}

func (c Config) rendezvous() string { return c.ProtocolPrefix + rendezvousSuffix }

// topicName is the gossipsub topic of an actor-level topic name.
func (c Config) topicName(topic string) string { return c.ProtocolPrefix + topicInfix + topic }

// mdnsService is the mDNS service name: a DNS label derived from the prefix.
func (c Config) mdnsService() string {
	var b strings.Builder
	b.WriteString("_")
	for _, r := range strings.Trim(c.ProtocolPrefix, "/") {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	b.WriteString("._udp")
	return b.String()
}
