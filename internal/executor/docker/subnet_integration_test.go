//go:build integration

package docker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/link"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

var (
	subnetAddr = netip.MustParsePrefix("10.77.0.2/24")
	subnetGW   = netip.MustParseAddr("10.77.0.1")
	dbAddr     = netip.MustParseAddr("10.77.0.5")
)

func requireTUN(t testing.TB) {
	t.Helper()
	requireDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (a TUN in the container's network namespace)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no TUN support: %v", err)
	}
}

// attacher is a Subnet whose AttachNetns opens a real TUN with
// link.OpenTUN, as the provider's data path does.
type attacher struct {
	mu       sync.Mutex
	devs     []subnet.Device
	attached time.Time
	netns    []string // what each call's path pointed at (readlink)
}

func (a *attacher) subnet() *executor.Subnet {
	return &executor.Subnet{Addr: subnetAddr, DNS: subnetGW, AttachNetns: a.attach}
}

func (a *attacher) attach(ctx context.Context, path string) error {
	target, _ := os.Readlink(path)
	dev, err := link.OpenTUN(path, executor.SubnetInterface, subnetAddr)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.devs = append(a.devs, dev)
	a.attached = time.Now()
	a.netns = append(a.netns, target)
	return nil
}

func (a *attacher) last() subnet.Device {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.devs[len(a.devs)-1]
}

func (a *attacher) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.devs {
		d.Close()
	}
}

// gateway plays the subnet's gateway on a device: it answers DNS queries
// to the gateway or subnet.Resolver, as the router does (db.internal →
// dbAddr, AAAA with no data, other names NXDOMAIN), and hands every other
// packet to pkts. queries receives the source of each query, to its
// destination.
type gateway struct {
	pkts    chan []byte
	queries chan netip.AddrPort
	to      chan netip.Addr
}

func serveGateway(t *testing.T, dev subnet.Device) *gateway {
	g := &gateway{pkts: make(chan []byte, 256), queries: make(chan netip.AddrPort, 256), to: make(chan netip.Addr, 256)}
	go func() {
		n := dev.BatchSize()
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, subnet.Offset+65535)
		}
		sizes := make([]int, n)
		for {
			k, err := dev.Read(bufs, sizes, subnet.Offset)
			if err != nil {
				close(g.pkts)
				return
			}
			for i := range k {
				p := bytes.Clone(bufs[i][subnet.Offset : subnet.Offset+sizes[i]])
				if reply := g.answer(p); reply != nil {
					b := append(make([]byte, subnet.Offset), reply...)
					if _, err := dev.Write([][]byte{b}, subnet.Offset); err != nil {
						t.Errorf("write DNS answer: %v", err)
					}
					continue
				}
				select {
				case g.pkts <- p:
				default:
				}
			}
		}
	}()
	return g
}

// answer returns the reply to p when it is a DNS query to the gateway.
func (g *gateway) answer(p []byte) []byte {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 17 {
		return nil
	}
	ihl := int(p[0]&0x0f) * 4
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	udp := p[ihl:]
	if dst != subnetGW && dst != subnet.Resolver || binary.BigEndian.Uint16(udp[2:]) != 53 {
		return nil
	}
	from := netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:]))
	select {
	case g.queries <- from:
		g.to <- dst
	default:
	}
	var q dns.Msg
	if q.Unpack(udp[8:]) != nil || len(q.Question) != 1 {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(&q)
	qu := q.Question[0]
	switch {
	case qu.Name == "db.internal." && qu.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qu.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IP(dbAddr.AsSlice())})
	case qu.Name == "db.internal.":
	default:
		m.Rcode = dns.RcodeNameError
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return subnettest.UDP(dst, from.Addr(), 53, from.Port(), out)
}

func execIn(t *testing.T, ex *docker.Executor, id string, cmd ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := ex.Exec(t.Context(), id, cmd, &out, &errb)
	if err != nil || code != 0 {
		t.Fatalf("exec %q: code %d, err %v, stdout %q, stderr %q", cmd, code, err, out.String(), errb.String())
	}
	return out.String()
}

