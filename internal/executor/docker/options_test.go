package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

// These tests need no Docker daemon: they check the translation of a
// Spec into the daemon's create request, and the refusals.

func newOffline(t *testing.T, cfg Config) *Executor {
	t.Helper()
	cfg.Host = "unix:///nonexistent/docker.sock"
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestCreateOptions(t *testing.T) {
	e := newOffline(t, Config{DiskQuota: true, Labels: map[string]string{"dms.node": "n1"}})
	spec := executor.Spec{
		Image:      "busybox",
		Entrypoint: []string{"/bin/sh"},
		Env:        map[string]string{"B": "2", "A": "1"},
		WorkDir:    "/work",
		Resources:  executor.Resources{CPU: 1500, Memory: 256 << 20, PIDs: 64, Disk: 1 << 30},
		Mounts:     []executor.Mount{{Source: "/srv/in", Target: "/in", ReadOnly: true}},
		Ports:      []executor.Port{{Guest: 80, Host: 8080, HostIP: "127.0.0.1"}, {Guest: 53, Protocol: "udp"}},
		Labels:     map[string]string{executor.LabelAllocation: "a1"},
		Timeout:    90e9,
	}
	o, err := e.createOptions(&spec)
	if err != nil {
		t.Fatal(err)
	}
	c, hc := o.Config, o.HostConfig
	if !slices.Equal(c.Env, []string{"A=1", "B=2"}) || c.Cmd == nil || len(c.Cmd) != 0 || c.WorkingDir != "/work" {
		t.Errorf("config env %v cmd %#v workdir %q", c.Env, c.Cmd, c.WorkingDir)
	}
	if c.Labels[executor.LabelManaged] != "true" || c.Labels["dms.node"] != "n1" || c.Labels[executor.LabelAllocation] != "a1" || c.Labels[labelTimeout] != "1m30s" {
		t.Errorf("labels %v", c.Labels)
	}
	if hc.NanoCPUs != 1.5e9 || hc.Memory != 256<<20 || hc.MemorySwap != 256<<20 || *hc.PidsLimit != 64 || hc.StorageOpt["size"] != "1073741824" {
		t.Errorf("resources: cpus %d memory %d swap %d pids %d storage %v", hc.NanoCPUs, hc.Memory, hc.MemorySwap, *hc.PidsLimit, hc.StorageOpt)
	}
	if hc.Privileged || !slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Equal(hc.SecurityOpt, []string{"no-new-privileges"}) || !*hc.Init {
		t.Errorf("hardening: privileged %v capdrop %v security %v", hc.Privileged, hc.CapDrop, hc.SecurityOpt)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0].Source != "/srv/in" || !hc.Mounts[0].ReadOnly || hc.NetworkMode != JobNetwork {
		t.Errorf("mounts %+v network %q", hc.Mounts, hc.NetworkMode)
	}
	if len(hc.PortBindings) != 2 || len(c.ExposedPorts) != 2 {
		t.Errorf("ports %v exposed %v", hc.PortBindings, c.ExposedPorts)
	}
	for p, b := range hc.PortBindings {
		if p.Num() == 80 && (b[0].HostPort != "8080" || b[0].HostIP.String() != "127.0.0.1") || p.Num() == 53 && (p.Proto() != "udp" || b[0].HostPort != "") {
			t.Errorf("binding %v -> %+v", p, b)
		}
	}

	spec.Privileged, spec.Resources.Disk = true, 0
	o, _ = newOffline(t, Config{AllowPrivileged: true}).createOptions(&spec)
	if !o.HostConfig.Privileged || o.HostConfig.CapDrop != nil || o.HostConfig.StorageOpt != nil {
		t.Errorf("privileged: %v, capdrop %v, storage %v", o.HostConfig.Privileged, o.HostConfig.CapDrop, o.HostConfig.StorageOpt)
	}
}

func TestGPURequests(t *testing.T) {
	var hc container.HostConfig
	gpuRequests(&hc, []match.GPU{{Index: 0, Vendor: "nvidia"}, {Index: 2, Vendor: "nvidia"}, {Index: 1, Vendor: "amd"}, {Index: 0, Vendor: "intel"}})
	if len(hc.DeviceRequests) != 1 || !slices.Equal(hc.DeviceRequests[0].DeviceIDs, []string{"0", "2"}) || hc.DeviceRequests[0].Driver != "nvidia" ||
		hc.DeviceRequests[0].Capabilities[0][0] != "gpu" {
		t.Errorf("device requests %+v", hc.DeviceRequests)
	}
	var paths []string
	for _, d := range hc.Devices {
		paths = append(paths, d.PathOnHost)
	}
	if !slices.Equal(paths, []string{"/dev/kfd", "/dev/dri/renderD129", "/dev/dri/renderD128"}) {
		t.Errorf("devices %v", paths)
	}
}

func TestRefusals(t *testing.T) {
	e := newOffline(t, Config{})
	for _, c := range []struct {
		name string
		spec executor.Spec
	}{
		{"module", executor.Spec{Module: []byte{0}, Command: []string{"m"}}},
		{"privileged", executor.Spec{Image: "x", Command: []string{"y"}, Privileged: true}},
		{"host network", executor.Spec{Image: "x", Command: []string{"y"}, Network: executor.NetworkHost}},
		{"tiny memory", executor.Spec{Image: "x", Command: []string{"y"}, Resources: executor.Resources{Memory: 1 << 20}}},
	} {
		if _, err := e.Start(context.Background(), c.spec); !errors.Is(err, executor.ErrInvalidSpec) {
			t.Errorf("%s: Start = %v, want ErrInvalidSpec", c.name, err)
		}
	}
}

func TestNoDaemonIsUnavailable(t *testing.T) {
	e := newOffline(t, Config{})
	_, err := e.Start(context.Background(), executor.Spec{Image: "busybox", Command: []string{"true"}})
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("Start without a daemon = %v, want ErrUnavailable", err)
	}
	if err := e.Ping(context.Background()); !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
}

