package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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
	inbound  slab          // memory of received small frames; used by Recv only
	forget   func(*link)   // removes the link from its host

	sendq      chan outFrame
	done       chan struct{} // closed when the link closes, whatever the cause
	writerDone chan struct{} // closed when the writer goroutine returns

	// frames and flushes count what the writer wrote, for tests and stats.
	frames, flushes atomic.Uint64

	mu       sync.Mutex
	err      error // why the link closed; guarded by mu
	graceful bool  // closed by Close, so queued frames are flushed; guarded by mu
}

var (
	_ actor.Link        = (*link)(nil)
	_ actor.CopyingLink = (*link)(nil)
	_ actor.ReadyLink   = (*link)(nil)
)

func newLink(s network.Stream, maxFrame, queue int, forget func(*link)) *link {
	p := s.Conn().RemotePeer()
	return &link{
		s:          s,
		peer:       p,
		peerID:     p.String(),
		maxFrame:   maxFrame,
		r:          bufio.NewReaderSize(s, linkBufSize),
		forget:     forget,
		sendq:      make(chan outFrame, queue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// outFrame is a queued frame; spare: its buffer is one of SendCopy's, for
// the writer to hand back.
type outFrame struct {
	b     []byte
	spare bool
}

// Peer returns the peer ID authenticated by the connection's handshake.
func (l *link) Peer() string { return l.peerID }

// Send queues frame, which the link takes. It blocks while the queue is
// full.
func (l *link) Send(ctx context.Context, frame []byte) error {
	return l.send(ctx, outFrame{b: frame})
}

func (l *link) send(ctx context.Context, f outFrame) error {
	frame := f.b
	if len(frame) > maxSkip {
		return fmt.Errorf("send to %s: frame of %d bytes: %w", l.peerID, len(frame), errBadLength)
	}
	select {
	case <-l.done:
		return l.closedErr()
	default:
	}
	// The link takes the frame (actor.Link's contract): no copy. Without
	// a wait, ctx.Done is not asked for (it may start a timer).
	select {
	case l.sendq <- f:
		return nil
	default:
	}
	select {
	case l.sendq <- f:
		return nil
	case <-l.done:
		return l.closedErr()
	case <-ctx.Done():
		return fmt.Errorf("send to %s: %w", l.peerID, ctx.Err())
	}
}

// spareFrames holds the buffers of written frames for SendCopy to reuse,
// shared by all links: the writers put back those SendCopy filled, and
// drop them when it is full. spareBuffers bounds how many it holds (more
// than a link's default send queue), spareCap the capacity of each (a
// larger frame gets a buffer of its own, which is not kept): at most
// 2 MiB in all.
var spareFrames = make(chan []byte, spareBuffers)

const (
	spareBuffers = 4096
	spareCap     = 512
	spareMinCap  = 192 // the least capacity SendCopy allocates
)

// SendCopy queues a copy of frame (actor.CopyingLink): the caller may
// reuse frame once it returns. The copy goes into one of the link's spare
// buffers, which the writer hands back once it wrote the frame, so a
// stream of small frames allocates nothing.
func (l *link) SendCopy(ctx context.Context, frame []byte) error {
	if len(frame) > spareCap {
		return l.send(ctx, outFrame{b: bytes.Clone(frame)})
	}
	var b []byte
	select {
	case b = <-spareFrames:
	default:
	}
	if cap(b) < len(frame) {
		b = make([]byte, 0, max(len(frame), spareMinCap))
	}
	err := l.send(ctx, outFrame{b: append(b[:0], frame...), spare: true})
	if err != nil {
		l.reuse(outFrame{b: b, spare: true})
	}
	return err
}

// Recv returns the next frame. The caller owns it.
func (l *link) Recv() ([]byte, error) {
	f, err := readFrameFrom(l.r, l.maxFrame, &l.inbound)
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

// Ready reports whether a whole frame is in the read buffer (actor.ReadyLink),
// without reading from the stream.
func (l *link) Ready() bool {
	b, _ := l.r.Peek(l.r.Buffered())
	return frameReady(b)
}

// frameReady reports whether b starts with a whole frame (its length, then
// that many bytes).
func frameReady(b []byte) bool {
	n, k := binary.Uvarint(b)
	return k > 0 && n <= uint64(len(b)-k)
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

func (l *link) writeBatch(w *bufio.Writer, f outFrame) error {
	for {
		if err := writeFrame(w, f.b); err != nil {
			return err
		}
		l.frames.Add(1)
		l.reuse(f)
		select {
		case f = <-l.sendq:
		default:
			l.flushes.Add(1)
			return w.Flush()
		}
	}
}

// reuse keeps a written frame's buffer for SendCopy, when SendCopy made it.
func (l *link) reuse(f outFrame) {
	if !f.spare {
		return
	}
	select {
	case spareFrames <- f.b:
	default:
	}
}

// flushAndClose writes what is queued, then closes the stream; it resets
// the stream if that fails or takes too long (shut set a write deadline).
func (l *link) flushAndClose(w *bufio.Writer) {
drain:
	for {
		select {
		case f := <-l.sendq:
			if err := writeFrame(w, f.b); err != nil {
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
