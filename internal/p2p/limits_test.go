package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dmsnet/dms/internal/poll"
)

// One source opening connections from many peer IDs (defect 5 of issue 12:
// 79 connections from one process locked new peers out; loopback is exempt
// from libp2p's per-IP limit) takes neither every inbound slot nor the
// reserve: with loopback limited, a newcomer from another address
// connects; with loopback exempt (the default) and the node full, a
// protected peer still connects.
func TestOneSourceCannotTakeEverySlot(t *testing.T) {
	const attackers = 72 // more than libp2p's smallest scaled inbound limit, 64
	tests := []struct {
		name        string
		cfg         func(*Config)
		maxAccepted int  // of the attackers' connections
		newcomer    bool // an unprotected peer from another address connects
	}{
		{"loopback limited per address", func(c *Config) {
			c.LimitLoopback, c.MaxConnsPerIP = true, 4
		}, 4, true},
		{"loopback exempt, the node full", func(c *Config) {}, 16 - 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
			cfg.MaxMemory, cfg.MaxFDs = 64<<20, 256 // libp2p scales this to 64 inbound connections
			cfg.MaxInboundConns, cfg.InboundReserve = 16, 4
			tt.cfg(&cfg)
			victim := newHost(t, cfg)
			target := fullAddr(t, victim)

			ctx := testCtx(t, 60*time.Second)
			for range attackers {
				a := bareHost(t, "/ip4/127.0.0.1/tcp/0")
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_ = a.Connect(dctx, target) // refusals are expected
				cancel()
			}
			inbound := func() (n int) {
				for _, c := range victim.host.Network().Conns() {
					if c.Stat().Direction == network.DirInbound {
						n++
					}
				}
				return n
			}
			if n := inbound(); n > tt.maxAccepted {
				t.Errorf("the victim holds %d inbound connections from one source, want at most %d", n, tt.maxAccepted)
			}

			// A newcomer from another loopback address.
			newcomer := newHost(t, withListen(testConfig(), "/ip4/127.0.0.2/tcp/0"))
			_, err := newcomer.Connect(ctx, victim.Addrs()[0])
			if tt.newcomer && err != nil {
				t.Errorf("a newcomer could not connect: %v", err)
			}
			if tt.newcomer && err == nil {
				if _, err := newcomer.Ping(ctx, victim.ID()); err != nil {
					t.Errorf("a newcomer could not ping: %v", err)
				}
			}

			// A peer the victim protects connects even when it is full.
			friend := newHost(t, withListen(testConfig(), "/ip4/127.0.0.3/tcp/0"))
			if err := victim.Protect(friend.ID()); err != nil {
				t.Fatal(err)
			}
			if _, err := friend.Connect(ctx, victim.Addrs()[0]); err != nil {
				t.Fatalf("a protected peer could not connect: %v", err)
			}
			poll.Eventually(t, 5*time.Second, "the protected peer answers a ping", func() bool {
				_, err := friend.Ping(ctx, victim.ID())
				return err == nil
			})
		})
	}
}

func withListen(c Config, addrs ...string) Config {
	c.Listen = addrs
	return c
}

func fullAddr(t *testing.T, h *Host) peer.AddrInfo {
	t.Helper()
	ai, err := peer.AddrInfoFromString(h.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return *ai
}

// bareHost is a minimal libp2p host (TCP, noise, yamux, no resource
// limits of its own): what an attacker runs by the dozen.
func bareHost(t *testing.T, listen string) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrs(ma.StringCast(listen)),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(), libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(fmt.Errorf("bare host: %w", err))
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}
