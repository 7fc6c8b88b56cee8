package p2p

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
)

// testConfig is a host on loopback, on ports the system picks, with small
// resource limits and no mDNS.
func testConfig() Config {
	return Config{
		Listen:            []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		ConnLow:           20,
		ConnHigh:          40,
		MaxMemory:         256 << 20,
		MaxFDs:            256,
		DiscoveryInterval: 2 * time.Second,
	}
}

// newHost starts a host that the test closes when it ends.
func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// testCtx is a context that ends with the test, or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// introduce tells a the addresses of b, on transport "tcp" or "quic-v1"
// (any if empty), without connecting.
func introduce(t testing.TB, a, b *Host, transport string) {
	t.Helper()
	var addrs []peer.AddrInfo
	for _, s := range b.Addrs() {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			t.Fatal(err)
		}
		if transport != "" && !strings.Contains(s, "/"+transport+"/") {
			continue
		}
		addrs = append(addrs, *ai)
	}
	if len(addrs) == 0 {
		t.Fatalf("host %s has no %s address in %v", b.ID(), transport, b.Addrs())
	}
	for _, ai := range addrs {
		a.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	}
}

// connect connects a to b.
func connect(t testing.TB, a, b *Host) {
	t.Helper()
	id, err := a.Connect(testCtx(t, 10*time.Second), b.Addrs()[0])
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if id != b.ID() {
		t.Fatalf("Connect returned %s, want %s", id, b.ID())
	}
}

// echo makes h answer every frame on every link a peer opens with the
// same frame.
func echo(h *Host) {
	h.SetLinkHandler(func(l actor.Link) {
		for {
			f, err := l.Recv()
			if err != nil {
				if _, ok := err.(*actor.FrameTooLargeError); ok {
					continue
				}
				return
			}
			if err := l.Send(context.Background(), f); err != nil {
				return
			}
		}
	})
}

// accept makes h pass every link a peer opens to the returned channel.
func accept(h *Host) <-chan actor.Link {
	ch := make(chan actor.Link, 16)
	h.SetLinkHandler(func(l actor.Link) { ch <- l })
	return ch
}

func recvWithin(t testing.TB, l actor.Link, d time.Duration) ([]byte, error) {
	t.Helper()
	type res struct {
		f   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := l.Recv()
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(d):
		t.Fatalf("no frame within %s", d)
		return nil, nil
	}
}
