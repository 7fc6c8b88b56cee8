package docker

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/executor"
)

// These need no Docker daemon: the subnet's refusals and its resolver
// settings in the create request.

func testSubnet() *executor.Subnet {
	return &executor.Subnet{
		Addr:        netip.MustParsePrefix("10.77.0.2/24"),
		DNS:         netip.MustParseAddr("10.77.0.1"),
		AttachNetns: func(context.Context, string) error { return nil },
	}
}

func TestSubnetCreateOptions(t *testing.T) {
	e := newOffline(t, Config{})
	spec := executor.Spec{Image: "busybox", Command: []string{"true"}, Subnet: testSubnet()}
	o, err := e.createOptions(&spec)
	if err != nil {
		t.Fatal(err)
	}
	hc := o.HostConfig
	if !slices.Equal(hc.DNS, []netip.Addr{netip.MustParseAddr("10.77.0.1")}) ||
		!slices.Equal(hc.DNSSearch, []string{"internal"}) ||
		!slices.Equal(hc.DNSOptions, []string{"ndots:1", "timeout:1", "attempts:3"}) {
		t.Errorf("dns %v search %v options %v", hc.DNS, hc.DNSSearch, hc.DNSOptions)
	}
	if hc.NetworkMode != JobNetwork {
		t.Errorf("network %s, want the job network (the embedded resolver forwards to the subnet's DNS)", hc.NetworkMode)
	}
	spec.Subnet = nil
	if o, _ := e.createOptions(&spec); o.HostConfig.DNS != nil || o.HostConfig.DNSSearch != nil {
		t.Errorf("without a subnet: dns %v search %v", o.HostConfig.DNS, o.HostConfig.DNSSearch)
	}
}

func TestSubnetRefused(t *testing.T) {
	e := newOffline(t, Config{AllowHostNetwork: true})
	for _, c := range []struct {
		name  string
		edit  func(*executor.Spec)
		field string
		msg   string
	}{
		{"network host", func(s *executor.Spec) { s.Network = executor.NetworkHost }, "network", "cannot join a subnet"},
		{"network none", func(s *executor.Spec) { s.Network = executor.NetworkNone }, "network", "cannot join a subnet"},
		{"no address", func(s *executor.Spec) { s.Subnet.Addr = netip.Prefix{} }, "subnet.addr", "required"},
		{"ipv6 address", func(s *executor.Spec) { s.Subnet.Addr = netip.MustParsePrefix("fd00::2/64") }, "subnet.addr", "not an IPv4 prefix"},
		{"ipv4 in ipv6", func(s *executor.Spec) { s.Subnet.Addr = netip.MustParsePrefix("::ffff:10.77.0.2/120") }, "subnet.addr", "not an IPv4 prefix"},
		{"host prefix", func(s *executor.Spec) { s.Subnet.Addr = netip.MustParsePrefix("10.77.0.2/32") }, "subnet.addr", "/1 to /30"},
		{"no dns", func(s *executor.Spec) { s.Subnet.DNS = netip.Addr{} }, "subnet.dns", "required"},
		{"dns outside", func(s *executor.Spec) { s.Subnet.DNS = netip.MustParseAddr("8.8.8.8") }, "subnet.dns", "not another address of the subnet 10.77.0.0/24"},
		{"dns is self", func(s *executor.Spec) { s.Subnet.DNS = netip.MustParseAddr("10.77.0.2") }, "subnet.dns", "not another address"},
		{"no hook", func(s *executor.Spec) { s.Subnet.AttachNetns = nil }, "subnet", "no AttachNetns hook"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := executor.Spec{Image: "busybox", Command: []string{"true"}, Subnet: testSubnet()}
			c.edit(&s)
			_, err := e.Start(t.Context(), s)
			var v *executor.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("Start = %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), c.field+": ") || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Start = %v, want %s: ...%s", err, c.field, c.msg)
			}
		})
	}
}

func TestSubnetRefusedWithSandboxRuntime(t *testing.T) {
	for _, rt := range []string{"runsc", "kata-runtime"} {
		e := newOffline(t, Config{Runtime: rt})
		_, err := e.Start(t.Context(), executor.Spec{Image: "busybox", Command: []string{"true"}, Subnet: testSubnet()})
		if !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), "subnet: this provider runs containers with "+rt) {
			t.Errorf("%s: Start = %v", rt, err)
		}
	}
}

func TestAttachSubnetRefusesBadSubnet(t *testing.T) {
	e := newOffline(t, Config{})
	if err := e.AttachSubnet(t.Context(), "abc", nil); err == nil {
		t.Error("nil subnet accepted")
	}
	s := testSubnet()
	s.Addr = netip.MustParsePrefix("fd00::2/64")
	if err := e.AttachSubnet(t.Context(), "abc", s); !errors.Is(err, executor.ErrInvalidSpec) {
		t.Errorf("AttachSubnet = %v, want ErrInvalidSpec", err)
	}
}

// TestCheckCgroup: a process whose cgroup does not name the container
// (what /proc/<pid> shows when dms is in another PID namespace than the
// daemon) is refused.
func TestCheckCgroup(t *testing.T) {
	proc, err := os.Open("/proc/self")
	if err != nil {
		t.Skip(err)
	}
	defer proc.Close()
	id := strings.Repeat("ab", 32)
	if err := checkCgroup(proc, os.Getpid(), id); err == nil || !strings.Contains(err.Error(), "host's PID namespace") {
		t.Errorf("checkCgroup = %v, want a refusal", err)
	}
	b, _ := os.ReadFile("/proc/self/cgroup")
	if len(b) > 0 {
		own := strings.TrimSpace(string(b))
		if err := checkCgroup(proc, os.Getpid(), own[len(own)-min(len(own), 8):]); err != nil {
			t.Errorf("checkCgroup of a process in the cgroup = %v", err)
		}
	}
}
