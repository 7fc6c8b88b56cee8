// Package p2p is the node's libp2p host: it carries actor traffic between
// nodes, broadcasts gossip and finds peers. It implements actor.Transport.
//
// # Usage
//
// The daemon (internal/node) builds one Host from the p2p section of the
// configuration and the node key, hands it to the actor runtime as its
// Transport, and closes it last:
//
//	h, err := p2p.New(ctx, p2p.Config{
//		Listen:    []string{"/ip4/0.0.0.0/tcp/9000", "/ip4/0.0.0.0/udp/9000/quic-v1"},
//		Bootstrap: []string{"/ip4/203.0.113.7/tcp/9000/p2p/12D3KooW…"},
//		DHT:       true,
//		MaxFrame:  4<<20 + 64<<10,
//	}, nodeKey, logger)
//	if err != nil { ... }
//	defer h.Close()
//	h.SetLinkHandler(func(l actor.Link) { for { frame, err := l.Recv(); ... } })
//	l, err := h.Link(ctx, peerID) // one long-lived stream per peer, reused by both sides
//	err = l.Send(ctx, frame)
//
// # Links
//
// A link is one libp2p stream per pair of peers (protocol
// <prefix>/actor/1.1.0) carrying length-prefixed frames (an unsigned varint
// length, then the bytes). Each link has a bounded send queue drained by one
// writer goroutine through a buffered writer: under load many frames go out
// in one write, and the writer flushes as soon as the queue is empty, so an
// idle link adds no delay. A full queue blocks Send (backpressure). The
// reader refuses frames over Config.MaxFrame with an *actor.FrameTooLargeError
// and skips them, so the link stays usable. The other end's identity is the
// peer authenticated by the connection's security handshake (Noise or TLS).
//
// Every link, whichever side opened it, must be read (Recv) by exactly one
// goroutine: an unread link stops its sender once the stream's flow-control
// window is full.
//
// # Gossip and discovery
//
// Publish and Subscribe use gossipsub with strict message signing; topic
// names are prefixed with the protocol prefix and a validator refuses
// oversized messages and publishers whose key is not Ed25519. Peers are
// found through the bootstrap list (dialled with retry and backoff), mDNS on
// the local network, and a Kademlia DHT in the protocol prefix's own
// namespace, on which every node advertises and looks up a rendezvous key;
// a new connection while a known peer is unreachable starts a lookup at
// once, so a healed partition reconnects without waiting for timers.
// The DHT is never on the message path: it is used for discovery and to
// find the addresses of a peer known only by ID.
//
// # Concurrency
//
// Every method of Host is safe for concurrent use. Link.Send is safe for
// concurrent use; Link.Recv must be called by one goroutine at a time. Close
// stops every goroutine the host started.
package p2p
