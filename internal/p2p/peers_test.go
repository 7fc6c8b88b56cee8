package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/poll"
)

// TestDiscovery starts A, B bootstrapped on A, and C bootstrapped on A
// only: C must find B through the DHT.
func TestDiscovery(t *testing.T) {
	cfg := testConfig()
	cfg.DHT = true
	a := newHost(t, cfg)
	cfgA := cfg
	cfgA.Bootstrap = a.Addrs()[:1]
	b := newHost(t, cfgA)
	poll.Eventually(t, 20*time.Second, "b connects to its bootstrap peer a", func() bool {
		return b.host.Network().Connectedness(a.host.ID()) == network.Connected
	})
	c := newHost(t, cfgA)
	poll.Eventually(t, 60*time.Second, "c discovers b", func() bool {
		return c.host.Network().Connectedness(b.host.ID()) == network.Connected
	})
	// With the DHT, a peer known only by ID can be linked to.
	echo(b)
	d := newHost(t, cfgA)
	poll.Eventually(t, 20*time.Second, "d joins the DHT", func() bool { return d.dht.RoutingTable().Size() > 0 })
	ctx := testCtx(t, 30*time.Second)
	l, err := d.Link(ctx, b.Self())
	if err != nil {
		t.Fatalf("Link to a peer found by ID: %v", err)
	}
	if err := l.Send(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if f, err := recvWithin(t, l, 10*time.Second); err != nil || string(f) != "hi" {
		t.Fatalf("Recv = %q, %v", f, err)
	}
}

// TestBootstrapRedial has a refuse its bootstrap peer b for a while: b
// keeps dialling a, and connects once a lets it.
func TestBootstrapRedial(t *testing.T) {
	a := newHost(t, testConfig())
	addr := a.Addrs()[0]
	cfg := testConfig()
	cfg.Bootstrap = []string{addr}
	if err := a.Block("nonsense"); err == nil {
		t.Fatal("Block of a bad ID succeeded")
	}
	b := newHost(t, cfg)
	if err := a.Block(b.Self()); err != nil {
		t.Fatal(err)
	}
	// Blocked: b cannot reach a. (Its own handshake may complete before a
	// drops the connection, so Connect alone proves nothing.)
	poll.Eventually(t, 10*time.Second, "b sees its connection to a closed", func() bool {
		return b.host.Network().Connectedness(a.host.ID()) != network.Connected
	})
	echo(a)
	introduce(t, b, a, "")
	if _, err := b.Link(testCtx(t, 10*time.Second), a.Self()); err == nil {
		t.Fatal("a blocked peer opened a link")
	}
	if err := a.Unblock(b.Self()); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 30*time.Second, "b's bootstrap retry connects it to a", func() bool {
		return b.host.Network().Connectedness(a.host.ID()) == network.Connected
	})
}

// TestHealKicksDiscovery partitions b from c and heals it, with a
// discovery interval far longer than the test: no timer of theirs fires
// again, and only a new connection (d dialling b, as the first connection
// across a healed cut would) can set off b's lookup that finds c again.
func TestHealKicksDiscovery(t *testing.T) {
	cfg := testConfig()
	cfg.DHT = true
	cfg.DiscoveryInterval = time.Hour
	a := newHost(t, cfg)
	cfgA := cfg
	cfgA.Bootstrap = a.Addrs()[:1]
	b := newHost(t, cfgA)
	c := newHost(t, cfgA)
	connect(t, b, c)
	// Both advertised (so each can find the other by a lookup), which
	// also means each has had a good round and waits an hour for the next.
	rd := drouting.NewRoutingDiscovery(a.dht)
	poll.Eventually(t, 30*time.Second, "b and c advertised", func() bool {
		ctx := testCtx(t, 5*time.Second)
		found, err := rd.FindPeers(ctx, a.cfg.rendezvous())
		if err != nil {
			return false
		}
		n := 0
		for ai := range found {
			if ai.ID == b.host.ID() || ai.ID == c.host.ID() {
				n++
			}
		}
		return n == 2
	})
	if err := b.Block(c.Self()); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "b and c cut off from each other", func() bool {
		return b.host.Network().Connectedness(c.host.ID()) != network.Connected &&
			c.host.Network().Connectedness(b.host.ID()) != network.Connected
	})
	if err := b.Unblock(c.Self()); err != nil {
		t.Fatal(err)
	}
	d := newHost(t, testConfig())
	connect(t, d, b)
	poll.Eventually(t, 30*time.Second, "b finds c again after the heal", func() bool {
		return b.host.Network().Connectedness(c.host.ID()) == network.Connected
	})
}

