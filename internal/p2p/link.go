package p2p

import (
	"bufio"
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

	// The send queue: Send appends each frame, with its length, to pend,
	// and the writer takes all of pend at once and writes it to the
	// stream in one Write, while senders fill the other buffer. One lock
	// per frame, no channel operation (a channel send and receive each
	// take the channel's runtime lock), and a wake only when the writer
	// waits for work.
	qmu     sync.Mutex
	pend    []byte        // queued frames, encoded; guarded by qmu
	pendN   int           // frames in pend; guarded by qmu
	queue   int           // most frames pend holds before Send waits
	idle    bool          // the writer waits for wake; guarded by qmu
	wake    chan struct{} // wakes the idle writer; capacity 1
	room    chan struct{} // closed when the writer takes pend, for senders waiting; guarded by qmu
	waiting int           // senders waiting for room; guarded by qmu

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
		queue:      max(queue, 1),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

const (
	// pendMax bounds the bytes queued on a link, whatever the frame
	// count: a sender waits while the queue holds frames and its frame
	// does not fit (a frame larger than pendMax waits for an empty queue).
	pendMax = 4 << 20
	// pendKeep is the largest queue buffer the writer keeps for reuse
	// after writing it: an idle link keeps at most two (the one written
	// last, the one senders fill), 128 KiB where its buffered writer had 64.
	pendKeep = linkBufSize
)

// Peer returns the peer ID authenticated by the connection's handshake.
func (l *link) Peer() string { return l.peerID }

// Send queues frame. It blocks while the queue is full. The link copies
// frame into its queue: the caller may reuse it once Send returns.
func (l *link) Send(ctx context.Context, frame []byte) error {
	return l.enqueue(ctx, frame)
}

// SendCopy queues a copy of frame (actor.CopyingLink): the caller may
// reuse frame once it returns. Every frame is copied into the link's
// queue buffer (Send), so SendCopy is Send.
func (l *link) SendCopy(ctx context.Context, frame []byte) error {
	return l.enqueue(ctx, frame)
}

// enqueue appends frame, with its length, to the queue, waiting while the
// queue is full, and wakes the writer if it waits for work.
func (l *link) enqueue(ctx context.Context, frame []byte) error {
	if len(frame) > maxSkip {
		return fmt.Errorf("send to %s: frame of %d bytes: %w", l.peerID, len(frame), errBadLength)
	}
	l.qmu.Lock()
	for {
		select {
		case <-l.done:
			l.qmu.Unlock()
			return l.closedErr()
		default:
		}
		if l.pendN == 0 || l.pendN < l.queue && len(l.pend)+len(frame) <= pendMax {
			break
		}
		// Full: wait for the writer to take the queue. Without a wait,
		// ctx.Done is not asked for (it may start a timer).
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.waiting++
		l.qmu.Unlock()
		select {
		case <-room:
		case <-l.done:
		case <-ctx.Done():
			l.qmu.Lock()
			if l.room == room {
				l.waiting--
			}
			l.qmu.Unlock()
			return fmt.Errorf("send to %s: %w", l.peerID, ctx.Err())
		}
		l.qmu.Lock()
	}
	l.pend = binary.AppendUvarint(l.pend, uint64(len(frame)))
	l.pend = append(l.pend, frame...)
	l.pendN++
	wake := l.idle
	l.idle = false
	l.qmu.Unlock()
	if wake {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// queued reports how many frames wait in the queue (for tests).
func (l *link) queued() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.pendN
}

// take waits until frames are queued and takes them all, swapping the
// queue with buf (emptied); it returns ok false once the link closed.
func (l *link) take(buf []byte) (frames []byte, n int, ok bool) {
	l.qmu.Lock()
	for l.pendN == 0 {
		l.idle = true
		l.qmu.Unlock()
		select {
		case <-l.wake:
		case <-l.done:
			return nil, 0, false
		}
		l.qmu.Lock()
	}
	frames, n = l.pend, l.pendN
	l.pend, l.pendN = buf[:0], 0
	if l.waiting > 0 {
		close(l.room)
		l.room, l.waiting = nil, 0
	}
	l.qmu.Unlock()
	return frames, n, true
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

// writeLoop drains the send queue into the stream. It takes every frame
// queued so far and writes them in one Write, so frames sent under load
// share writes, and takes the next ones as soon as that Write returns, so
// a lone frame goes out at once.
func (l *link) writeLoop() {
	defer close(l.writerDone)
	var buf []byte
	for {
		select {
		case <-l.done:
			l.mu.Lock()
			graceful := l.graceful
			l.mu.Unlock()
			if graceful {
				l.flushAndClose()
			}
			return
		default:
		}
		frames, n, ok := l.take(buf)
		if !ok {
			continue // closed: the select above says how
		}
		if _, err := l.s.Write(frames); err != nil {
			l.fail(fmt.Errorf("write: %w", err))
			_ = l.s.Reset() // if Close came first, fail did not
			return
		}
		l.frames.Add(uint64(n))
		l.flushes.Add(1)
		if cap(frames) <= pendKeep {
			buf = frames
		} else {
			buf = nil
		}
	}
}

// flushAndClose writes what is queued, then closes the stream; it resets
// the stream if that fails or takes too long (shut set a write deadline).
func (l *link) flushAndClose() {
	l.qmu.Lock()
	frames := l.pend
	l.pend, l.pendN = nil, 0
	l.qmu.Unlock()
	if len(frames) > 0 {
		if _, err := l.s.Write(frames); err != nil {
			_ = l.s.Reset()
			return
		}
	}
	if err := l.s.Close(); err != nil {
		_ = l.s.Reset()
	}
}
