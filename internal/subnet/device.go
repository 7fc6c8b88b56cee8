package subnet

// Device is one allocation's end of its deployment's subnet, as the data
// path sees it: whole IPv4 packets, without a link-layer header, read and
// written in batches. A TUN device from golang.zx2c4.com/wireguard/tun
// satisfies it as it is (package subnet/link opens one inside a
// container's network namespace); a VM guest's tap is adapted to it by
// link.Ethernet.
//
// Read and Write follow wireguard's tun.Device: packets start at offset in
// each buffer (the space before it is headroom the device may use), Read
// fills sizes and returns how many packets it read, Write returns how many
// it wrote. Read blocks; after Close it returns an error.
type Device interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the most packets one Read returns or one Write takes.
	BatchSize() int
	Close() error
}

// MTU of every subnet interface: small enough that a packet and its
// framing fit in one segment of the providers' own links with room for
// their encryption (WireGuard and Hyprspace use the same).
const MTU = 1420

// Offset is the headroom the data path leaves before each packet it
// hands a Device: wireguard's TUN needs 10 bytes for a virtio-net header
// when offloads are on; 16 keeps the packet aligned.
const Offset = 16
