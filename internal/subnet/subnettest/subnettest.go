// Package subnettest holds test aids for the subnet data path: Device, a
// subnet.Device in memory that stands for one allocation's interface, and
// builders of valid IPv4 packets (UDP, ICMP echo) with correct checksums.
//
// Usage: a test hands NewDevice(8) to router.Attach, plays the guest with
// Inject (what the guest sends) and Recv (what the data path delivered to
// the guest), and builds the packets with UDP and ICMPEcho.
//
// Concurrency: every method of Device may be called from any goroutine.
// Steady state allocates nothing: Inject copies into buffers from a free
// list, and a packet from Recv may be handed back with Release, so a
// benchmark can pump a device without garbage.
package subnettest

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/dmsnet/dms/internal/subnet"
)

// ErrClosed is returned by a closed Device.
var ErrClosed = errors.New("subnettest: device closed")

// queueLen is how many packets wait in each direction of a Device; a
// packet written to a guest whose queue is full is dropped (counted by
// Dropped), as a kernel TUN drops past its queue.
const queueLen = 4096

// bufSize is the capacity of pooled buffers; a larger packet gets its own.
const bufSize = 2048

// Device is a subnet.Device in memory.
type Device struct {
	batch   int
	in      chan []byte // from the guest (Inject) to Read
	out     chan []byte // from Write to the guest (Recv)
	free    chan []byte
	closed  chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

var _ subnet.Device = (*Device)(nil)

// NewDevice returns a device whose Read and Write take up to batch
// packets at a time (at least 1).
func NewDevice(batch int) *Device {
	return &Device{
		batch:  max(batch, 1),
		in:     make(chan []byte, queueLen),
		out:    make(chan []byte, queueLen),
		free:   make(chan []byte, 2*queueLen),
		closed: make(chan struct{}),
	}
}

func (d *Device) get(n int) []byte {
	if n <= bufSize {
		select {
		case b := <-d.free:
			return b[:n]
		default:
			return make([]byte, n, bufSize)
		}
	}
	return make([]byte, n)
}

// Release hands back a packet returned by Recv, to be reused; the caller
// must not touch it afterwards.
func (d *Device) Release(pkt []byte) {
	if cap(pkt) != bufSize {
		return
	}
	select {
	case d.free <- pkt[:0]:
	default:
	}
}

// Inject queues pkt (copied) as a packet the guest sends; it blocks while
// the queue is full, and fails once the device is closed.
func (d *Device) Inject(pkt []byte) error {
	b := d.get(len(pkt))
	copy(b, pkt)
	select {
	case <-d.closed:
		return ErrClosed
	default:
	}
	select {
	case d.in <- b:
		return nil
	case <-d.closed:
		return ErrClosed
	}
}

// Recv returns the next packet written to the device (delivered to the
// guest), waiting for one until ctx ends or the device is closed and
// drained.
func (d *Device) Recv(ctx context.Context) ([]byte, error) {
	select {
	case p := <-d.out:
		return p, nil
	default:
	}
	select {
	case p := <-d.out:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.closed:
		select {
		case p := <-d.out:
			return p, nil
		default:
			return nil, ErrClosed
		}
	}
}

// Closed reports whether Close was called.
func (d *Device) Closed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// Done is closed when the device is.
func (d *Device) Done() <-chan struct{} { return d.closed }

// Dropped is how many written packets were dropped because the guest's
// queue was full.
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// Read implements subnet.Device: it waits for the first injected packet,
// then takes those already queued, up to the batch size.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-d.in:
	case <-d.closed:
		return 0, ErrClosed
	}
	n := 0
	for {
		if len(p) > len(bufs[n])-offset {
			d.Release(p)
			return n, errors.New("subnettest: packet larger than the read buffer")
		}
		sizes[n] = copy(bufs[n][offset:], p)
		d.Release(p)
		n++
		if n == len(bufs) || n == d.batch {
			return n, nil
		}
		select {
		case p = <-d.in:
		default:
			return n, nil
		}
	}
}

// Write implements subnet.Device: it copies each packet to the guest's
// queue, dropping it when the queue is full.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	if d.Closed() {
		return 0, ErrClosed
	}
	for _, b := range bufs {
		p := d.get(len(b) - offset)
		copy(p, b[offset:])
		select {
		case d.out <- p:
		default:
			d.dropped.Add(1)
			d.Release(p)
		}
	}
	return len(bufs), nil
}

// BatchSize implements subnet.Device.
func (d *Device) BatchSize() int { return d.batch }

// Close implements subnet.Device; Read then fails, and Recv once the
// packets already delivered are drained.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// Protocol numbers of the IPv4 header.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// UDP returns an IPv4/UDP packet from src:sport to dst:dport carrying
// payload, with both checksums set.
func UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := ipv4(src, dst, ProtoUDP, 8+len(payload))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	s, d := src.As4(), dst.As4()
	var pseudo [12]byte
	copy(pseudo[0:], s[:])
	copy(pseudo[4:], d[:])
	pseudo[9] = ProtoUDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(u)))
	c := Checksum(u, sum(pseudo[:], 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return p
}

// ICMPEcho returns an IPv4 ICMP echo request from src to dst, with a
// 32-byte payload and both checksums set.
func ICMPEcho(src, dst netip.Addr, id, seq uint16) []byte {
	const payload = 32
	p := ipv4(src, dst, ProtoICMP, 8+payload)
	m := p[20:]
	m[0] = 8 // echo request
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	for i := range payload {
		m[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(m[2:], Checksum(m, 0))
	return p
}

// IPv4 returns an IPv4 packet of protocol proto from src to dst carrying
// payload (a whole ICMP, UDP or TCP message), its header checksum set.
func IPv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	p := ipv4(src, dst, proto, len(payload))
	copy(p[20:], payload)
	return p
}

// ipv4 returns a packet with an IPv4 header (no options, TTL 64, don't
// fragment) for a body of n bytes, its header checksum set.
func ipv4(src, dst netip.Addr, proto byte, n int) []byte {
	p := make([]byte, 20+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(20+n))
	p[6] = 0x40 // DF
	p[8] = 64
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], Checksum(p[:20], 0))
	return p
}

// Checksum is the Internet checksum of b, starting from the partial sum
// initial (e.g. of a pseudo-header); a valid header sums to 0.
func Checksum(b []byte, initial uint32) uint16 {
	s := sum(b, initial)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func sum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}
