//go:build !linux

package node

import "errors"

// newDataPath: subnets need Linux (subnetSupport says so first).
func (n *Node) newDataPath() (*subnets, error) {
	return nil, errors.New("subnets need Linux")
}
