package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/net/ipv4"

	"github.com/dmsnet/dms/internal/subnet"
)

const (
	// version is the first byte of a stream.
	version = 1
	// bufSize is the size of a stream's read and write buffers.
	bufSize = 64 << 10
	// openTimeout bounds opening a stream (and reading its first frame).
	openTimeout = 10 * time.Second
	// retryAfter is how long packets to a peer are dropped after opening a
	// stream to it failed, before the next try.
	retryAfter = time.Second
)

// outQueue carries one deployment's packets to one peer: a bounded queue
// drained by a writer goroutine onto the stream it opens on the first
// packet.
type outQueue struct {
	r      *Router
	dep    *deployment
	peer   peer.ID
	q      chan *packet
	ctx    context.Context // ends with the queue
	cancel context.CancelFunc
	// tx is the datagram session (dgram.go), which the packets take while
	// up: the peer answered a probe on the path (path.go). settingUp
	// while a setup runs; setupAt is when the writer may start the next.
	tx        atomic.Pointer[session]
	up        atomic.Bool
	settingUp atomic.Bool
	// probes is the last probe's sequence number, acked the highest
	// answered; rx counts the datagrams received from the peer, pkts the
	// packets the writer took.
	probes, acked, rx, pkts atomic.Uint64
	ps                      pathState // the maintenance loop's
	// queued counts the packets handed to q and not yet sent by the
	// writer; while it is 0 a device reader may send itself (sendNow).
	queued atomic.Int64
	// wmu is held by the writer while it sends, or by a device reader
	// sending itself: the fields below are theirs under it.
	wmu     sync.Mutex
	took    int            // the packets of q the writer's current send took
	setupAt time.Time      // when the writer may start the next setup
	msgs    []ipv4.Message // the datagram batch
	held    []*packet      // the packets of msgs
	gsoBuf  []byte         // the segmented datagrams

	mu     sync.Mutex
	s      network.Stream // guarded by mu
	closed bool           // guarded by mu
}

