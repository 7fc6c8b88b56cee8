//go:build linux

package router

import (
	"context"
	"encoding/binary"
	"net"
	"testing"

	"golang.org/x/net/ipv4"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// TestDatagramPipelineGRO: reads that coalesce a sender's datagrams
// (UDP_GRO: one message, the segment size in a control message, the last
// segment possibly shorter) are cut into their datagrams, each opened,
// checked and delivered in order; a message without the control message
// is one datagram.
func TestDatagramPipelineGRO(t *testing.T) {
	o := newOfflineDgram(t)
	_, tx := offlineSession(t, o)
	g := o.r.dg
	g.done = make(chan struct{})
	g.gro = true
	// a read: messages of sealed datagrams, coalesced if seg > 0
	type msg struct {
		dgs [][]byte
		seg int
	}
	feed := make(chan []msg, 1)
	g.read = func(ms []ipv4.Message) (int, error) {
		var read []msg
		select {
		case read = <-feed:
		case <-g.done:
			return 0, net.ErrClosed
		}
		for i, m := range read {
			n := 0
			for _, d := range m.dgs {
				n += copy(ms[i].Buffers[0][n:], d)
			}
			ms[i].N, ms[i].NN = n, 0
			if m.seg > 0 {
				ms[i].NN = copy(ms[i].OOB, groCmsg(m.seg))
			}
		}
		return len(read), nil
	}
	o.r.wg.Add(1)
	go g.receive() // the router's Close (newOffline's cleanup) ends it

	seq := uint32(0)
	next := func(size int) []byte {
		pkt := subnettest.UDP(a3, a2, 1, 2, binary.BigEndian.AppendUint32(nil, seq))
		pkt = subnettest.UDP(a3, a2, 1, 2, append(binary.BigEndian.AppendUint32(nil, seq), make([]byte, size-len(pkt))...))
		seq++
		return sealed(t, tx, pkt)
	}
	var read []msg
	var big []byte
	for k := range 3 { // three messages of 10, 13 (the last shorter) and 10
		m := msg{}
		for range 10 {
			m.dgs = append(m.dgs, next(1000))
		}
		if k == 1 {
			m.dgs = append(m.dgs, next(1000), next(1000), next(500))
		}
		m.seg = len(m.dgs[0])
		read = append(read, m)
	}
	read = append(read, msg{dgs: [][]byte{next(1400)}}) // no control message
	feed <- read
	big = next(1200)
	feed <- []msg{{dgs: [][]byte{big}, seg: len(big)}} // a run of one
	ctx := context.Background()
	for want := range seq {
		got, err := o.dev.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := binary.BigEndian.Uint32(got[28:]); n != want {
			t.Fatalf("packet %d delivered as %d (out of order or cut wrong)", want, n)
		}
		o.dev.Release(got)
	}
	// the count follows the device's write, which the test's Recv may
	// overtake
	poll(t, "the delivered count", func() bool { return o.r.Stats().Delivered >= uint64(seq) })
	if st := o.r.Stats(); st.Delivered != uint64(seq) || st.Dropped[reasonBadDatagram.String()] != 0 {
		t.Fatalf("delivered %d, bad datagrams %d; want %d and 0", st.Delivered, st.Dropped[reasonBadDatagram.String()], seq)
	}
}

// FuzzGroSize: any control message is read without a panic, and the
// one a UDP_GRO read carries gives its segment size back.
func FuzzGroSize(f *testing.F) {
	f.Add(groCmsg(1452))
	f.Add(groCmsg(0))
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Add(append(groCmsg(1), groCmsg(2)...))
	for _, seg := range []int{1, 1452, 65535} {
		if got := groSize(groCmsg(seg)); got != seg {
			f.Errorf("groSize(groCmsg(%d)) = %d", seg, got)
		}
	}
	f.Fuzz(func(t *testing.T, oob []byte) {
		_ = groSize(oob)
	})
}

// TestParseRelease: kernel releases as uname gives them.
func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		in       string
		maj, mnr int
		ok       bool
	}{
		{"6.1.0-18-amd64", 6, 1, true},
		{"5.12.0", 5, 12, true},
		{"5.4", 5, 4, true},
		{"4.19.0-microsoft-standard", 4, 19, true},
		{"", 0, 0, false},
		{"6", 0, 0, false},
		{"x.1", 0, 0, false},
		{"6.x", 0, 0, false},
	} {
		maj, mnr, ok := parseRelease(tc.in)
		if ok != tc.ok || ok && (maj != tc.maj || mnr != tc.mnr) {
			t.Errorf("parseRelease(%q) = %d, %d, %v; want %d, %d, %v", tc.in, maj, mnr, ok, tc.maj, tc.mnr, tc.ok)
		}
	}
}
