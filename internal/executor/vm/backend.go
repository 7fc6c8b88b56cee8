package vm

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/internal/executor/vm/guest"
	"github.com/dmsnet/dms/internal/match"
)

// backend turns a machine into the command of a virtual machine monitor.
// The executor owns everything else: the process's life, the serial
// console (the command's stdout), the guest protocol and the Result. A
// backend's VM must:
//
//   - boot kernel with initrd and cmdline, cpus vCPUs and memory RAM;
//   - put the guest's first serial port (ttyS0) on stdout, and nothing
//     else there;
//   - exit when the guest reboots;
//   - attach rootfs, if set, as the first virtio block device (/dev/vda),
//     without writing to the file;
//   - share each share's directory over virtio-9p with its tag, or fail
//     command when it cannot (Firecracker has no 9p);
//   - when execSocket is set, listen on that unix socket and relay it to
//     a virtio-serial port named guest.ExecPort (Firecracker would use
//     vsock instead);
//   - when net is set, give the guest one virtio-net device with net.mac
//     whose frames travel, one per datagram, over the unix datagram
//     socket the VMM inherits as file descriptor net.fd (the executor
//     puts it in the command's ExtraFiles). No other network device.
//
// QEMU (-M microvm) is the one backend; docs/executors.md says how to add
// Firecracker.
type backend interface {
	name() string
	command(m machine) (*exec.Cmd, error)
}

// machine is one VM to boot.
type machine struct {
	kernel, initrd, rootfs string
	cmdline                string
	cpus                   int
	memory                 match.Bytes
	shares                 []share
	execSocket             string // exec's unix socket, "" for none
	net                    *netdev
}

// netdev is the guest's subnet interface.
type netdev struct {
	fd  int    // the VMM's descriptor of the socket: 3 + its index in ExtraFiles
	mac string // 02:67:0a:4d:00:02
}

// share is a host directory shared with the guest.
type share struct {
	tag, source string
	readOnly    bool
}

// qemu boots machines with QEMU's microvm machine type: no PCI, no
// firmware to speak of, virtio-mmio devices.
type qemu struct {
	path  string
	accel string
}

func (q qemu) name() string { return "qemu" }

func (q qemu) command(m machine) (*exec.Cmd, error) {
	args := []string{
		"-M", "microvm",
		"-accel", q.accel,
		"-smp", strconv.Itoa(m.cpus),
		"-m", strconv.FormatUint(uint64(m.memory>>20), 10) + "M",
		"-nodefaults", "-no-user-config", "-no-reboot",
		// No network device but the subnet's: a guest reaches neither the
		// host (user-mode networking's 10.0.2.2) nor a cloud metadata
		// address.
		"-nic", "none",
		"-display", "none", "-serial", "stdio",
		"-kernel", m.kernel,
		"-append", m.cmdline,
	}
	if q.accel == AccelKVM {
		args = append(args, "-cpu", "host")
	} else {
		args = append(args, "-cpu", "max")
	}
	if m.initrd != "" {
		args = append(args, "-initrd", m.initrd)
	}
	if m.rootfs != "" {
		args = append(args,
			"-drive", "id=root,if=none,format=raw,snapshot=on,file="+escape(m.rootfs),
			"-device", "virtio-blk-device,drive=root")
	}
	for i, s := range m.shares {
		fsdev := fmt.Sprintf("local,id=fs%d,path=%s,security_model=none", i, escape(s.source))
		if s.readOnly {
			fsdev += ",readonly=on"
		}
		args = append(args, "-fsdev", fsdev, "-device", "virtio-9p-device,fsdev=fs"+strconv.Itoa(i)+",mount_tag="+s.tag)
	}
	if m.execSocket != "" {
		args = append(args,
			"-chardev", "socket,id=exec,server=on,wait=off,path="+escape(m.execSocket),
			"-device", "virtio-serial-device,max_ports=2",
			"-device", "virtserialport,chardev=exec,name="+guest.ExecPort)
	}
	if m.net != nil {
		// A unix datagram socket: QEMU 7.2 (Debian bookworm) exchanges one
		// frame per datagram on it with send(2) and recv(2) both as
		// "socket,fd=N" and as the newer "dgram,local.type=fd,local.str=N"
		// (TestSubnetGuest passes with either); socket is in older QEMUs
		// too.
		args = append(args,
			"-netdev", "socket,id=subnet,fd="+strconv.Itoa(m.net.fd),
			"-device", "virtio-net-device,netdev=subnet,mac="+m.net.mac)
	}
	return exec.Command(q.path, args...), nil
}

// escape doubles the commas of a value in a QEMU option list.
func escape(v string) string { return strings.ReplaceAll(v, ",", ",,") }
