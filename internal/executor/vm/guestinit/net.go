//go:build linux && amd64

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// subnetModules are the modules only the subnet interface needs:
// virtio_net and what it links against (besides the virtio core).
var subnetModules = map[string]bool{"failover.ko": true, "net_failover.ko": true, "virtio_net.ko": true}

// isNetModule tells the modules the subnet interface needs: the virtio
// core and virtio-mmio, and virtio_net with what it links against.
func isNetModule(name string) bool {
	return strings.HasPrefix(name, "virtio") || subnetModules[name]
}

// setUpNet configures the guest's subnet interface: it loads its
// modules, brings lo up, finds the virtio-net device by its MAC, renames
// it, gives it its address and MTU, turns IPv6 off on it, brings it up
// (the address's prefix gives the subnet's route; there is no default
// route) and writes the resolver configuration into the root the payload
// runs in.
func setUpNet(n *guest.Net, root string) error {
	addr, err := netip.ParsePrefix(n.Addr)
	if err != nil || !addr.Addr().Is4() {
		return fmt.Errorf("subnet: address %q is not an IPv4 prefix", n.Addr)
	}
	if err := loadModulesWith("/etc/dms/modules", isNetModule); err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("subnet: socket: %w", err)
	}
	defer unix.Close(fd)
	if err := ifUp(fd, "lo"); err != nil {
		return fmt.Errorf("subnet: lo: %w", err)
	}
	name, err := findInterface(strings.ToLower(n.MAC), 10*time.Second)
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	if n.Name != "" && name != n.Name {
		if err := ifRename(fd, name, n.Name); err != nil {
			return fmt.Errorf("subnet: rename %s to %s: %w", name, n.Name, err)
		}
		name = n.Name
	}
	// The subnet is IPv4 only: no IPv6 link-local address, router
	// solicitations or duplicate address probes for the link to drop.
	os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	if n.MTU > 0 {
		ifr.SetUint32(uint32(n.MTU))
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("subnet: %s: MTU %d: %w", name, n.MTU, err)
		}
	}
	a := addr.Addr().As4()
	ifr.SetInet4Addr(a[:])
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("subnet: %s: address %s: %w", name, addr, err)
	}
	m := [4]byte{}
	for i := range addr.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	ifr.SetInet4Addr(m[:])
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("subnet: %s: netmask /%d: %w", name, addr.Bits(), err)
	}
	if err := ifUp(fd, name); err != nil {
		return fmt.Errorf("subnet: %s: %w", name, err)
	}
	if n.DNS != "" {
		// Not fatal: addresses work without names.
		if err := writeResolvConf(root, n.DNS); err != nil {
			bootLog("guestinit: subnet: %v", err)
		}
	}
	return nil
}

// ifUp sets IFF_UP on the interface called name.
func ifUp(fd int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// ifRename renames a (down) interface: SIOCSIFNAME takes the new name
// in the request's union, which unix.Ifreq has no setter for.
func ifRename(fd int, from, to string) error {
	var req struct {
		name, newname [unix.IFNAMSIZ]byte
		_             [8]byte // the rest of the union
	}
	if len(from) >= unix.IFNAMSIZ || len(to) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name too long")
	}
	copy(req.name[:], from)
	copy(req.newname[:], to)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFNAME, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return errno
	}
	return nil
}

// findInterface waits for the network interface whose MAC is mac (the
// virtio-net device registers when its module's driver probes it).
func findInterface(mac string, timeout time.Duration) (string, error) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		paths, _ := filepath.Glob("/sys/class/net/*/address")
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == mac {
				return filepath.Base(filepath.Dir(p)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no network interface with MAC %s (does the kernel have virtio_net, failover and net_failover?)", mac)
		}
	}
}

// writeResolvConf makes dns the resolver of the root the payload runs
// in. The initramfs is writable, and so is a root device (QEMU's
// snapshot keeps the image file untouched); a read-only root
// (squashfs, erofs) that has an /etc/resolv.conf gets one bound over it
// from the initramfs.
func writeResolvConf(root, dns string) error {
	conf := []byte("nameserver " + dns + "\nsearch internal\noptions ndots:1\n")
	os.MkdirAll("/etc", 0o755)
	if err := os.WriteFile("/etc/resolv.conf", conf, 0o644); err != nil {
		return fmt.Errorf("write /etc/resolv.conf: %w", err)
	}
	if root == "/" {
		return nil
	}
	target := filepath.Join(root, "etc", "resolv.conf")
	os.MkdirAll(filepath.Dir(target), 0o755)
	os.Remove(target) // a symlink (systemd-resolved's) would be followed
	if err := os.WriteFile(target, conf, 0o644); err == nil {
		return nil
	}
	if err := syscall.Mount("/etc/resolv.conf", target, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("the root's /etc/resolv.conf is not writable and cannot be bound over: %w", err)
	}
	return nil
}
