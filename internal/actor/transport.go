package actor

import (
	"context"
	"errors"
	"fmt"
)

// A Transport carries frames between hosts. The runtime encodes and decodes
// frames; the transport only moves them, in order per link, and tells who sent
// them. internal/p2p implements it over libp2p; MemNetwork implements it in
// memory for tests.
type Transport interface {
	// Self returns this host's ID (a libp2p peer ID in text form).
	Self() string
	// Link returns an open link to host, reusing one that is already open
	// (whichever side opened it) or dialing a new one.
	Link(ctx context.Context, host string) (Link, error)
	// SetLinkHandler registers the function called, in its own goroutine, with
	// every link a peer opens to this host. It is called once, before any
	// link is accepted.
	SetLinkHandler(func(Link))
	// Publish broadcasts frame to every subscriber of topic on other hosts.
	// Delivery is best effort (gossip may lose or, rarely, repeat a
	// message): what must arrive goes over a link.
	Publish(ctx context.Context, topic string, frame []byte) error
	// Subscribe calls fn with each frame published on topic by another host,
	// with the authenticated publisher's host ID. The returned function
	// cancels the subscription.
	Subscribe(topic string, fn func(publisher string, frame []byte)) (cancel func(), err error)
}

// A Protector is a Transport that keeps room (connection slots) for the
// hosts the runtime works with. The runtime calls Protect for a host when
// one of its actors defines a session to it, and when the host defines a
// session whose invocation is authorized. Protect may fail (a bad host ID):
// the runtime ignores its error.
type Protector interface {
	Protect(host string) error
}

// A Link is an ordered, bidirectional, authenticated channel of frames
// between two hosts. Frames sent on a link arrive in the order they were sent;
// the transport may batch several frames into one write under load.
type Link interface {
	// Peer returns the authenticated host ID of the other end.
	Peer() string
	// Send queues frame for sending. It blocks while the link's send queue is
	// full (backpressure) until ctx is done. Send is safe for concurrent use;
	// frames from concurrent senders are sent whole, in the order Send
	// accepted them. Send takes frame: the caller must not change it after.
	Send(ctx context.Context, frame []byte) error
	// Recv returns the next frame, which the caller owns. Exactly one
	// goroutine reads a link — whichever side opened it and however the
	// runtime came to know it (Link or the link handler). A frame
	// larger than the transport's limit is skipped and reported as a
	// *FrameTooLargeError (the link stays usable); any other error means the
	// link is closed.
	Recv() ([]byte, error)
	// Close closes the link; pending Recv and Send calls return errors.
	Close() error
}

// A CopyingLink is a Link that can also send a copy of a frame, so the
// caller keeps the frame and may reuse its memory once SendCopy returns;
// the link copies it into memory of its own that it reuses (internal/p2p).
// The runtime encodes the envelopes of a link into one buffer and sends
// them with SendCopy when the link has it.
type CopyingLink interface {
	Link
	// SendCopy is Send for a copy of frame.
	SendCopy(ctx context.Context, frame []byte) error
}

// A ReadyLink is a Link that tells whether Recv would return a frame at
// once. The runtime's reader wakes the workers of the envelopes it queued
// when Ready is false (before a Recv that may wait), instead of after each
// frame (internal/p2p).
type ReadyLink interface {
	Link
	// Ready reports whether a whole frame is received and not yet returned
	// by Recv. It is called by the reading goroutine only, between Recv
	// calls; false when in doubt.
	Ready() bool
}

// ErrLinkClosed is returned by Send and Recv on a closed link.
var ErrLinkClosed = errors.New("link closed")

// FrameTooLargeError reports a frame over the transport's size limit. Head
// holds its first bytes, so the receiver can answer the sender.
type FrameTooLargeError struct {
	Size  int
	Limit int
	Head  []byte
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the limit of %d", e.Size, e.Limit)
}

// FrameHeadSize is how many leading bytes of an oversized frame a transport
// keeps in FrameTooLargeError.Head.
const FrameHeadSize = 256
