// Package router is the data path of a deployment's subnet: it carries
// IPv4 packets between the allocations of a deployment, locally between
// two allocations on one provider and over libp2p between providers, and
// checks each packet against the deployment's routing table (a
// subnet.Table signed by the orchestrator) on the way.
//
// # Usage
//
// A node builds one Router on its libp2p host (New registers the stream
// handler of Protocol), gives it each deployment's table (SetTable, again
// on every change: a higher Version replaces the table), attaches the
// device of each allocation it runs (Attach; package subnet/link opens a
// TUN inside a container's network namespace) and detaches it when the
// allocation ends (Detach, or Remove for the whole deployment).
//
// # Wire
//
// Between two providers the packets of one deployment travel on one
// libp2p stream per direction, protocol "/dms/subnet/1", opened by the
// sender on its first packet to that peer and reused for every later one.
// The first frame names the deployment: [version 1][length][deployment ID];
// then every frame is [2-byte big-endian length][IPv4 packet]. Each side
// writes only on the stream it opened; the streams it accepts are only
// read.
//
// Why streams, one per (peer pair, deployment): go-libp2p has no
// datagrams, a stream is authenticated by the peers' keys (Noise or TLS)
// and multiplexed on the connection the node already has, and one stream
// per pair keeps the packets of a flow in order (per-packet goroutines
// or streams reorder them, which TCP inside punishes) and lets the sender
// batch many packets into one write. Binding a stream to one deployment
// makes the isolation structural: a packet read from it can only be
// delivered to that deployment's allocations, so two deployments may use
// the same block. The cost is that a lost segment of the carrying
// connection stalls every packet behind it (head-of-line blocking, and
// TCP inside TCP under loss); the loss benchmarks of docs/PERFORMANCE.md
// measure it.
//
// # Datagrams
//
// With Config.Datagram (a UDP socket) the packets between two providers
// travel as UDP datagrams instead, WireGuard-style, so that a packet lost
// on the line is lost once, for the inner TCP to recover, instead of
// stalling every packet behind it (the loss benchmarks of
// docs/PERFORMANCE.md). On its first packet an outQueue sets up a session
// in the background over the authenticated libp2p connection, protocol
// "/dms/subnet/dgram/1", one request and one response on a stream:
// [version 1][length][deployment ID][X25519 ephemeral key 32][receiver
// index 4][UDP port 2], answered with [key 32][index 4][port 2]. The
// responder checks the request as a data stream (its table, the peer
// holds a route in it; else the stream is reset, "unauthorized"). Both
// derive two directional ChaCha20-Poly1305 keys with HKDF-SHA256 over the
// X25519 secret, info "dms-subnet-dgram/1" + initiator ID + responder ID +
// deployment; the peer's UDP address is the IP of the libp2p connection
// and the announced port. A session belongs to one (peer, deployment);
// its reverse direction also carries the responder's packets to the
// initiator (the newest handshake wins). Until the session exists, or if
// its setup failed (a peer without a socket, a relayed connection; again
// at most every 3 s), the packets take the stream; when the libp2p
// connection closes, the session is dropped.
//
// A datagram is [receiver index 4][counter 8, big-endian][the packet
// sealed with the nonce 4 zero bytes + counter]. The receiver looks the
// index up (unknown: "unauthorized"), opens it in place, rejects a
// replayed or too old counter (a 1984-counter window, WireGuard's
// bitmap) and what fails to open ("bad-datagram"), then checks the packet
// as one read from a stream of that peer and deployment. The sender seals
// the queued packets (up to 64) and sends each run of equal-sized ones in
// one write that the kernel cuts into datagrams (UDP_SEGMENT, Linux; else
// or where that fails, one sendmmsg). While the path is up, the device
// reader seals each packet for a peer as it reads it (preseal), so the
// queue's writer only copies and sends; the counter order may then differ
// a little from the send order, which the replay window allows. The
// receiver is a pipeline, as wireguard-go's: one goroutine reads with
// recvmmsg (batches of 64 datagrams, or, with UDP_GRO on Linux 5.12 and
// later, of 4 messages that each carry a sender's run of up to 64; 4
// batches in flight), workers (one per CPU, at most 4)
// open the batches in parallel, and one goroutine takes the batches in
// the order they were read, checks the packets (replay window, probes,
// the routing checks below) and writes them to the devices in batches,
// with the packets of the batches already waiting in the same write.
// Small reads (a ping, a flow's ACKs: at most 4 packets) skip the
// hand-offs while nothing read earlier is on its way: the socket's reader
// opens and delivers them itself, and a device's reader sends them itself
// while the peer's queue holds nothing unsent (sendNow), so they wake one
// thread per side. After a send on a quiet socket (nothing sent or
// received for 1 ms: a request) the socket's reader can poll it without
// sleeping for up to Config.BusyPoll (off by default), woken by a
// past read deadline if it was blocked, so that the answer finds its
// thread awake (busypoll.go); polling is bounded to 1/8 of the time, and
// windows that end with no answer hold off the next ones (5 ms, doubling
// to 640 ms).
//
// The packets take a session only while its path is up (path.go). A
// probe is a sealed datagram whose plaintext is [type 1][sequence 8]
// (type 1 probe, 2 answer; an IPv4 packet never starts with a byte below
// 0x10), answered on the same session. Each side probes at setup (the
// responder on the session's first datagram, which also makes it the one
// it sends on: the initiator has it installed by then), every 5 s, and
// after 1 s of sending with nothing received. The first answer brings the
// path up; 3 missed probes in a row (1 s each) take it down ("fallback",
// counted): the stream again, probes with a backoff, and a fresh setup
// every 3 s to 1 min, as the peer may have lost its keys. A datagram
// naming no session makes the receiver set up a fresh session with the
// peers at its source address (once a second at most). A session is
// rekeyed after 2 min (or 2^59 datagrams) in use; the replaced one is
// accepted for 10 s more, and none is used or accepted past 3 min. A persistent read error of the socket is
// counted ("ReadErrors") and waited on (1 ms doubling to 1 s). There is
// no roaming: the peer's address is its libp2p connection's.
//
// # Checks
//
// A stream is accepted only from a peer that holds a route in that
// deployment's table (else it is reset: "unauthorized"). A packet from a
// peer must be IPv4 with a sane header ("malformed"), carry a source
// address of one of that peer's allocations (Table.Allows; else
// "spoofed") and go to an allocation attached here ("no-route"). A packet
// from a device must carry its allocation's own address ("spoofed"); to
// the gateway, and to subnet.Resolver (the DNS address every subnet
// shares, answered from there), only DNS (port 53) is served, by
// Config.DNS, and the rest is dropped ("gateway": the provider host is not
// reachable from the subnet); a peer's packet to either is "no-route";
// broadcast, multicast and unknown destinations are "no-route".
// Every drop is counted (Stats) and logged at debug level, at most once a
// second per reason.
//
// # Concurrency and cost
//
// Each table is compiled into an immutable view (address → allocation,
// attached device or peer queue) behind an atomic pointer, rebuilt on
// every SetTable, Attach and Detach: the per-packet path takes no lock and
// allocates nothing in steady state (packet buffers come from a free
// list). A device is read by one goroutine per attachment. Packets to a
// peer go through a bounded queue (QueueLen; when it is full the device's
// reader waits for room up to QueueWait, at most once per read, then
// drops, "queue-full", so a slow peer never holds a device for long)
// drained by
// one writer goroutine per (peer, deployment) that flushes when the queue
// is empty, so a burst becomes one write. The
// receiver writes the frames it already holds to the device in one batch
// (up to the device's BatchSize), the first packet of each run of a TCP
// flow's segments in a 64 KiB buffer so that a TUN with offloads can
// coalesce the run into it (GRO; deliver.go). A redeploy that moves an address
// to another peer takes effect with the next packet; the streams to a peer
// that left the table are closed.
package router
