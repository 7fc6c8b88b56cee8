package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// newPeerID is the ID of a peer with a fresh ed25519 key.
func newPeerID(t testing.TB) peer.ID {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// offline is a router without a host: enough for the packet path of
// devices and of inbound streams read from memory.
type offline struct {
	r        *Router
	self, p1 peer.ID
	d        *deployment
	dev      *subnettest.Device // allocation a (.2), on self
	local    *subnettest.Device // allocation c (.4), on self
}

// newOffline: a (.2) and c (.4) attached here, b (.3) on p1.
func newOffline(t testing.TB) *offline {
	t.Helper()
	o := &offline{self: newPeerID(t), p1: newPeerID(t)}
	o.r = &Router{self: o.self, log: slog.New(slog.DiscardHandler), deps: map[string]*deployment{}}
	t.Cleanup(func() { _ = o.r.Close() })
	o.r.SetTable(table(t, "dep", 1, block, at{"a", 2, o.self}, at{"b", 3, o.p1}, at{"c", 4, o.self}))
	o.dev, o.local = subnettest.NewDevice(64), subnettest.NewDevice(64)
	if err := o.r.Attach("dep", "a", o.dev); err != nil {
		t.Fatal(err)
	}
	if err := o.r.Attach("dep", "c", o.local); err != nil {
		t.Fatal(err)
	}
	o.d = o.r.deps["dep"]
	return o
}

// frames is pkts framed as on a stream.
func frames(pkts ...[]byte) []byte {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	for _, p := range pkts {
		_ = writeFrame(bw, p)
	}
	_ = bw.Flush()
	return b.Bytes()
}

// FuzzInbound feeds a stream's bytes, from peer p1, to the inbound path:
// it must never panic, and deliver only sane IPv4 packets with p1's
// source address to an attached allocation.
func FuzzInbound(f *testing.F) {
	good := subnettest.UDP(a3, a2, 1, 2, []byte("x"))
	f.Add(frames(good))
	f.Add(frames(good, subnettest.ICMPEcho(a3, a4, 1, 1), subnettest.UDP(a2, a2, 1, 2, nil)))
	f.Add(append(frames(good), 0xff, 0xff, 1, 2))
	f.Add([]byte{0, 0, 0, 20, 0x45})
	o := newOffline(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o.r.readFrames(o.d, o.p1, bufio.NewReader(bytes.NewReader(data)))
		for _, dev := range []*subnettest.Device{o.dev, o.local} {
			for {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				p, err := dev.Recv(ctx)
				if err != nil {
					break
				}
				n, _, _, ok := header(p)
				if !ok || n != len(p) || netip.AddrFrom4([4]byte(p[12:16])) != a3 {
					t.Fatalf("delivered % x", p)
				}
				if dst := netip.AddrFrom4([4]byte(p[16:20])); (dst == a2) != (dev == o.dev) || (dst == a4) != (dev == o.local) {
					t.Fatalf("delivered to %s on the wrong device", dst)
				}
				dev.Release(p)
			}
		}
	})
}

// FuzzHello: a stream's first frame yields a deployment ID of 1 to 64
// bytes or an error, never a panic.
func FuzzHello(f *testing.F) {
	f.Add(hello("dep"))
	f.Add([]byte{1, 0})
	f.Add([]byte{2, 3, 'a', 'b', 'c'})
	f.Add([]byte{1, 200, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := readHello(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && (len(id) == 0 || len(id) > 64 || !bytes.HasPrefix(data, hello(id))) {
			t.Fatalf("readHello(% x) = %q", data, id)
		}
	})
}

// FuzzSetupRequest: a datagram setup request yields a deployment ID and a
// handshake with a UDP port, exactly as they were sent, or an error; never
// a panic.
func FuzzSetupRequest(f *testing.F) {
	h := handshake{index: 7, port: 4002}
	h.pub[0] = 9
	f.Add(h.marshal(hello("dep")))
	f.Add(hello("dep"))
	f.Add((&handshake{}).marshal(hello("d")))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, got, err := readRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if got.port == 0 || !bytes.HasPrefix(data, got.marshal(hello(id))) {
			t.Fatalf("readRequest(% x) = %q, %+v", data, id, got)
		}
	})
}