// TestSubnetJoin: a container with a Subnet has dms0 with its address
// once Start returns; what it sends to another subnet address is read
// from the device with its address as the source; its resolver asks the
// subnet's DNS, from inside its namespace, through dms0.
func TestSubnetJoin(t *testing.T) {
	requireTUN(t)
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	a := &attacher{}
	t.Cleanup(a.close)
	spec := shell("sleep 300")
	spec.Subnet = a.subnet()
	called := time.Now()
	id, err := ex.Start(ctx, spec)
	returned := time.Now()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { ex.Remove(context.Background(), id) })
	if len(a.devs) != 1 {
		t.Fatalf("AttachNetns called %d times, want once", len(a.devs))
	}
	if !strings.HasPrefix(a.netns[0], "net:[") {
		t.Errorf("AttachNetns path pointed at %q, want a network namespace", a.netns[0])
	}
	info, err := rawClient(t).ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	started, _ := time.Parse(time.RFC3339Nano, info.Container.State.StartedAt)
	t.Logf("container started (daemon's StartedAt) → AttachNetns done: %s; whole Start: %s",
		a.attached.Sub(started).Round(time.Microsecond), returned.Sub(called).Round(time.Millisecond))
	gw := serveGateway(t, a.last())

	// The interface.
	if mtu := strings.TrimSpace(execIn(t, ex, id, "cat", "/sys/class/net/dms0/mtu")); mtu != fmt.Sprint(subnet.MTU) {
		t.Errorf("dms0 MTU %s, want %d", mtu, subnet.MTU)
	}
	if out := execIn(t, ex, id, "ip", "-4", "addr", "show", "dev", "dms0"); !strings.Contains(out, "inet "+subnetAddr.String()) {
		t.Errorf("dms0 has not %s:\n%s", subnetAddr, out)
	}

	// A datagram to another subnet address (busybox's nc has no UDP; its
	// tftp sends a read request: 0 1 "hello" 0 "octet" 0).
	execIn(t, ex, id, "sh", "-c", "tftp -g -r hello -l /tmp/x 10.77.0.9 9999 >/dev/null 2>&1 &")
	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case p, ok := <-gw.pkts:
			if !ok {
				t.Fatal("device closed")
			}
			if len(p) < 28 || p[9] != 17 || netip.AddrFrom4([4]byte(p[16:20])) != netip.MustParseAddr("10.77.0.9") {
				continue
			}
			found = true
			if src := netip.AddrFrom4([4]byte(p[12:16])); src != subnetAddr.Addr() {
				t.Errorf("source %s, want %s", src, subnetAddr.Addr())
			}
			if port := binary.BigEndian.Uint16(p[22:]); port != 9999 || !bytes.HasPrefix(p[28:], []byte("\x00\x01hello\x00")) {
				t.Errorf("port %d payload %q", port, p[28:])
			}
		case <-deadline:
			t.Fatal("the datagram sent in the container was not read from the device within 10s")
		}
	}

	// The resolver.
	checkResolver(t, ex, id)
	select {
	case from := <-gw.queries:
		if from.Addr() != subnetAddr.Addr() {
			t.Errorf("the DNS query came from %s, want %s (from inside the container, through dms0)", from, subnetAddr.Addr())
		}
	default:
		t.Error("no DNS query reached the subnet's DNS")
	}
}

