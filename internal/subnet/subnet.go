// Package subnet is the address plan of a deployment's private network:
// a pool of IPv4 blocks from which each deployment gets one, an address
// per allocation in it, and the routing table (allocation → address →
// provider peer) that the orchestrator issues and signs and every
// provider checks before it forwards a packet. It does no I/O: the data
// path, the interfaces and DNS build on it.
package subnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// DefaultPool is the block deployments' subnets are carved from when the
// configuration names none: 10.77.0.0/16, in /24s.
var DefaultPool = netip.MustParsePrefix("10.77.0.0/16")

// DefaultBits is the size of one deployment's subnet: a /24, 253
// allocations (the network, the gateway .1 and broadcast are kept back).
const DefaultBits = 24

// Resolver is the one address at which every subnet's DNS answers besides
// its gateway: the same in every deployment's subnet, so a container's
// resolver can be set before the container knows its subnet (the docker
// executor's network sandboxes are made with it as their DNS server and
// joined to a subnet only when a job takes them). Each allocation's
// interface routes it (a /32 through the interface, from the
// allocation's address: link), and the data path answers DNS sent to it
// from the attached interface as it answers the gateway's (router), with
// this address as the answer's source; anything else sent to it is dropped.
//
// It is link-local (169.254.0.0/16, RFC 3927), a range that is never
// routed off a link, that pools may not use (NewPool refuses a pool that
// contains it, Table.Validate a table) and that neither Docker's address
// pools nor the subnet pools' default (10.77.0.0/16) come near;
// 169.254.169.254, the cloud metadata service, is another address.
var Resolver = netip.MustParseAddr("169.254.53.53")

// Pool hands out one block of Bits to each deployment from Prefix.
// Allocated maps deployment ID → its block; it is the whole state, to be
// persisted by the caller.
type Pool struct {
	Prefix    netip.Prefix            `json:"prefix"`
	Bits      int                     `json:"bits"`
	Allocated map[string]netip.Prefix `json:"allocated,omitempty"`
}

// Errors of the pool.
var (
	ErrExhausted = errors.New("address pool exhausted")
	ErrOverlap   = errors.New("overlaps a network of this host")
	ErrTooSmall  = errors.New("subnet too small")
)

// NewPool checks a pool: an IPv4 prefix, blocks of bits (at most /30, at
// least as large as the pool), not overlapping any of the host's networks
// (host), so that a job's packets never shadow a real route.
func NewPool(prefix netip.Prefix, bits int, host []netip.Prefix) (*Pool, error) {
	prefix = prefix.Masked()
	switch {
	case !prefix.IsValid() || !prefix.Addr().Is4():
		return nil, fmt.Errorf("address pool %s: want an IPv4 prefix such as %s", prefix, DefaultPool)
	case bits < prefix.Bits() || bits > 30:
		return nil, fmt.Errorf("address pool %s: subnets of /%d do not fit it (want /%d to /30)", prefix, bits, prefix.Bits())
	}
	if prefix.Contains(Resolver) {
		return nil, fmt.Errorf("address pool %s contains %s, the subnets' DNS address (link-local 169.254.0.0/16 is kept for it): choose another, e.g. %s", prefix, Resolver, DefaultPool)
	}
	for _, h := range host {
		if h.Overlaps(prefix) {
			return nil, fmt.Errorf("address pool %s %w (%s): choose another, e.g. %s", prefix, ErrOverlap, h.Masked(), DefaultPool)
		}
	}
	return &Pool{Prefix: prefix, Bits: bits}, nil
}

// Capacity is how many allocations one subnet of the pool holds.
func (p *Pool) Capacity() int { return capacity(p.Bits) }

func capacity(bits int) int { return 1<<(32-bits) - 3 } // network, gateway, broadcast

// Assign returns deployment's block, giving it the lowest free one the
// first time; needs is the number of allocations it must hold.
func (p *Pool) Assign(deployment string, needs int) (netip.Prefix, error) {
	if needs > p.Capacity() {
		return netip.Prefix{}, fmt.Errorf("deployment %s has %d allocations: a /%d subnet holds %d (%w; raise the pool's subnet size)", deployment, needs, p.Bits, p.Capacity(), ErrTooSmall)
	}
	if b, ok := p.Allocated[deployment]; ok {
		return b, nil
	}
	used := map[netip.Addr]bool{}
	for _, b := range p.Allocated {
		used[b.Addr()] = true
	}
	step := uint32(1) << (32 - p.Bits)
	base := u32(p.Prefix.Addr())
	for i := uint32(0); i < uint32(1)<<(p.Bits-p.Prefix.Bits()); i++ {
		b := netip.PrefixFrom(addr(base+i*step), p.Bits)
		if !used[b.Addr()] {
			if p.Allocated == nil {
				p.Allocated = map[string]netip.Prefix{}
			}
			p.Allocated[deployment] = b
			return b, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("address pool %s: %d subnets of /%d in use: %w", p.Prefix, len(p.Allocated), p.Bits, ErrExhausted)
}

// Release gives deployment's block back.
func (p *Pool) Release(deployment string) { delete(p.Allocated, deployment) }

// Gateway is the first address of a subnet: the provider side of every
// allocation's link, and its DNS server.
func Gateway(block netip.Prefix) netip.Addr { return addr(u32(block.Masked().Addr()) + 1) }

// Addresses gives each allocation (sorted by name) an address of block:
// .2, .3, … in name order, keeping the addresses names had in prev (a
// redeploy moves an allocation, not its address).
func Addresses(block netip.Prefix, names []string, prev map[string]netip.Addr) (map[string]netip.Addr, error) {
	block = block.Masked()
	if len(names) > capacity(block.Bits()) {
		return nil, fmt.Errorf("%d allocations in a /%d: %w", len(names), block.Bits(), ErrTooSmall)
	}
	out := make(map[string]netip.Addr, len(names))
	taken := map[netip.Addr]bool{}
	for _, n := range names {
		if a, ok := prev[n]; ok && usable(block, a) && !taken[a] {
			out[n], taken[a] = a, true
		}
	}
	next := u32(Gateway(block)) + 1
	for _, n := range slices.Sorted(slices.Values(names)) {
		if _, ok := out[n]; ok {
			continue
		}
		for taken[addr(next)] {
			next++
		}
		out[n], taken[addr(next)] = addr(next), true
		next++
	}
	return out, nil
}

// usable reports whether a is a host address of block other than the
// gateway.
func usable(block netip.Prefix, a netip.Addr) bool {
	if !block.Contains(a) {
		return false
	}
	v, lo := u32(a), u32(block.Addr())
	hi := lo + uint32(1)<<(32-block.Bits()) - 1
	return v > lo+1 && v < hi
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
