package subnettest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var (
	a = netip.MustParseAddr("10.77.0.2")
	b = netip.MustParseAddr("10.77.0.3")
)

func TestPackets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pkt   []byte
		proto byte
	}{
		{"udp", UDP(a, b, 1000, 53, []byte("hello")), ProtoUDP},
		{"udp odd", UDP(a, b, 1, 2, []byte("abc")), ProtoUDP},
		{"udp empty", UDP(a, b, 1, 2, nil), ProtoUDP},
		{"icmp", ICMPEcho(a, b, 7, 9), ProtoICMP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pkt
			if p[0] != 0x45 || p[9] != tc.proto || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
				t.Fatalf("header % x", p[:20])
			}
			if c := Checksum(p[:20], 0); c != 0 {
				t.Errorf("header checksum residue %#x, want 0", c)
			}
			if netip.AddrFrom4([4]byte(p[12:16])) != a || netip.AddrFrom4([4]byte(p[16:20])) != b {
				t.Errorf("addresses % x", p[12:20])
			}
			body := p[20:]
			var init uint32
			if tc.proto == ProtoUDP {
				var ph [12]byte
				copy(ph[:], p[12:20])
				ph[9] = ProtoUDP
				binary.BigEndian.PutUint16(ph[10:], uint16(len(body)))
				init = sum(ph[:], 0)
			}
			if c := Checksum(body, init); c != 0 {
				t.Errorf("%s checksum residue %#x, want 0", tc.name, c)
			}
		})
	}
}

func TestDevice(t *testing.T) {
	d := NewDevice(4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pkts := [][]byte{UDP(a, b, 1, 2, []byte("x")), ICMPEcho(a, b, 1, 1), UDP(a, b, 3, 4, nil)}
	for _, p := range pkts {
		if err := d.Inject(p); err != nil {
			t.Fatal(err)
		}
	}
	const off = 16
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, off+1500)
	}
	sizes := make([]int, 8)
	n, err := d.Read(bufs, sizes, off)
	if err != nil || n != 3 {
		t.Fatalf("Read = %d, %v, want 3 packets", n, err)
	}
	for i := range n {
		if !bytes.Equal(bufs[i][off:off+sizes[i]], pkts[i]) {
			t.Errorf("packet %d differs", i)
		}
	}
	if _, err := d.Write([][]byte{bufs[0][:off+sizes[0]]}, off); err != nil {
		t.Fatal(err)
	}
	got, err := d.Recv(ctx)
	if err != nil || !bytes.Equal(got, pkts[0]) {
		t.Fatalf("Recv = % x, %v", got, err)
	}
	d.Release(got)
	_ = d.Close()
	if _, err := d.Read(bufs, sizes, off); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := d.Inject(pkts[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Inject after Close = %v, want ErrClosed", err)
	}
	if _, err := d.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
}
