//go:build linux

package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/dmsnet/dms/internal/subnet"
)

// wireguard's TUN satisfies the data path's Device as it is.
var _ subnet.Device = tun.Device(nil)

// virtioNetHdrLen is the size of the header wireguard's TUN puts before
// each packet it writes when offloads are on; Write needs that much
// headroom (subnet.Offset leaves more).
const virtioNetHdrLen = 10

// OpenTUN creates TUN name inside the network namespace at netnsPath (a
// process's /proc/<pid>/ns/net or a bind mount such as
// /var/run/netns/<name>), with address addr (the allocation's address and
// the subnet's length: 10.77.0.2/24), a /32 route to subnet.Resolver
// through it from that address, MTU subnet.MTU, up, and IPv6
// disabled on it (no link-local address, router solicitations or MLD
// reports for the data path to drop). Closing the device removes the
// interface. Errors name the namespace and the step that failed.
//
// The calling goroutine's thread is not touched: the namespace is entered
// on a locked thread of its own, which is returned to dms's namespace
// afterwards (or, if that fails, left locked so that Go ends it).
func OpenTUN(netnsPath, name string, addr netip.Prefix) (subnet.Device, error) {
	if err := checkArgs(netnsPath, name, addr); err != nil {
		return nil, err
	}
	fail := func(step string, err error) error {
		return fmt.Errorf("link: TUN %s in network namespace %s: %s: %w", name, netnsPath, step, err)
	}
	target, err := netns.GetFromPath(netnsPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fail("open the namespace", fmt.Errorf("no such network namespace: %w", err))
		}
		return nil, fail("open the namespace", err)
	}
	defer target.Close()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, fail("create", fmt.Errorf("no TUN support on this host (/dev/net/tun: %w)", err))
	}

	dev, err := createIn(target, name)
	if err != nil {
		return nil, fail("create", err)
	}
	d := &device{Device: dev}
	go d.drainEvents()
	if err := configure(target, name, addr); err != nil {
		dev.Close()
		return nil, fail("configure", err)
	}
	return d, nil
}

// checkArgs refuses what cannot work before anything is created.
func checkArgs(netnsPath, name string, addr netip.Prefix) error {
	var problems []string
	if netnsPath == "" {
		problems = append(problems, "no network namespace path")
	}
	switch {
	case name == "":
		problems = append(problems, "no interface name")
	case len(name) >= unix.IFNAMSIZ:
		problems = append(problems, fmt.Sprintf("interface name %q is longer than %d bytes", name, unix.IFNAMSIZ-1))
	case strings.ContainsAny(name, "/: \t\n%\x00") || name == "." || name == "..":
		problems = append(problems, fmt.Sprintf("interface name %q is not a valid name", name))
	}
	switch {
	case !addr.IsValid():
		problems = append(problems, "invalid address prefix (want an IPv4 address with the subnet's length, e.g. 10.77.0.2/24)")
	case !addr.Addr().Is4():
		problems = append(problems, fmt.Sprintf("address %s is not IPv4 (the subnet is IPv4)", addr))
	case addr.Bits() < 1 || addr.Bits() > 30:
		problems = append(problems, fmt.Sprintf("address %s: the subnet's length must be /1 to /30", addr))
	case addr.Addr() == addr.Masked().Addr():
		problems = append(problems, fmt.Sprintf("address %s is the subnet's network address", addr))
	case addr.Addr() == broadcast(addr):
		problems = append(problems, fmt.Sprintf("address %s is the subnet's broadcast address", addr))
	}
	if len(problems) > 0 {
		return fmt.Errorf("link: TUN %q in network namespace %q: %s", name, netnsPath, strings.Join(problems, "; "))
	}
	return nil
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// createIn creates the TUN inside target, on a locked thread of a
// goroutine of its own: the kernel puts a TUN in the namespace of the
// thread that opens /dev/net/tun, and wireguard's CreateTUN also opens
// its netlink and ioctl sockets there.
func createIn(target netns.NsHandle, name string) (tun.Device, error) {
	type result struct {
		dev tun.Device
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread unless the thread is back in its own
		// namespace: a goroutine that ends locked ends its thread.
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("read the current namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter the namespace: %w", setnsError(err))}
			return
		}
		dev, err := createTUN(name)
		if err == nil {
			if err = disableIPv6(name); err != nil {
				dev.Close()
			}
		}
		if rerr := netns.Set(orig); rerr != nil {
			// The thread stays in the wrong namespace: leave it locked,
			// Go ends it with this goroutine.
			if err == nil {
				dev.Close()
			}
			ch <- result{err: fmt.Errorf("return to dms's network namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = tunError(name, err)
		}
		ch <- result{dev, err}
	}()
	r := <-ch
	return r.dev, r.err
}

// createTUN is wireguard's tun.CreateTUN (offloads on: IFF_VNET_HDR),
// except that it closes the file when the kernel refuses the name.
func createTUN(name string) (tun.Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	dev, err := tun.CreateTUNFromFile(f, subnet.MTU)
	if err != nil {
		f.Close()
		return nil, err
	}
	return dev, nil
}

// disableIPv6 keeps the kernel from giving the interface an IPv6
// link-local address and sending router solicitations and MLD reports
// through it: the subnet is IPv4, and the data path would only drop them.
// It runs on the thread inside the namespace (/proc/sys/net is the
// namespace of the thread that opens it). A kernel without IPv6 has
// nothing to disable.
func disableIPv6(name string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disable IPv6: %w", err)
	}
	return nil
}

