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
	// directIdle is how long a link must have written nothing for Send to
	// write a frame itself instead of queueing it for the writer (see
	// link.direct): longer than the gaps of a flow of frames, which the
	// writer batches, and shorter than a round trip, so a request or its
	// reply on an idle link does not wait for the writer to wake.
	directIdle = 5 * time.Microsecond
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

	// wmu is held by whoever writes to the stream: the writer goroutine,
	// or a Send writing its frame itself (direct).
	wmu sync.Mutex
	w   *bufio.Writer // guarded by wmu
	// queued counts the frames Send put in sendq that are not written
	// yet: the writer subtracts those it wrote, holding wmu, so a direct
	// write that finds none queued comes after every frame sent before it.
	queued atomic.Int64
	// epoch is when the link was made, lastWrite when (since epoch, in
	// ns) the stream was last written to: a direct write needs directIdle
	// of silence. Monotonic readings (time.Since) only.
	epoch     time.Time
	lastWrite atomic.Int64

	// frames and flushes count what the writer wrote, for tests and
	// stats; direct the frames Send wrote itself.
	frames, flushes, direct atomic.Uint64

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
		w:          bufio.NewWriterSize(s, linkBufSize),
		epoch:      time.Now(),
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
	if written, err := l.writeDirect(frame); written {
		l.reuse(f)
		return err
	}
	// The link takes the frame (actor.Link's contract): no copy. Without
	// a wait, ctx.Done is not asked for (it may start a timer).
	l.queued.Add(1)
	select {
	case l.sendq <- f:
		return nil
	default:
	}
	select {
	case l.sendq <- f:
		return nil
	case <-l.done:
		l.queued.Add(-1)
		return l.closedErr()
	case <-ctx.Done():
		l.queued.Add(-1)
		return fmt.Errorf("send to %s: %w", l.peerID, ctx.Err())
	}
}

// writeDirect writes frame to the stream itself, and reports true, when
// the link is idle: nothing queued, the writer not writing, and nothing
// written for directIdle. A lone frame (a request, a reply) then goes out
// without waiting for the writer goroutine to wake, which costs a few µs
// per hand-off on an idle machine; a flow of frames still goes through the
// queue, whose writer puts many in one stream write. Once it reports true
// the frame is written, or the link failed (err).
//
// A frame written so waits, like the writer would, for the stream's
// flow-control window: on an idle link it is open unless the peer stopped
// reading.
func (l *link) writeDirect(frame []byte) (bool, error) {
	if l.queued.Load() != 0 || time.Since(l.epoch).Nanoseconds()-l.lastWrite.Load() < int64(directIdle) {
		return false, nil
	}
	if !l.wmu.TryLock() {
		return false, nil
	}
	defer l.wmu.Unlock()
	// Checked again under wmu: the writer may have taken a frame since.
	if l.queued.Load() != 0 {
		return false, nil
	}
	select {
	case <-l.done:
		return true, l.closedErr()
	default:
	}
	err := writeFrame(l.w, frame)
	if err == nil {
		err = l.w.Flush()
	}
	l.lastWrite.Store(time.Since(l.epoch).Nanoseconds())
	if err != nil {
		l.fail(fmt.Errorf("write: %w", err))
		return true, l.closedErr()
	}
	l.direct.Add(1)
	return true, nil
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
// stream of small frames allocates nothing. On an idle link the frame is
// written at once, without a copy (writeDirect).
func (l *link) SendCopy(ctx context.Context, frame []byte) error {
	if len(frame) <= maxSkip {
		select {
		case <-l.done:
			return l.closedErr()
		default:
		}
		if written, err := l.writeDirect(frame); written {
			return err
		}
	}
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
	for {
		select {
		case f := <-l.sendq:
			if err := l.writeBatch(f); err != nil {
				l.fail(fmt.Errorf("write: %w", err))
				_ = l.s.Reset() // if Close came first, fail did not
				return
			}
		case <-l.done:
			l.mu.Lock()
			graceful := l.graceful
			l.mu.Unlock()
			if graceful {
				l.flushAndClose()
			}
			return
		}
	}
}

// writeBatch writes f and the frames queued behind it, holding wmu, and
// flushes when the queue is empty.
func (l *link) writeBatch(f outFrame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	w := l.w
	n := int64(0)
	defer func() { l.queued.Add(-n) }()
	for {
		err := writeFrame(w, f.b)
		n++
		if err != nil {
			return err
		}
		l.frames.Add(1)
		l.reuse(f)
		select {
		case f = <-l.sendq:
		default:
			l.flushes.Add(1)
			err := w.Flush()
			l.lastWrite.Store(time.Since(l.epoch).Nanoseconds())
			return err
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
func (l *link) flushAndClose() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	w := l.w
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
