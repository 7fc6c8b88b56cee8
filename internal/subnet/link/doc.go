// Package link makes an allocation's end of its deployment's subnet: the
// interface the workload sees and the subnet.Device the data path reads
// and writes.
//
// For a docker container, OpenTUN creates a TUN device (named
// executor.SubnetInterface, dms0) inside the container's network
// namespace, with the allocation's address, MTU subnet.MTU, up. The
// connected route of the subnet comes with the address, so every packet
// the container sends to the subnet reaches the device, and the host's
// own interfaces and routes are not involved: the host never routes a
// subnet packet.
//
// The TUN is not persistent: it exists as long as dms holds it open.
// Closing the device — or dms dying — removes the interface, so a node
// restart leaves nothing behind and must open it again (the docker
// executor calls Subnet.AttachNetns again when it re-attaches).
//
// The device uses the kernel's virtio-net header (wireguard's TUN): a
// container's TCP flow reaches Read as 64 KiB segments that the device
// splits into MTU-sized packets (GSO), and Write coalesces consecutive
// TCP packets of a flow back into large segments (GRO). Reads and writes
// need subnet.Offset bytes of headroom before each packet, Read wants
// BatchSize buffers of at least subnet.Offset+subnet.MTU bytes (one large
// segment fills many), and Write may use the headroom for the header.
package link
