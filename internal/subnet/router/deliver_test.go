package router

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// seg is a test's TCP segment: a flow (its source port), payload bytes,
// PSH, a sequence number skipped before it (a loss) and its timestamp.
type seg struct {
	port    uint16
	payload int
	psh     bool
	skip    uint32
	tsval   uint32
}

// tcpPacket returns an IPv4 TCP segment from a2:port to a3:5201 with a
// timestamp option.
func tcpPacket(s seg, seq uint32) []byte {
	tcp := make([]byte, 32+s.payload)
	binary.BigEndian.PutUint16(tcp[0:], s.port)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 8 << 4
	tcp[13] = 0x10 // ACK
	if s.psh {
		tcp[13] |= 0x08
	}
	copy(tcp[20:], []byte{1, 1, 8, 10})
	binary.BigEndian.PutUint32(tcp[24:], s.tsval)
	return subnettest.IPv4(a2, a3, 6, tcp)
}

func TestGiveHeads(t *testing.T) {
	full := func(n int, port uint16) []seg {
		s := make([]seg, n)
		for i := range s {
			s[i] = seg{port: port, payload: 1380}
		}
		return s
	}
	gap := full(6, 1)
	gap[2].skip = 1380
	tsval := full(6, 1)
	tsval[3].tsval, tsval[4].tsval, tsval[5].tsval = 1, 1, 1
	short := full(6, 1)
	short[2].payload = 500
	larger := full(4, 1)
	larger[0].payload, larger[1].payload = 500, 500
	withPSH := full(10, 1)
	withPSH[3].psh = true
	interleaved := append(full(2, 1), full(2, 2)...)
	interleaved = append(interleaved, full(2, 1)...)
	many := make([]seg, 0, 2*maxHeads+2)
	for i := range maxHeads + 1 {
		many = append(many, seg{port: uint16(i + 1), payload: 100}, seg{port: uint16(i + 1), payload: 100})
	}
	tests := []struct {
		name  string
		segs  []seg
		other []int // indexes replaced by a UDP packet
		want  []int // the packets given a large buffer
	}{
		{"one", full(1, 1), nil, nil}, // a batch of one is written as it is
		{"one flow", full(10, 1), nil, []int{0}},
		// 1432-byte packets: 46 fit in a run of 64 KiB with the first's headers
		{"one flow past 64 KiB", full(128, 1), nil, []int{0, 47, 94}},
		{"a gap (a loss) ends a run", gap, nil, []int{0, 2}},
		{"a new timestamp ends a run", tsval, nil, []int{0, 3}},
		{"a shorter segment ends a run", short, nil, []int{0, 3}},
		{"no larger segment after a smaller first", larger, nil, []int{0, 2}},
		{"PSH ends a run", withPSH, nil, []int{0, 4}},
		{"PSH last", append(full(3, 1), seg{port: 1, payload: 1380, psh: true}), nil, []int{0}},
		{"flows interleaved", interleaved, nil, []int{0, 2}},
		{"pure ACKs skipped", []seg{{port: 1}, {port: 1, payload: 1380}, {port: 1}, {port: 1, payload: 1380}}, nil, []int{1}},
		{"not TCP skipped", full(4, 1), []int{0, 2}, []int{1}},
		{"at most maxHeads", many, nil, []int{0, 2, 4, 6, 8, 10, 12, 14}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := &capDevice{}
			b := newBatcher(2*dgBatch, nil)
			b.att, b.dep = &attachment{dev: dev}, &deployment{}
			var pkts [][]byte
			seqs := map[uint16]uint32{}
			for i, s := range tc.segs {
				seqs[s.port] += s.skip
				pkt := tcpPacket(s, seqs[s.port])
				if slices.Contains(tc.other, i) {
					pkt = subnettest.UDP(a2, a3, 1, 2, make([]byte, 100))
				} else {
					seqs[s.port] += uint32(s.payload)
				}
				p := getPacket()
				p.n = copy(p.buf[subnet.Offset:], pkt)
				b.batch = append(b.batch, p)
				pkts = append(pkts, pkt)
			}
			b.flush(&Router{})
			if got := dev.large; !slices.Equal(got, tc.want) {
				t.Errorf("large buffers at %v, want %v", got, tc.want)
			}
			if len(dev.pkts) != len(pkts) {
				t.Fatalf("wrote %d packets, want %d", len(dev.pkts), len(pkts))
			}
			for i := range pkts {
				if string(dev.pkts[i]) != string(pkts[i]) {
					t.Errorf("packet %d changed", i)
				}
			}
		})
	}
}

// capDevice records the packets written to it and which of their
// buffers have room for a run of 64 KiB.
type capDevice struct {
	large []int
	pkts  [][]byte
}

func (d *capDevice) Read([][]byte, []int, int) (int, error) {
	return 0, fmt.Errorf("capDevice: no reads")
}
func (d *capDevice) BatchSize() int { return 2 * dgBatch }
func (d *capDevice) Close() error   { return nil }

func (d *capDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if cap(b) >= offset+65535 {
			d.large = append(d.large, i)
		}
		d.pkts = append(d.pkts, slices.Clone(b[offset:]))
	}
	return len(bufs), nil
}

func FuzzTCPSegment(f *testing.F) {
	f.Add(tcpPacket(seg{port: 1, payload: 10, psh: true}, 7))
	f.Add(subnettest.UDP(a2, a3, 1, 2, []byte("x")))
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s, ok := parseTCP(pkt)
		if !ok {
			return
		}
		if s.payload <= 0 || s.ihl+s.doff+s.payload > len(pkt) {
			t.Fatalf("parseTCP = %+v for %d bytes", s, len(pkt))
		}
		if !sameFlow(pkt, pkt) {
			t.Fatal("a segment is not of its own flow")
		}
		r := tcpRun{head: pkt, size: len(pkt), gso: s.payload, next: s.seq}
		if !r.join(pkt, s) {
			t.Fatal("a segment does not follow a run that ends where it starts")
		}
	})
}
