package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dmsnet/dms/internal/actor"
)

const (
	// linkBufSize is the size of a link's read and write buffers: the most
	// bytes of small frames batched into one stream write.
	linkBufSize = 64 << 10
	// closeFlushTimeout bounds how long Close spends writing frames that
	// were queued before it.
	closeFlushTimeout = 2 * time.Second
)

// link is an actor.Link over one libp2p stream.
type link struct {
	s        network.Stream
	peer     peer.ID
	peerID   string // peer.String(), cached
	maxFrame int
	r        *bufio.Reader // used by Recv only
	forget   func(*link)   // removes the link from its host

	sendq      chan []byte
	done       chan struct{} // closed when the link closes, whatever the cause
	writerDone chan struct{} // closed when the writer goroutine returns

	// frames and flushes count what the writer wrote, for tests and stats.
	frames, flushes atomic.Uint64

	mu       sync.Mutex
	err      error // why the link closed; guarded by mu
	graceful bool  // closed by Close, so queued frames are flushed; guarded by mu
}

var _ actor.Link = (*link)(nil)

func newLink(s network.Stream, maxFrame, queue int, forget func(*link)) *link {
	p := s.Conn().RemotePeer()
	return &link{
		s:          s,
		peer:       p,
		peerID:     p.String(),
		maxFrame:   maxFrame,
		r:          bufio.NewReaderSize(s, linkBufSize),
		forget:     forget,
		sendq:      make(chan []byte, queue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// Peer returns the peer ID authenticated by the connection's handshake.
func (l *link) Peer() string { return l.peerID }

// Send queues a copy of frame. It blocks while the queue is full.
func (l *link) Send(ctx context.Context, frame []byte) error {
	if len(frame) > maxSkip {
		return fmt.Errorf("send to %s: frame of %d bytes: %w", l.peerID, len(frame), errBadLength)
	}
	select {
	case <-l.done:
		return l.closedErr()
	default:
	}
	// The link takes the frame (actor.Link's contract): no copy.
	select {
	case l.sendq <- frame:
		return nil
	case <-l.done:
		return l.closedErr()
	case <-ctx.Done():
		return fmt.Errorf("send to %s: %w", l.peerID, ctx.Err())
	}
}

// Recv returns the next frame. The caller owns it.
func (l *link) Recv() ([]byte, error) {
	f, err := readFrame(l.r, l.maxFrame)
	if err == nil {
		return f, nil
	}
	var tooLarge *actor.FrameTooLargeError
	if errors.As(err, &tooLarge) {
		return nil, err
	}
	l.fail(fmt.Errorf("read: %w", err))
	return nil, l.closedErr()
}

// Close flushes the frames already queued (for a short while) and closes
// the stream. Pending Recv and Send calls return errors wrapping
// actor.ErrLinkClosed.
func (l *link) Close() error {
	l.shut(actor.ErrLinkClosed, true)
	return nil
}

// fail closes the link at once, resetting the stream.
func (l *link) fail(err error) { l.shut(err, false) }

func (l *link) shut(err error, graceful bool) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err, l.graceful = err, graceful
	close(l.done)
	l.mu.Unlock()
	if graceful {
		_ = l.s.CloseRead() // unblocks Recv; the writer closes the write side
		// A writer stuck on a peer that does not read gives up at this deadline.
		_ = l.s.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	} else {
		_ = l.s.Reset()
	}
	l.forget(l)
}

// closed reports whether the link is closed, or its connection is.
func (l *link) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return l.s.Conn().IsClosed()
	}
}

// closedErr is the error Send and Recv return on a closed link.
func (l *link) closedErr() error {
	l.mu.Lock()
	cause := l.err
	l.mu.Unlock()
	if cause == nil || errors.Is(cause, actor.ErrLinkClosed) {
		return fmt.Errorf("link to %s: %w", l.peerID, actor.ErrLinkClosed)
	}
	return fmt.Errorf("link to %s: %w: %w", l.peerID, actor.ErrLinkClosed, cause)
}

// writeLoop drains the send queue into the stream. It writes every frame
// that is already queued before flushing, so frames sent under load share
// writes, and flushes as soon as the queue is empty, so a lone frame goes
// out at once.
func (l *link) writeLoop() {
	defer close(l.writerDone)
	w := bufio.NewWriterSize(l.s, linkBufSize)
	for {
		select {
		case f := <-l.sendq:
			if err := l.writeBatch(w, f); err != nil {
				l.fail(fmt.Errorf("write: %w", err))
				_ = l.s.Reset() // if Close came first, fail did not
				return
			}
		case <-l.done:
			l.mu.Lock()
			graceful := l.graceful
			l.mu.Unlock()
			if graceful {
				l.flushAndClose(w)
			}
			return
		}
	}
}

func (l *link) writeBatch(w *bufio.Writer, f []byte) error {
	for {
		if err := writeFrame(w, f); err != nil {
			return err
		}
		l.frames.Add(1)
		select {
		case f = <-l.sendq:
		default:
			l.flushes.Add(1)
			return w.Flush()
		}
	}
}

// flushAndClose writes what is queued, then closes the stream; it resets
// the stream if that fails or takes too long (shut set a write deadline).
func (l *link) flushAndClose(w *bufio.Writer) {
drain:
	for {
		select {
		case f := <-l.sendq:
			if err := writeFrame(w, f); err != nil {
				_ = l.s.Reset()
				return
			}
		default:
			break drain
		}
	}
	if err := w.Flush(); err != nil {
		_ = l.s.Reset()
		return
	}
	if err := l.s.Close(); err != nil {
		_ = l.s.Reset()
	}
}
