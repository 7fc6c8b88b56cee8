//go:build !linux || !subnetwire

package node

import "errors"

// newDataPath: TEMPORARY until the router, dns and link packages land.
func (n *Node) newDataPath() (*subnets, error) {
	return nil, errors.New("the subnet data path is not built in this version")
}
