package vm

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/link"
)

func TestValidateSubnet(t *testing.T) {
	kernel, initrd, _ := files(t)
	e, _ := New(Config{})
	opened := func(context.Context) (*os.File, error) { return nil, errors.New("not called by validate") }
	spec := executor.Spec{
		VM:      &executor.VMImage{Kernel: kernel, Initrd: initrd},
		Command: []string{"/bin/app"},
		Subnet: &executor.Subnet{Addr: netip.MustParsePrefix("10.77.0.2/24"), DNS: netip.MustParseAddr("10.77.0.1"),
			OpenGuest: opened},
	}
	m, err := e.validate(&spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := qemu{path: "qemu", accel: AccelTCG}.command(m)
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"-netdev socket,id=subnet,fd=3",
		"-device virtio-net-device,netdev=subnet,mac=02:67:0a:4d:00:02"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
	gs, err := guest.Decode(m.cmdline)
	if err != nil {
		t.Fatal(err)
	}
	want := guest.Net{Name: "dms0", MAC: "02:67:0a:4d:00:02", Addr: "10.77.0.2/24", MTU: subnet.MTU, DNS: "10.77.0.1"}
	if gs.Net == nil || *gs.Net != want {
		t.Errorf("guest net %+v, want %+v", gs.Net, want)
	}

	spec.Subnet = nil
	if m, _ := e.validate(&spec); m.net != nil {
		t.Error("a netdev without a subnet")
	} else if cmd, _ := (qemu{path: "qemu", accel: AccelTCG}).command(m); strings.Contains(strings.Join(cmd.Args, " "), "netdev") {
		t.Errorf("qemu args without a subnet: %s", cmd.Args)
	}

	for _, c := range []struct {
		name  string
		sn    executor.Subnet
		field string
	}{
		{"no address", executor.Subnet{OpenGuest: opened}, "subnet.addr"},
		{"IPv6", executor.Subnet{Addr: netip.MustParsePrefix("fd00::2/64"), OpenGuest: opened}, "subnet.addr"},
		{"IPv6 DNS", executor.Subnet{Addr: netip.MustParsePrefix("10.77.0.2/24"), DNS: netip.MustParseAddr("fd00::1"), OpenGuest: opened}, "subnet.dns"},
		{"no hook", executor.Subnet{Addr: netip.MustParsePrefix("10.77.0.2/24")}, "subnet"},
	} {
		s := spec
		s.Subnet = &c.sn
		if _, err := e.validate(&s); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: validate = %v, want a %s problem", c.name, err, c.field)
		}
	}
}

// TestShamSubnetSocket: the VMM inherits the guest's socket as fd 3 and
// the executor closes its own copy.
func TestShamSubnetSocket(t *testing.T) {
	e, spec := newSham(t)
	s := spec(`[ -S /proc/self/fd/3 ] && echo @@dms:o:fd3-socket; echo @@dms:exit:0`)
	var qemuEnd *os.File
	var dev subnet.Device
	s.Subnet = &executor.Subnet{Addr: netip.MustParsePrefix("10.77.0.2/24"), DNS: netip.MustParseAddr("10.77.0.1"),
		OpenGuest: func(context.Context) (*os.File, error) {
			var err error
			qemuEnd, dev, err = link.GuestPair(netip.MustParsePrefix("10.77.0.2/24"), netip.MustParseAddr("10.77.0.1"))
			return qemuEnd, err
		}}
	id, err := e.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if qemuEnd.Fd() != ^uintptr(0) {
		t.Error("the executor kept its copy of the guest's socket open")
	}
	res, err := e.Wait(t.Context(), id)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
	var out bytes.Buffer
	e.Logs(t.Context(), id, executor.LogOptions{}, &out, &out)
	if out.String() != "fd3-socket\n" {
		t.Errorf("the VMM said %q, want fd3-socket", out.String())
	}

	s.Subnet.OpenGuest = func(context.Context) (*os.File, error) { return nil, errors.New("no data path") }
	if _, err := e.Start(t.Context(), s); err == nil || !strings.Contains(err.Error(), "no data path") {
		t.Errorf("Start with a failing OpenGuest = %v", err)
	}
}
