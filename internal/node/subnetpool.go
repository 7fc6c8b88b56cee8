package node

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/subnet"
)

// subnetPool is the pool the subnets of the deployments this node
// orchestrates come from (configuration subnet.pool and subnet.bits),
// refused when it overlaps one of host, the networks of this machine's
// interfaces: a job's packets must never shadow a real route.
func subnetPool(c config.Subnet, host []netip.Prefix) (*subnet.Pool, error) {
	prefix, err := c.PoolPrefix()
	if err != nil {
		return nil, fmt.Errorf("subnet.pool: %w", err)
	}
	pool, err := subnet.NewPool(prefix, c.Bits, host)
	if err != nil {
		return nil, fmt.Errorf("subnet.pool (with subnet.bits %d): %w; set another in the configuration or DMS_SUBNET_POOL", c.Bits, err)
	}
	return pool, nil
}

// hostNetworks returns the networks of this machine's interfaces, masked.
func hostNetworks() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this machine's networks: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		if ip.Is4In6() {
			ip = ip.Unmap()
			if ones >= 96 {
				ones -= 96
			}
		}
		out = append(out, netip.PrefixFrom(ip, ones).Masked())
	}
	return out, nil
}
