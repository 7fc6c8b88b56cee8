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
// executor's AttachSubnet calls Subnet.AttachNetns again). The other way
// round, the open device keeps the namespace alive after the container's
// processes ended, and Read does not fail then: the owner closes the
// device when the instance ends.
//
// The device uses the kernel's virtio-net header (wireguard's TUN): a
// container's TCP flow reaches Read as 64 KiB segments that the device
// splits into MTU-sized packets (GSO), and Write coalesces consecutive
// TCP (and, on Linux 6.2 and later, UDP) packets of a flow back into
// large segments (GRO). Between two namespaces on one machine that is
// about three times the throughput of a TUN without offloads
// (BenchmarkTCPAcrossTwoTUNs). Reads and writes need subnet.Offset bytes
// of headroom before each packet (Write puts the header there); Read
// wants BatchSize buffers of at least subnet.Offset+subnet.MTU bytes (one
// large segment fills many); Write coalesces the packets of a flow into the
// buffer of its first packet only when that buffer has the capacity (give
// buffers of subnet.Offset+65535 bytes), and may change the buffers'
// lengths.
package link
