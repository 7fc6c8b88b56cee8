package subnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNewPool(t *testing.T) {
	host := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("172.17.0.0/16")}
	cases := []struct {
		name   string
		prefix string
		bits   int
		err    string
	}{
		{"default", "10.77.0.0/16", 24, ""},
		{"unmasked", "10.77.3.9/16", 24, ""},
		{"overlaps the docker bridge", "172.16.0.0/12", 24, "overlaps a network of this host (172.17.0.0/16)"},
		{"inside the LAN", "192.168.1.128/25", 28, "overlaps"},
		{"ipv6", "fd00::/64", 24, "want an IPv4 prefix"},
		{"subnet larger than the pool", "10.77.0.0/24", 16, "do not fit"},
		{"subnet too small", "10.77.0.0/16", 31, "do not fit"},
		{"invalid", "", 24, "want an IPv4 prefix"},
		{"link-local", "169.254.0.0/16", 24, "contains 169.254.53.53, the subnets' DNS address"},
		{"the whole space", "0.0.0.0/0", 24, "contains 169.254.53.53"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prefix netip.Prefix
			if tc.prefix != "" {
				prefix = netip.MustParsePrefix(tc.prefix)
			}
			p, err := NewPool(prefix, tc.bits, host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || p.Prefix != prefix.Masked() {
				t.Fatalf("pool %+v, %v", p, err)
			}
		})
	}
}

func TestAssignAndRelease(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.9.0.0/22"), 24, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.9.0.0/24", "10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"}
	for i, d := range []string{"d1", "d2", "d3", "d4"} {
		b, err := p.Assign(d, 3)
		if err != nil || b.String() != want[i] {
			t.Fatalf("Assign(%s) = %s, %v; want %s", d, b, err, want[i])
		}
	}
	if b, _ := p.Assign("d2", 3); b.String() != want[1] {
		t.Fatalf("a second Assign moved d2 to %s", b)
	}
	if _, err := p.Assign("d5", 1); !errors.Is(err, ErrExhausted) {
		t.Fatalf("a fifth subnet: %v, want ErrExhausted", err)
	}
	p.Release("d2")
	if b, err := p.Assign("d5", 1); err != nil || b.String() != want[1] {
		t.Fatalf("after a release: %s, %v; want the freed %s", b, err, want[1])
	}
	if _, err := p.Assign("d6", 254); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "holds 253") {
		t.Fatalf("254 allocations in a /24: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	block := netip.MustParsePrefix("10.77.5.0/24")
	if g := Gateway(block); g.String() != "10.77.5.1" {
		t.Fatalf("gateway %s", g)
	}
	got, err := Addresses(block, []string{"web", "db", "cache"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["cache"].String() != "10.77.5.2" || got["db"].String() != "10.77.5.3" || got["web"].String() != "10.77.5.4" {
		t.Fatalf("addresses %v, want .2 .3 .4 in name order", got)
	}
	// A redeploy keeps the addresses; a new allocation takes a free one;
	// an address outside the block, the gateway or a duplicate is not kept.
	prev := map[string]netip.Addr{"web": netip.MustParseAddr("10.77.5.9"), "db": netip.MustParseAddr("10.77.5.1"),
		"cache": netip.MustParseAddr("10.77.6.2"), "queue": netip.MustParseAddr("10.77.5.9")}
	got, err = Addresses(block, []string{"web", "db", "cache", "queue"}, prev)
	if err != nil {
		t.Fatal(err)
	}
	if got["web"].String() != "10.77.5.9" {
		t.Errorf("web moved to %s", got["web"])
	}
	seen := map[netip.Addr]bool{}
	for n, a := range got {
		if !usable(block, a) || seen[a] {
			t.Errorf("%s got %s: not a usable, unique address", n, a)
		}
		seen[a] = true
	}
	small := netip.MustParsePrefix("10.0.0.0/30")
	if _, err := Addresses(small, []string{"a", "b"}, nil); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("two allocations in a /30: %v", err)
	}
	if got, err := Addresses(small, []string{"a"}, nil); err != nil || got["a"].String() != "10.0.0.2" {
		t.Fatalf("one in a /30: %v %v", got, err)
	}
}