// TestSubnetAttachFails: an AttachNetns error fails the start, says the
// subnet could not be attached, and leaves no container.
func TestSubnetAttachFails(t *testing.T) {
	requireTUN(t)
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	label := map[string]string{executor.LabelAllocation: fmt.Sprintf("subnet-fail-%d", time.Now().UnixNano())}
	spec := shell("sleep 300")
	spec.Labels = label
	calls := 0
	spec.Subnet = &executor.Subnet{Addr: subnetAddr, DNS: subnetGW, AttachNetns: func(context.Context, string) error {
		calls++
		return errors.New("no route for this allocation")
	}}
	_, err := ex.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "subnet could not be attached") || !strings.Contains(err.Error(), "no route for this allocation") {
		t.Fatalf("Start = %v, want the subnet's failure", err)
	}
	if calls != 1 {
		t.Errorf("AttachNetns called %d times", calls)
	}
	left, err := ex.List(ctx, label)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d containers left after the failed start", len(left))
	}
}

// TestSubnetReattach: after dms restarts (its TUN gone), AttachSubnet
// gives the running container its interface again; a container that
// ended is refused.
func TestSubnetReattach(t *testing.T) {
	requireTUN(t)
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	a := &attacher{}
	t.Cleanup(a.close)
	spec := shell("sleep 300")
	spec.Subnet = a.subnet()
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}

	// "dms dies": the executor goes, the TUN with it.
	ex.Close()
	a.close()
	ex2 := newExecutor(t, docker.Config{})
	t.Cleanup(func() { ex2.Remove(context.Background(), id) })
	if out := execIn(t, ex2, id, "ls", "/sys/class/net"); strings.Contains(out, "dms0") {
		t.Fatalf("dms0 outlived its device: %s", out)
	}
	if err := ex2.AttachSubnet(ctx, id, a.subnet()); err != nil {
		t.Fatalf("AttachSubnet: %v", err)
	}
	if out := execIn(t, ex2, id, "ip", "-4", "addr", "show", "dev", "dms0"); !strings.Contains(out, "inet "+subnetAddr.String()) {
		t.Errorf("after AttachSubnet, dms0 has not %s:\n%s", subnetAddr, out)
	}
	if err := ex2.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := ex2.AttachSubnet(ctx, id, a.subnet()); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("AttachSubnet on an ended container = %v, want not running", err)
	}
}

// TestSubnetShortRun: a container that ends at once, perhaps before its
// subnet could be attached, is a run like any other: Start succeeds and
// Wait reports how it ended.
func TestSubnetShortRun(t *testing.T) {
	requireTUN(t)
	ex := newExecutor(t, docker.Config{})
	a := &attacher{}
	t.Cleanup(a.close)
	for i := range 3 {
		spec := shell(fmt.Sprintf("exit %d", i+3))
		spec.Subnet = a.subnet()
		res, _, _ := run(t, ex, spec)
		if res.ExitCode != i+3 || res.Reason != executor.ReasonExited {
			t.Errorf("run %d: %+v", i, res)
		}
	}
	t.Logf("attached %d of 3 (the others had ended)", len(a.devs))
}

