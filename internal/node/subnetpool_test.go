package node

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/subnet"
)

func TestSubnetPool(t *testing.T) {
	host := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("fd00::/64")}
	for _, tc := range []struct {
		name string
		c    config.Subnet
		want []string // in the error; nil: accepted
		is   error
	}{
		{"default", config.Subnet{Pool: "10.77.0.0/16", Bits: 24}, nil, nil},
		{"overlaps a host network", config.Subnet{Pool: "192.168.0.0/16", Bits: 24}, []string{"subnet.pool", "192.168.0.0/16", "192.168.1.0/24", "DMS_SUBNET_POOL"}, subnet.ErrOverlap},
		{"inside a host network", config.Subnet{Pool: "127.1.0.0/16", Bits: 24}, []string{"subnet.pool", "127.0.0.0/8"}, subnet.ErrOverlap},
		{"not a prefix", config.Subnet{Pool: "x", Bits: 24}, []string{"subnet.pool", "not a CIDR prefix"}, nil},
		{"bits out of range", config.Subnet{Pool: "10.77.0.0/16", Bits: 31}, []string{"subnet.pool", "subnet.bits 31", "/30"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := subnetPool(tc.c, host)
			if tc.want == nil {
				if err != nil || p.Prefix.String() != tc.c.Pool || p.Bits != tc.c.Bits {
					t.Fatalf("subnetPool = %+v, %v", p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("subnetPool = %+v, want an error", p)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	nets, err := hostNetworks()
	if err != nil {
		t.Fatal(err)
	}
	if !containsPrefix(nets, netip.MustParsePrefix("127.0.0.0/8")) {
		t.Fatalf("hostNetworks = %v, want the loopback network among them", nets)
	}
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// TestRunRefusesAnOverlappingPool starts a node (dms run) whose subnet
// pool overlaps this machine's loopback network: it fails at start.
func TestRunRefusesAnOverlappingPool(t *testing.T) {
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Subnet.Pool = "127.77.0.0/16"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Run(ctx, Config{Home: t.TempDir(), Config: cfg, Key: mustKey(t), UserDID: mustKey(t).DID(), Version: "test"})
	t.Log(err)
	if err == nil || !errors.Is(err, subnet.ErrOverlap) || !strings.Contains(err.Error(), "subnet.pool") || !strings.Contains(err.Error(), "127.0.0.0/8") {
		t.Fatalf("Run = %v, want the pool refused as overlapping 127.0.0.0/8", err)
	}
}
