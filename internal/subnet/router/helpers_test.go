package router

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// newHost is a libp2p host on loopback TCP (Noise, yamux) with an
// ed25519 key, closed when the test ends.
func newHost(t testing.TB) host.Host {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatalf("libp2p host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// node is a host with its router.
type node struct {
	h host.Host
	r *Router
}

func newNode(t testing.TB, dns DNS) *node {
	t.Helper()
	h := newHost(t)
	r, err := New(Config{Host: h, DNS: dns, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &node{h: h, r: r}
}

// connect connects every pair of hosts.
func connect(t testing.TB, nodes ...*node) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
				t.Fatalf("connect: %v", err)
			}
		}
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// at is a route for table: "alloc@.N" on peer.
type at struct {
	alloc string
	host  int // last byte of the address
	peer  peer.ID
}

// table builds a valid table of deployment in block.
func table(t testing.TB, deployment string, version uint64, block string, routes ...at) *subnet.Table {
	t.Helper()
	p := netip.MustParsePrefix(block)
	tb := &subnet.Table{Deployment: deployment, Version: version, Subnet: p}
	for _, r := range routes {
		b := p.Addr().As4()
		b[3] = byte(r.host)
		tb.Routes = append(tb.Routes, subnet.Route{Allocation: r.alloc, Addr: netip.AddrFrom4(b), Peer: r.peer.String()})
	}
	slices.SortFunc(tb.Routes, func(a, b subnet.Route) int { return strings.Compare(a.Allocation, b.Allocation) })
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	return tb
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// attach attaches a new memory device.
func attach(t testing.TB, n *node, deployment, alloc string) *subnettest.Device {
	t.Helper()
	d := subnettest.NewDevice(16)
	if err := n.r.Attach(deployment, alloc, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func inject(t testing.TB, d *subnettest.Device, pkt []byte) {
	t.Helper()
	if err := d.Inject(pkt); err != nil {
		t.Fatal(err)
	}
}

// recv waits for the next packet delivered to d.
func recv(t testing.TB, d *subnettest.Device) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := d.Recv(ctx)
	if err != nil {
		t.Fatalf("no packet delivered: %v", err)
	}
	return p
}

// poll waits until cond holds.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dropped waits until n's counter of reason reaches want.
func dropped(t testing.TB, n *node, why string, want uint64) {
	t.Helper()
	poll(t, fmt.Sprintf("%d %q drops (have %v)", want, why, n.r.Stats().Dropped), func() bool { return n.r.Stats().Dropped[why] >= want })
}

// isUDP reports whether pkt is a UDP packet src→dst with payload.
func isUDP(pkt []byte, src, dst netip.Addr, payload string) bool {
	return len(pkt) >= 28 && pkt[9] == 17 &&
		netip.AddrFrom4([4]byte(pkt[12:16])) == src && netip.AddrFrom4([4]byte(pkt[16:20])) == dst &&
		string(pkt[28:]) == payload
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
