//go:build !linux

package link

import (
	"errors"
	"net/netip"

	"github.com/dmsnet/dms/internal/subnet"
)

// OpenTUN needs Linux network namespaces.
func OpenTUN(netnsPath, name string, addr netip.Prefix) (subnet.Device, error) {
	return nil, errors.New("link: a TUN in a network namespace needs Linux")
}