// TestPeerIDAgreesWithLibp2p checks internal/identity's conversions, which
// do without libp2p, against libp2p's.
func TestPeerIDAgreesWithLibp2p(t *testing.T) {
	for range 20 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		lpub, err := crypto.UnmarshalEd25519PublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.IDFromPublicKey(lpub)
		if err != nil {
			t.Fatal(err)
		}
		if got := identity.PeerIDFromPublicKey(pub); got != want.String() {
			t.Fatalf("PeerIDFromPublicKey = %s, libp2p says %s", got, want)
		}
		key := identity.KeyFromPrivate(priv)
		if got, err := key.DID().PeerID(); err != nil || got != want.String() {
			t.Fatalf("DID.PeerID = %s, %v; libp2p says %s", got, err, want)
		}
		did, err := identity.DIDFromPeerID(want.String())
		if err != nil || did != key.DID() {
			t.Fatalf("DIDFromPeerID(%s) = %s, %v; want %s", want, did, err, key.DID())
		}
		// And back through libp2p: the peer ID's embedded key is ours.
		ek, err := want.ExtractPublicKey()
		if err != nil || !ek.Equals(lpub) {
			t.Fatalf("libp2p extracts %v, %v from %s", ek, err, want)
		}
	}
	// The host's peer ID is its key's.
	key, _ := identity.NewKey()
	h, err := New(context.Background(), testConfig(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if want, _ := key.DID().PeerID(); h.Self() != want {
		t.Errorf("Self() = %s, the key's peer ID is %s", h.Self(), want)
	}
}

func TestPeersAPI(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	if a.ID() != a.Self() {
		t.Errorf("ID() = %s, Self() = %s", a.ID(), a.Self())
	}
	for _, s := range a.Addrs() {
		if !strings.HasSuffix(s, "/p2p/"+a.ID()) || !strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			t.Errorf("address %s: want /ip4/127.0.0.1/…/p2p/%s", s, a.ID())
		}
	}
	ctx := testCtx(t, 20*time.Second)
	for _, bad := range []string{"", "/ip4/127.0.0.1/tcp/1", "nonsense", b.Addrs()[0]} {
		if _, err := b.Connect(ctx, bad); err == nil {
			t.Errorf("Connect(%q) succeeded", bad)
		}
	}
	connect(t, b, a)
	rtt, err := b.Ping(ctx, a.ID())
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %s, %v", rtt, err)
	}
	for _, bad := range []string{"", "x", b.ID()} {
		if _, err := b.Ping(ctx, bad); err == nil {
			t.Errorf("Ping(%q) succeeded", bad)
		}
	}
	var found bool
	for _, p := range b.Peers() {
		if p.ID == b.ID() {
			t.Error("Peers lists this host")
		}
		if p.ID == a.ID() {
			found = true
			if !p.Connected || len(p.Addrs) == 0 {
				t.Errorf("Peers: %+v, want connected with addresses", p)
			}
		}
	}
	if !found {
		t.Errorf("Peers() = %+v, want %s in it", b.Peers(), a.ID())
	}
}

func TestConfigErrors(t *testing.T) {
	key, _ := identity.NewKey()
	cfg := testConfig()
	cfg.Listen = []string{"/ip4/1.2.3.4/tcp/x"}
	cfg.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"}
	cfg.ProtocolPrefix = "dms/"
	cfg.ConnLow, cfg.ConnHigh = 10, 5
	_, err := New(context.Background(), cfg, key, nil)
	if err == nil {
		t.Fatal("New with a bad config succeeded")
	}
	for _, want := range []string{"listen address", "bootstrap address", "protocol prefix", "watermarks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(context.Background(), testConfig(), nil, nil); err == nil {
		t.Error("New without a key succeeded")
	}
	if got := (Config{ProtocolPrefix: "/dms/test-1"}).mdnsService(); got != "_dms-test-1._udp" {
		t.Errorf("mdns service name = %q", got)
	}
}

