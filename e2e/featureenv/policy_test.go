//go:build linux

package featureenv

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// decide: what happens to a packet, by regions, partitions, cuts and loss.
func TestDecide(t *testing.T) {
	eu1, eu2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	us1, ap1 := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	gw := netip.MustParseAddr("10.0.0.254")
	type verdict struct {
		delay time.Duration
		pass  bool
	}
	held, now, drop := verdict{25 * time.Millisecond, true}, verdict{0, true}, verdict{0, false}
	for _, tc := range []struct {
		name     string
		setup    func(s *shaper)
		src, dst netip.Addr
		want     verdict
	}{
		{"same region", nil, eu1, eu2, now},
		{"other region", nil, eu1, us1, held},
		{"other region, back", nil, us1, eu1, held},
		{"not a node", nil, gw, eu1, now},
		{"partitioned", func(s *shaper) { s.setParted("us", "eu", true) }, eu1, us1, drop},
		{"partitioned, back", func(s *shaper) { s.setParted("us", "eu", true) }, us1, eu1, drop},
		{"partition of others", func(s *shaper) { s.setParted("us", "eu", true) }, eu1, ap1, held},
		{"healed", func(s *shaper) { s.setParted("us", "eu", true); s.setParted("eu", "us", false) }, eu1, us1, held},
		{"cut, from", func(s *shaper) { s.setCut(context.Background(), eu2, true) }, eu2, eu1, drop},
		{"cut, to", func(s *shaper) { s.setCut(context.Background(), eu2, true) }, eu1, eu2, drop},
		{"cut, others", func(s *shaper) { s.setCut(context.Background(), eu2, true) }, eu1, us1, held},
		{"reconnected", func(s *shaper) { s.setCut(context.Background(), eu2, true); s.setCut(context.Background(), eu2, false) }, eu1, eu2, now},
		{"heal all", func(s *shaper) {
			s.setCut(context.Background(), eu2, true)
			s.setParted("eu", "us", true)
			s.healAll(context.Background())
		}, eu2, us1, held},
		{"all lost", func(s *shaper) { s.setLink(50*time.Millisecond, 0.9999999) }, eu1, us1, drop},
		{"loss spares a region", func(s *shaper) { s.setLink(50*time.Millisecond, 0.9999999) }, eu1, eu2, now},
		{"new rtt", func(s *shaper) { s.setLink(200*time.Millisecond, 0) }, eu1, ap1, verdict{100 * time.Millisecond, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newShaper(50*time.Millisecond, 0, t.Logf)
			for addr, r := range map[netip.Addr]string{eu1: "eu", eu2: "eu", us1: "us", ap1: "ap"} {
				s.setRegion(addr, r)
			}
			if tc.setup != nil {
				tc.setup(s)
			}
			d, pass := s.decide(tc.src, tc.dst)
			if got := (verdict{d, pass}); got != tc.want {
				t.Errorf("decide(%s, %s) = %+v, want %+v", tc.src, tc.dst, got, tc.want)
			}
		})
	}
}

// Netlink attributes: encoded padded to 4 bytes, read back by type, a
// malformed one ends the iteration.
func TestAttrs(t *testing.T) {
	b := append(attr(1, []byte{1, 2, 3}), attr(10, []byte("0123456789abcdefghij"))...)
	b = append(b, attr(2, nil)...)
	if len(b)%4 != 0 {
		t.Fatalf("len %d: not padded", len(b))
	}
	type kv struct {
		typ uint16
		val string
	}
	var got []kv
	for typ, val := range attrs(b) {
		got = append(got, kv{typ, string(val)})
	}
	want := []kv{{1, "\x01\x02\x03"}, {10, "0123456789abcdefghij"}, {2, ""}}
	if !slices.Equal(got, want) {
		t.Fatalf("attrs = %+v, want %+v", got, want)
	}
	bad := append(bytes.Clone(b[:8]), 0xff, 0xff, 0, 0) // a length past the end
	n := 0
	for range attrs(bad) {
		n++
	}
	if n != 1 {
		t.Fatalf("with a malformed attribute: %d read, want 1", n)
	}
}

// Config: every problem at once, defaults filled in.
func TestConfigValidate(t *testing.T) {
	cfg := Config{Regions: map[string]int{"eu": 2}}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.CPUs != DefaultCPUs || cfg.Memory != DefaultMemory || cfg.StartTimeout != DefaultStartTimeout || cfg.Logf == nil {
		t.Errorf("defaults not filled in: %+v", cfg)
	}
	bad := Config{Regions: map[string]int{"Europe West": 1, "us": 0, "ap": 25}, InterRegionLatency: -time.Second, Loss: 1}
	err := bad.validate()
	for _, want := range []string{`region "Europe West"`, "region us: 0 nodes", "region ap: 25 nodes", "InterRegionLatency -1s", "Loss 1", "26 nodes in all"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v; want it to say %s", err, want)
		}
	}
	if err := (&Config{}).validate(); err == nil || !strings.Contains(err.Error(), "at least one region") {
		t.Errorf("no regions: %v", err)
	}
}
