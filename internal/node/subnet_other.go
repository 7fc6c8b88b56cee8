//go:build !linux

package node

// subnetSupport: subnets need Linux (TUN interfaces in network
// namespaces).
func subnetSupport() string { return "subnets need Linux" }