// TestCloseStopsEverything checks that Close stops every goroutine the host
// started, with links, subscriptions and the DHT running, and that a closed
// host refuses work.
func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		cfg := testConfig()
		cfg.DHT = true
		key1, _ := identity.NewKey()
		key2, _ := identity.NewKey()
		a, err := New(context.Background(), cfg, key1, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Bootstrap = a.Addrs()
		b, err := New(context.Background(), cfg, key2, nil)
		if err != nil {
			t.Fatal(err)
		}
		echo(a)
		ctx := testCtx(t, 20*time.Second)
		if _, err := a.Subscribe("t", func(string, []byte) {}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe("t", func(string, []byte) {}); err != nil {
			t.Fatal(err)
		}
		l, err := b.Link(ctx, a.Self())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Send(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := recvWithin(t, l, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, "t", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := b.Link(ctx, a.Self()); !errors.Is(err, ErrClosed) {
			t.Errorf("Link on a closed host = %v, want ErrClosed", err)
		}
		if err := l.Send(ctx, []byte("x")); !errors.Is(err, actor.ErrLinkClosed) {
			t.Errorf("Send on a closed host's link = %v, want ErrLinkClosed", err)
		}
		if _, err := b.Subscribe("t", func(string, []byte) {}); err == nil {
			t.Error("Subscribe on a closed host succeeded")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

// TestDiscoveryBackoff: rounds that keep failing wait 1 s, 2 s, 4 s, …, then
// the interval, forever; a round that succeeds resets the backoff. The wait
// never reaches zero, however many rounds fail (the doubling once
// overflowed after ~34 rounds and the loop spun).
func TestDiscoveryBackoff(t *testing.T) {
	const interval = time.Minute
	backoff := firstBackoff
	var waits []time.Duration
	for round := range 10_000 {
		var wait time.Duration
		wait, backoff = nextRound(false, backoff, interval)
		if wait <= 0 || wait > interval {
			t.Fatalf("round %d: wait %s, want (0, %s]", round, wait, interval)
		}
		if round < 8 {
			waits = append(waits, wait)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, interval, interval}
	if !slices.Equal(waits, want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	if wait, next := nextRound(true, backoff, interval); wait != interval || next != firstBackoff {
		t.Errorf("after a good round: wait %s, backoff %s; want %s, %s", wait, next, interval, firstBackoff)
	}
}

// TestConnRTT: the round trip the transport of a connection measures
// (yamux on TCP, QUIC's own estimate) is there without a ping, and Peers
// reports it; with no connection, or a bad ID, it is zero.
func TestConnRTT(t *testing.T) {
	for _, transport := range []string{"tcp", "quic-v1"} {
		t.Run(transport, func(t *testing.T) {
			a, b := newHost(t, testConfig()), newHost(t, testConfig())
			if d := a.ConnRTT(b.ID()); d != 0 {
				t.Errorf("ConnRTT before connecting = %s, want 0", d)
			}
			introduce(t, a, b, transport)
			pid, err := peer.Decode(b.ID())
			if err != nil {
				t.Fatal(err)
			}
			if err := a.host.Connect(testCtx(t, 10*time.Second), peer.AddrInfo{ID: pid}); err != nil {
				t.Fatalf("connect over %s: %v", transport, err)
			}
			poll.Eventually(t, 10*time.Second, "a round trip measured by the "+transport+" connection", func() bool {
				return a.ConnRTT(b.ID()) > 0
			})
			if got := a.Connected(); !slices.Equal(got, []string{b.ID()}) {
				t.Errorf("Connected() = %v, want [%s]", got, b.ID())
			}
			if lat := a.host.Peerstore().LatencyEWMA(pid); lat != 0 {
				t.Errorf("the peerstore holds a ping's latency %s: want none, nothing pinged", lat)
			}
			for _, p := range a.Peers() {
				if p.ID == b.ID() && p.Latency <= 0 {
					t.Errorf("Peers: latency to %s = %s, want the connection's round trip", p.ID, p.Latency)
				}
			}
			for _, bad := range []string{"", "x", a.ID()} {
				if d := a.ConnRTT(bad); d != 0 {
					t.Errorf("ConnRTT(%q) = %s, want 0", bad, d)
				}
			}
		})
	}
}

// TestNextFind: lookups that connect no one are spread out, twice as far
// each time, up to maxFindStretch intervals; one that connects someone
// brings back the interval.
func TestNextFind(t *testing.T) {
	const interval = time.Minute
	tests := []struct {
		name        string
		unconnected int
		pause       time.Duration
		want        time.Duration
	}{
		{"first, found someone", 3, interval, interval},
		{"found someone unreachable (a partition): stays short", 1, 4 * interval, interval},
		{"first, no one new", 0, interval, 2 * interval},
		{"doubles", 0, 2 * interval, 4 * interval},
		{"bounded", 0, 4 * interval, maxFindStretch * interval},
		{"stays bounded", 0, maxFindStretch * interval, maxFindStretch * interval},
		{"found someone: back to the interval", 1, maxFindStretch * interval, interval},
		{"no pause yet", 0, 0, interval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextFind(tt.unconnected, tt.pause, interval); got != tt.want {
				t.Errorf("nextFind(%d, %s, %s) = %s, want %s", tt.unconnected, tt.pause, interval, got, tt.want)
			}
		})
	}
}