// TestSubnetInSandbox: a start with a subnet after the first takes a
// network sandbox made for subnet jobs: the interface is attached to the
// sandbox's namespace before the job starts (the job sees dms0 at once),
// the job's resolver is the sandbox's (search internal, the options) and
// asks subnet.Resolver through dms0 from the job's subnet address.
func TestSubnetInSandbox(t *testing.T) {
	requireTUN(t)
	ctx := t.Context()
	labels := sandboxLabels(t)
	ex := newExecutor(t, docker.Config{Labels: labels})
	cli := rawClient(t)
	a := &attacher{}
	t.Cleanup(a.close)
	spec := shell("sleep 300")
	spec.Subnet = a.subnet()
	first, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	t.Cleanup(func() { ex.Remove(context.Background(), first) })
	if in := inspect(t, cli, first); in.HostConfig.NetworkMode != docker.JobNetwork {
		t.Fatalf("the first start (no sandbox ready) is on %q, want %s", in.HostConfig.NetworkMode, docker.JobNetwork)
	}
	if len(docker.ReadySandboxes(ex)) != 0 {
		t.Error("a subnet start refilled the plain jobs' sandboxes")
	}
	var sb string
	poll.Eventually(t, 60*time.Second, "a ready subnet sandbox", func() bool {
		ready := docker.ReadySubnetSandboxes(ex)
		if len(ready) > 0 {
			sb = ready[0]
		}
		return sb != ""
	})
	sbInfo := inspect(t, cli, sb)
	if got := sbInfo.HostConfig.DNS; len(got) != 1 || got[0] != subnet.Resolver {
		t.Fatalf("subnet sandbox's DNS %v, want %s", got, subnet.Resolver)
	}
	sbNetns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", sbInfo.State.Pid))
	if err != nil {
		t.Fatal(err)
	}

	spec = shell("ls /sys/class/net > /tmp/at-start; sleep 300")
	spec.Subnet = a.subnet()
	id, err := ex.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { ex.Remove(context.Background(), id) })
	if want := container.NetworkMode("container:" + sb); inspect(t, cli, id).HostConfig.NetworkMode != want {
		t.Fatalf("network mode %q, want %q", inspect(t, cli, id).HostConfig.NetworkMode, want)
	}
	if len(a.devs) != 2 || a.netns[1] != sbNetns {
		t.Fatalf("AttachNetns calls %d, the second in %v, want the sandbox's %s", len(a.devs), a.netns, sbNetns)
	}
	gw := serveGateway(t, a.last())
	poll.Eventually(t, 10*time.Second, "the job's first command ran", func() bool {
		var out bytes.Buffer
		code, err := ex.Exec(ctx, id, []string{"cat", "/tmp/at-start"}, &out, io.Discard)
		return err == nil && code == 0 && out.Len() > 0
	})
	if out := execIn(t, ex, id, "cat", "/tmp/at-start"); !strings.Contains(out, "dms0") {
		t.Errorf("dms0 was not there when the job started: %q", out)
	}
	if out := execIn(t, ex, id, "ip", "-4", "addr", "show", "dev", "dms0"); !strings.Contains(out, "inet "+subnetAddr.String()) {
		t.Errorf("dms0 has not %s:\n%s", subnetAddr, out)
	}
	checkResolver(t, ex, id)
	select {
	case from := <-gw.queries:
		if to := <-gw.to; from.Addr() != subnetAddr.Addr() || to != subnet.Resolver {
			t.Errorf("the DNS query went from %s to %s, want from %s to %s (through dms0)", from, to, subnetAddr.Addr(), subnet.Resolver)
		}
	default:
		t.Error("no DNS query reached the subnet's DNS")
	}

	// Remove takes the sandbox; Close leaves none.
	if err := ex.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, sb, client.ContainerInspectOptions{}); err == nil {
		t.Errorf("sandbox %s left after its job was removed", sb[:12])
	}
	if err := ex.Remove(ctx, first); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, "the next subnet sandbox", func() bool { return len(docker.ReadySubnetSandboxes(ex)) > 0 })
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
	if left := sandboxes(t, cli, labels); len(left) != 0 {
		t.Fatalf("%d sandboxes left after Close", len(left))
	}
}

// checkResolver checks a subnet job's resolver from inside its container:
// the resolv.conf options, and db (dbAddr) answered by its .internal name and by
// the search domain.
func checkResolver(t *testing.T, ex *docker.Executor, id string) {
	t.Helper()
	resolv := execIn(t, ex, id, "cat", "/etc/resolv.conf")
	for _, want := range []string{"search internal", "ndots:1", "timeout:1", "attempts:3"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if out := execIn(t, ex, id, "nslookup", "db.internal"); !strings.Contains(out, dbAddr.String()) {
		t.Errorf("nslookup db.internal did not answer %s:\n%s", dbAddr, out)
	}
	if out := execIn(t, ex, id, "nslookup", "db"); !strings.Contains(out, dbAddr.String()) {
		t.Errorf("nslookup db (the search domain internal) did not answer %s:\n%s", dbAddr, out)
	}
}
