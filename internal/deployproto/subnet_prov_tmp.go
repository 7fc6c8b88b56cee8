package deployproto

import "net/netip"

// TEMPORARY (helper prov): helper "ctrl" defines these for real; this file
// goes when its work is merged.

// FeatureSubnet is offered by providers that can give allocations a
// subnet interface.
const FeatureSubnet = "subnet"

// SubnetOf is a stand-in for AllocationSpec.Subnet until ctrl lands.
func SubnetOf(s *AllocationSpec) netip.Prefix { return s.SubnetTmp }
