package router

import "github.com/dmsnet/dms/internal/subnet"

// batcher gathers the packets a reader (a stream, the datagram socket)
// delivers to one device, to write them in one batch.
type batcher struct {
	batch []*packet
	bufs  [][]byte
	head  []byte // the large buffer of a batch's first packet
	dep   *deployment
	att   *attachment
	// release, when set, takes each packet back after its batch was
	// written (the stream reader's packets; the datagram reader reuses
	// its own).
	release func(*packet)
}

func newBatcher(n int, release func(*packet)) *batcher {
	return &batcher{batch: make([]*packet, 0, n), bufs: make([][]byte, 0, n), release: release}
}

// add queues p for att of deployment d, writing what was queued first
// when the device changes or the batch is full.
func (b *batcher) add(r *Router, d *deployment, att *attachment, p *packet) {
	if att != b.att || len(b.batch) >= max(min(cap(b.batch), att.dev.BatchSize()), 1) {
		b.flush(r)
		b.dep, b.att = d, att
	}
	b.batch = append(b.batch, p)
}

// flush writes the queued packets to their device in one batch.
func (b *batcher) flush(r *Router) {
	if len(b.batch) == 0 {
		return
	}
	for _, p := range b.batch {
		b.bufs = append(b.bufs, p.withHead())
	}
	if len(b.batch) > 1 {
		// a TUN with offloads coalesces the packets of a flow into the
		// buffer of its first one (GRO) if it has the room: give the
		// batch's first packet a large buffer
		if b.head == nil {
			b.head = make([]byte, 0, subnet.Offset+65535)
		}
		b.bufs[0] = append(b.head[:subnet.Offset], b.batch[0].data()...)
	}
	if _, err := b.att.dev.Write(b.bufs, subnet.Offset); err == nil {
		r.count.delivered.Add(uint64(len(b.batch)))
		b.dep.count.delivered.Add(uint64(len(b.batch)))
	}
	for i, p := range b.batch {
		if b.release != nil {
			b.release(p)
		}
		b.batch[i], b.bufs[i] = nil, nil
	}
	b.batch, b.bufs = b.batch[:0], b.bufs[:0]
}