// setnsError explains setns's errors.
func setnsError(err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("not a network namespace: %w", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("permission denied (dms needs CAP_SYS_ADMIN): %w", err)
	}
	return err
}

// tunError explains CreateTUN's errors.
func tunError(name string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		return fmt.Errorf("an interface %s already exists in the namespace: %w", name, err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("permission denied (dms needs CAP_NET_ADMIN): %w", err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("the kernel refused the TUN (an interface %s of another kind may exist): %w", name, err)
	}
	return err
}

// configure gives the interface its address and brings it up, through a
// netlink handle in target (wireguard's CreateTUN has set the MTU; it is
// set again so the device's promise does not hang on that).
func configure(target netns.NsHandle, name string, addr netip.Prefix) error {
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find the interface: %w", err)
	}
	if l.Attrs().MTU != subnet.MTU {
		if err := h.LinkSetMTU(l, subnet.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", subnet.MTU, err)
		}
	}
	ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("add address %s: %w", addr, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	// subnet.Resolver, the DNS address every subnet shares, through the
	// interface and from the allocation's address (not by the namespace's
	// default route, whatever other interface it has). Replaced, not
	// added: in a namespace that holds another subnet interface (a stale
	// one, or another attach), the newest interface answers for it, where an
	// add would fail with "file exists".
	rt := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: subnet.Resolver.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Src:       addr.Addr().AsSlice(),
		Scope:     netlink.SCOPE_LINK,
	}
	if err := h.RouteReplace(rt); err != nil {
		return fmt.Errorf("route %s: %w", subnet.Resolver, err)
	}
	return nil
}

// device is wireguard's TUN with its link events drained (wireguard's
// listeners block on a full event channel otherwise, and Close would wait
// for them) and a check of the headroom Write needs.
type device struct {
	tun.Device
}

func (d *device) drainEvents() {
	for range d.Events() {
	}
}

// Write implements subnet.Device.
func (d *device) Write(bufs [][]byte, offset int) (int, error) {
	if offset < virtioNetHdrLen {
		return 0, fmt.Errorf("link: write with %d bytes of headroom, want at least %d (subnet.Offset)", offset, virtioNetHdrLen)
	}
	return d.Device.Write(bufs, offset)
}