func TestOwnLabelsRefused(t *testing.T) {
	if _, err := New(Config{Labels: map[string]string{executor.LabelManaged: "x"}}); err == nil {
		t.Error("New accepted dms.managed in Config.Labels")
	}
}

func TestParseBlockNetworks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []string
		prefixes string
		host     bool
		err      string
	}{
		{"default", DefaultBlockNetworks, "[169.254.0.0/16 fe80::/10]", true, ""},
		{"empty", []string{}, "[]", false, ""},
		{"masked", []string{"10.1.2.3/8"}, "[10.0.0.0/8]", false, ""},
		{"bad", []string{"metadata", "10.0.0.0/33"}, "", false, `"metadata": want a CIDR prefix`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, host, err := ParseBlockNetworks(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "10.0.0.0/33") {
					t.Errorf("ParseBlockNetworks(%q) = %v, want an error with %q and naming every bad entry", tc.in, err, tc.err)
				}
				return
			}
			if got := fmt.Sprint(p); err != nil || got != tc.prefixes || host != tc.host {
				t.Errorf("ParseBlockNetworks(%q) = %s, %v, %v; want %s, %v", tc.in, got, host, err, tc.prefixes, tc.host)
			}
		})
	}
}

// FuzzParseBlockNetworks checks that any block list is parsed or refused
// with an error, never a panic, and that what parses names every entry.
func FuzzParseBlockNetworks(f *testing.F) {
	for _, s := range []string{"169.254.0.0/16", "fe80::/10", "host", "", "10.0.0.0/33", "::ffff:1.2.3.4/128"} {
		f.Add(s, "host")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		p, host, err := ParseBlockNetworks([]string{a, b})
		if err != nil {
			return
		}
		prefixes := 0
		for _, s := range []string{a, b} {
			if s != BlockHost {
				prefixes++
			}
		}
		if len(p) != prefixes || host != (a == BlockHost || b == BlockHost) {
			t.Errorf("ParseBlockNetworks(%q, %q) = %v, %v", a, b, p, host)
		}
	})
}
