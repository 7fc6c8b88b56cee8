package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/internal/executor"
)

// A container joins its deployment's subnet (Spec.Subnet) through an
// interface inside its network namespace that the provider's data path
// creates (a TUN, dms0): Start calls Subnet.AttachNetns with the
// namespace and returns only when that succeeded — for a container in a
// network sandbox (sandbox.go) with the sandbox's, before the container
// is created, else once the container has started; when it fails, the
// container (or the sandbox) is removed and Start fails. The
// interface does not outlive dms, so after a restart the caller calls
// AttachSubnet for every running container it finds again.
//
// DNS: the container's resolver is Docker's embedded one (127.0.0.11, on
// the job network as on every user-defined network), told to forward to
// Subnet.DNS with the search domain "internal" (HostConfig.DNS,
// DNSSearch, DNSOptions) — or, in a sandbox, which was made before its
// subnet was known, to subnet.Resolver, which every subnet's DNS answers
// and dms0 routes (TestSubnetInSandbox). The embedded resolver sends a forwarded query
// from inside the container's network namespace (only loopback servers
// are asked from the host's), so the query leaves through dms0 from the
// container's subnet address and the gateway answers it — as
// TestSubnetJoin checks. This keeps Docker's resolv.conf handling (and
// its answers for the job network's container names) and needs no file
// of dms's on the host that a bind-mounted resolv.conf would, with its
// lifetime to manage across restarts.

// subnetDNSOptions make a lookup of a bare name try <name>.internal first,
// and a lost answer cost a second, not five.
var subnetDNSOptions = []string{"ndots:1", "timeout:1", "attempts:3"}

// validateSubnet checks spec.Subnet for docker with the OCI runtime
// runtime ("" is the daemon's default).
func validateSubnet(v *executor.ValidationError, spec *executor.Spec, runtime string) {
	s := spec.Subnet
	if s == nil {
		return
	}
	if strings.Contains(runtime, "runsc") || strings.Contains(runtime, "kata") {
		v.Add("subnet", "this provider runs containers with %s, whose own network stack would not see an interface in the container's namespace", runtime)
	}
	switch spec.Network {
	case executor.NetworkHost:
		v.Add("network", "host: a container on the host's network cannot join a subnet (its interface would be the host's)")
	case executor.NetworkNone:
		v.Add("network", "none: a container without a network cannot join a subnet (it has no resolver to point at the subnet's DNS)")
	}
	switch {
	case !s.Addr.IsValid():
		v.Add("subnet.addr", "required: the container's IPv4 address with the subnet's length (10.77.0.2/24)")
	case !s.Addr.Addr().Is4():
		v.Add("subnet.addr", "%s is not an IPv4 prefix (the subnet is IPv4)", s.Addr)
	case s.Addr.Bits() < 1 || s.Addr.Bits() > 30:
		v.Add("subnet.addr", "%s: the subnet's length must be /1 to /30", s.Addr)
	case !s.DNS.IsValid():
		v.Add("subnet.dns", "required: the subnet's gateway address")
	case !s.DNS.Is4() || !s.Addr.Masked().Contains(s.DNS) || s.DNS == s.Addr.Addr():
		v.Add("subnet.dns", "%s is not another address of the subnet %s", s.DNS, s.Addr.Masked())
	}
	if s.AttachNetns == nil {
		v.Add("subnet", "no AttachNetns hook: the docker executor needs it to give the container its subnet interface")
	}
}

// subnetHostConfig points the container's resolver at the subnet's DNS.
func subnetHostConfig(hc *container.HostConfig, s *executor.Subnet) {
	if s == nil {
		return
	}
	subnetResolver(hc, s.DNS)
}

// subnetResolver makes Docker's resolver forward to dns, with the search
// domain "internal" and subnetDNSOptions.
func subnetResolver(hc *container.HostConfig, dns netip.Addr) {
	hc.DNS = []netip.Addr{dns}
	hc.DNSSearch = []string{"internal"}
	hc.DNSOptions = subnetDNSOptions
}

// errNotRunning: the container has no namespace to attach to, as it is
// not running (it may have ended already).
var errNotRunning = errors.New("the container is not running")