func (r *Router) newOutQueue(d *deployment, id peer.ID) *outQueue {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outQueue{r: r, dep: d, peer: id, q: make(chan *packet, QueueLen), ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go o.run(ctx)
	return o
}

// send queues p unless the queue is full; it never blocks.
func (o *outQueue) send(p *packet) bool {
	o.queued.Add(1)
	select {
	case o.q <- p:
		return true
	default:
		o.queued.Add(-1)
		return false
	}
}

// sendWithin queues p, waiting up to QueueWait for room; t is the
// caller's timer (stopped), so that the wait allocates nothing.
func (o *outQueue) sendWithin(p *packet, t *time.Timer) bool {
	o.queued.Add(1)
	t.Reset(QueueWait)
	select {
	case o.q <- p:
		t.Stop()
		return true
	case <-t.C:
		o.queued.Add(-1)
		return false
	case <-o.ctx.Done():
		t.Stop()
		o.queued.Add(-1)
		return false
	}
}

// close ends the writer and resets its stream.
func (o *outQueue) close() {
	o.cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.s != nil {
		_ = o.s.Reset()
	}
}

// writer is the queue's writer's stream state.
type writer struct {
	s       network.Stream
	bw      *bufio.Writer // made on the first stream: most pairs never talk
	retryAt time.Time
}

// run writes the queued packets until ctx ends.
func (o *outQueue) run(ctx context.Context) {
	defer o.r.wg.Done()
	var w writer
	defer func() {
		if w.s != nil {
			_ = w.s.Reset()
		}
	}()
	for {
		var p *packet
		select {
		case p = <-o.q:
		case <-ctx.Done():
			return
		}
		o.wmu.Lock()
		o.took = 1
		quit := o.write(ctx, &w, p)
		// the packets taken are sent: a device reader may send the
		// next ones itself (sendNow) once none is left
		o.queued.Add(-int64(o.took))
		o.wmu.Unlock()
		if quit {
			return
		}
	}
}

// write sends p, and the packets queued behind it that join its batch
// (o.took counts them all), on the datagram path or the stream; it
// reports whether the writer must end (ctx ended). The writer's, under
// o.wmu.
func (o *outQueue) write(ctx context.Context, w *writer, p *packet) (quit bool) {
	if ds := p.sealed; ds != nil { // sealed by the device reader: a datagram
		o.pkts.Add(1)
		if ds.conn != nil && ds.conn.IsClosed() {
			// the peer went away (or restarted): its sessions are
			// gone, the next packets take the stream (see datagram)
			o.tx.CompareAndSwap(ds, nil)
			o.up.Store(false)
		}
		if w.bw != nil && w.bw.Buffered() > 0 {
			_ = w.bw.Flush() // what the stream holds goes first
		}
		o.sendBatch(ds, p)
		return false
	}
	if o.r.dg != nil && o.datagram(p, w.bw) {
		return false
	}
	if w.s == nil {
		if time.Now().Before(w.retryAt) {
			o.r.drop(o.dep, reasonNoRoute, p.data())
			putPacket(p)
			return false
		}
		var err error
		if w.s, err = o.open(ctx); err != nil {
			if ctx.Err() != nil {
				putPacket(p)
				return true
			}
			o.r.log.Debug("subnet stream not opened", "deployment_id", o.dep.id, "peer_id", o.peer, "err", err)
			w.retryAt = time.Now().Add(retryAfter)
			o.r.drop(o.dep, reasonNoRoute, p.data())
			putPacket(p)
			return false
		}
		if w.bw == nil {
			w.bw = bufio.NewWriterSize(w.s, bufSize)
		} else {
			w.bw.Reset(w.s)
		}
	}
	err := writeFrame(w.bw, p.data())
	putPacket(p)
	if err == nil {
		o.r.count.forwarded.Add(1)
		o.dep.count.forwarded.Add(1)
		if len(o.q) == 0 {
			err = w.bw.Flush()
		}
	}
	if err != nil {
		o.r.log.Debug("subnet stream broken", "deployment_id", o.dep.id, "peer_id", o.peer, "err", err)
		_ = w.s.Reset()
		w.s = nil
	}
	return false
}

// datagram sends p as a datagram if the queue has a session on a path
// that is up, and reports whether it took p. Without a session it starts
// a setup in the background (at most every dgRetry) and leaves p to the
// stream.
func (o *outQueue) datagram(p *packet, bw *bufio.Writer) bool {
	o.pkts.Add(1)
	s := o.tx.Load()
	if s != nil && s.conn.IsClosed() {
		// the peer went away (or restarted): its sessions are gone
		o.tx.CompareAndSwap(s, nil)
		o.up.Store(false)
		s = nil
	}
	if s == nil {
		if !o.settingUp.Load() && !time.Now().Before(o.setupAt) {
			o.setupAt = time.Now().Add(dgRetry)
			o.startSetup()
		}
		return false
	}
	if !o.up.Load() {
		return false
	}
	if bw != nil && bw.Buffered() > 0 {
		_ = bw.Flush() // what the stream holds goes first
	}
	o.sendBatch(s, p)
	return true
}

// open opens a stream to the peer and writes its first frame.
func (o *outQueue) open(ctx context.Context) (network.Stream, error) {
	if o.r.host == nil {
		return nil, errors.New("no libp2p host")
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	s, err := o.r.host.NewStream(ctx, o.peer, Protocol)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	closed := o.closed
	if !closed {
		o.s = s
	}
	o.mu.Unlock()
	if closed {
		_ = s.Reset()
		return nil, context.Canceled
	}
	if _, err := s.Write(hello(o.dep.id)); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return s, nil
}

// hello is a stream's first frame, naming its deployment.
func hello(deployment string) []byte {
	return append([]byte{version, byte(len(deployment))}, deployment...)
}

// readHello reads a stream's first frame and returns its deployment; it
// reads no further.
func readHello(rd io.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		return "", err
	}
	if h[0] != version {
		return "", fmt.Errorf("version %d, want %d", h[0], version)
	}
	if h[1] == 0 || h[1] > 64 {
		return "", fmt.Errorf("deployment ID of %d bytes", h[1])
	}
	id := make([]byte, h[1])
	if _, err := io.ReadFull(rd, id); err != nil {
		return "", err
	}
	return string(id), nil
}

// writeFrame writes one packet with its length.
func writeFrame(bw *bufio.Writer, pkt []byte) error {
	_ = bw.WriteByte(byte(len(pkt) >> 8))
	_ = bw.WriteByte(byte(len(pkt)))
	_, err := bw.Write(pkt)
	return err
}

// errTooLarge is a frame longer than any packet the data path carries.
var errTooLarge = errors.New("frame too large")

// readFrame reads the next frame into a packet from the free list. A
// frame that cannot hold a packet is skipped: (nil, nil).
func readFrame(br *bufio.Reader) (*packet, error) {
	h, err := br.Peek(2)
	if err != nil {
		return nil, err
	}
	n := int(h[0])<<8 | int(h[1])
	_, _ = br.Discard(2)
	if n < 20 || n > maxPacket {
		if _, err := br.Discard(n); err != nil {
			return nil, err
		}
		return nil, nil
	}
	p := getPacket()
	if _, err := io.ReadFull(br, p.buf[subnet.Offset:subnet.Offset+n]); err != nil {
		putPacket(p)
		return nil, err
	}
	p.n = n
	return p, nil
}

// buffered reports whether a whole frame is already in br.
func buffered(br *bufio.Reader) bool {
	if br.Buffered() < 2 {
		return false
	}
	h, _ := br.Peek(2)
	return br.Buffered() >= 2+(int(h[0])<<8|int(h[1]))
}

// handle accepts a stream of another provider.
func (r *Router) handle(s network.Stream) {
	from := s.Conn().RemotePeer()
	_ = s.CloseWrite() // the sender's stream: only read
	_ = s.SetReadDeadline(time.Now().Add(openTimeout))
	id, err := readHello(s)
	if err != nil {
		r.drop(nil, reasonMalformed, nil)
		r.log.Debug("subnet stream refused", "peer_id", from, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	r.mu.Lock()
	d := r.deps[id]
	if r.closed || d == nil || d.view.Load().peers[from] == nil {
		r.mu.Unlock()
		r.drop(d, reasonUnauthorized, nil)
		r.log.Debug("subnet stream refused", "peer_id", from, "deployment_id", id, "err", "the peer holds no route of the deployment")
		_ = s.Reset()
		return
	}
	// one stream per peer and deployment: a new one replaces the old,
	// which its sender gave up
	for old, id := range d.ins {
		if id == from {
			_ = old.Reset()
			delete(d.ins, old)
		}
	}
	d.ins[s] = from
	r.wg.Add(1)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(d.ins, s)
		r.mu.Unlock()
		_ = s.Reset()
		r.wg.Done()
	}()
	r.readFrames(d, from, bufio.NewReaderSize(s, bufSize))
}

// readFrames routes the packets of a stream of peer from until it ends,
// writing them to the devices in batches: the frames already buffered,
// up to a device's batch size.
func (r *Router) readFrames(d *deployment, from peer.ID, br *bufio.Reader) {
	b := newBatcher(128, putPacket)
	defer b.flush(r)
	for {
		p, err := readFrame(br)
		if err != nil {
			return
		}
		v := d.view.Load()
		if v == nil {
			if p != nil {
				putPacket(p)
			}
			return
		}
		if p == nil {
			r.drop(d, reasonMalformed, nil)
			continue
		}
		n, verdict, why, rt := v.fromPeer(from, p.data())
		if verdict != verdictLocal {
			r.drop(d, why, p.data())
			putPacket(p)
		} else {
			p.n = n
			b.add(r, d, rt.att, p)
		}
		if !buffered(br) {
			b.flush(r)
		}
	}
}