// attachSubnet calls s.AttachNetns with the network namespace of the
// running container id. The namespace is held open during the call and
// handed over as /proc/self/fd/N, not /proc/<pid>/ns/net: a PID can be
// reused once the container's process ended, and then that path would be
// another process's namespace. The process's /proc directory is opened
// first (what is opened under it is that process's, or fails once it
// ended), and the container is inspected again afterwards, so the
// process is known to have been the container's.
func (e *Executor) attachSubnet(ctx context.Context, id string, s *executor.Subnet) error {
	pid, err := e.runningPID(ctx, id)
	if err != nil {
		return err
	}
	proc, err := os.Open(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errNotRunning
		}
		return fmt.Errorf("open the container's process: %w", err)
	}
	defer proc.Close()
	nsfd, err := unix.Openat(int(proc.Fd()), "ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			return errNotRunning
		}
		return fmt.Errorf("open the container's network namespace: %w", err)
	}
	ns := os.NewFile(uintptr(nsfd), "netns")
	defer ns.Close()
	if err := checkCgroup(proc, pid, id); err != nil {
		return err
	}
	again, err := e.runningPID(ctx, id)
	if err != nil {
		return err
	}
	if again != pid {
		return errNotRunning // it ended meanwhile
	}
	began := time.Now()
	if err := s.AttachNetns(ctx, fmt.Sprintf("/proc/self/fd/%d", ns.Fd())); err != nil {
		return err
	}
	e.log.Debug("subnet attached", "container", id[:min(12, len(id))], "addr", s.Addr, "took", time.Since(began).Round(time.Microsecond))
	return nil
}

// checkCgroup makes sure process pid as dms sees it (proc, its /proc
// directory) is the container's: the daemon reports PIDs in its own PID
// namespace, and when dms runs in another one (in a container without
// --pid=host), /proc/<pid> is some other process. Every cgroup layout
// Docker makes (cgroupfs, systemd, v1, v2, nested) names the container's
// full ID in its processes' cgroup.
func checkCgroup(proc *os.File, pid int, id string) error {
	fd, err := unix.Openat(int(proc.Fd()), "cgroup", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			return errNotRunning
		}
		return fmt.Errorf("open the container's cgroup: %w", err)
	}
	f := os.NewFile(uintptr(fd), "cgroup")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errNotRunning
		}
		return fmt.Errorf("read the container's cgroup: %w", err)
	}
	if !strings.Contains(string(b), id) {
		return fmt.Errorf("process %d is not the container's: dms must see the Docker daemon's PIDs (run it in the host's PID namespace)", pid)
	}
	return nil
}

// runningPID returns the PID of the container's first process.
func (e *Executor) runningPID(ctx context.Context, id string) (int, error) {
	info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return 0, errNotRunning
		}
		return 0, e.classify("inspect "+id[:min(12, len(id))], err)
	}
	st := info.Container.State
	if st == nil || !st.Running || st.Pid <= 0 {
		return 0, errNotRunning
	}
	return st.Pid, nil
}

// startSubnet attaches a just-started container to its subnet. A
// container that ended before it could be attached is left to be
// reported as it ended; any other failure removes the container.
func (e *Executor) startSubnet(ctx context.Context, id string, s *executor.Subnet) error {
	err := e.attachSubnet(ctx, id, s)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotRunning):
		e.log.Debug("container ended before its subnet was attached", "container", id[:12])
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, rerr := e.cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
		e.log.Warn("remove container after the subnet failed", "container", id[:12], "err", rerr)
	}
	return fmt.Errorf("docker: the subnet could not be attached to the container (%s), which was removed: %w", s.Addr, err)
}

// AttachSubnet implements executor.SubnetAttacher: it gives a running
// container of this executor its subnet interface again, after dms
// restarted (the interface ended with the previous dms). Start does it
// itself. A container that is not running is refused.
func (e *Executor) AttachSubnet(ctx context.Context, id string, s *executor.Subnet) error {
	if s == nil {
		return errors.New("docker: attach subnet: no subnet")
	}
	var v executor.ValidationError
	validateSubnet(&v, &executor.Spec{Subnet: s}, e.cfg.Runtime)
	if err := v.Err(); err != nil {
		return err
	}
	t, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	if err := e.attachSubnet(ctx, t.id, s); err != nil {
		return fmt.Errorf("docker: attach subnet %s to %s: %w", s.Addr, t.id[:12], err)
	}
	return nil
}
