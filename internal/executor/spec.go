package executor

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// Spec describes one workload. Exactly one of Image (docker), Module (wasm)
// or VM (vm) says what runs; the rest means the same on every backend,
// except where a field's comment says otherwise. A backend refuses, with a
// *ValidationError, any field it cannot honour rather than ignore it.
//
// The caller (the allocation) is trusted: host paths in Mounts, VM.Kernel
// and the like must be ones dms prepared, not raw user input.
type Spec struct {
	// Image is the Docker image reference (docker only). It is pulled only
	// when it is absent.
	Image string `json:"image,omitempty"`
	// Module is the WebAssembly module, WASI preview1 (wasm only). Its
	// SHA-256 keys the compiled-module cache.
	Module []byte `json:"module,omitempty"`
	// VM is the kernel and disk images of a microVM (vm only).
	VM *VMImage `json:"vm,omitempty"`

	// Entrypoint and Command together are the program and its arguments:
	// argv = Entrypoint ++ Command. At least one must be given. For docker
	// an empty Entrypoint keeps the image's ENTRYPOINT; for wasm and vm
	// argv[0] is the program (its name for wasm, a path in the guest for
	// vm).
	Entrypoint []string `json:"entrypoint,omitempty"`
	Command    []string `json:"command,omitempty"`
	// ImageDefaults (docker only) runs the image's own ENTRYPOINT and CMD
	// when Entrypoint and Command are both empty; without it an empty
	// command is refused.
	ImageDefaults bool `json:"image_defaults,omitempty"`
	// Env is the workload's environment.
	Env map[string]string `json:"env,omitempty"`
	// WorkDir is the working directory, an absolute path in the guest.
	WorkDir string `json:"workdir,omitempty"`

	Resources Resources `json:"resources"`
	// Ports are published from the guest to the host (docker only).
	Ports []Port `json:"ports,omitempty"`
	// Mounts are host directories shared with the guest; what the guest
	// writes to a writable one stays in the host directory.
	Mounts []Mount `json:"mounts,omitempty"`
	// Network is the network mode; "" is the backend's default (for
	// docker the job network, a bridge with the provider's block list, as
	// for bridge; none for vm and wasm).
	Network NetworkMode `json:"network,omitempty"`
	// Subnet, when set, joins the instance to its deployment's private
	// subnet (docker and vm; wasm refuses it: WASI preview 1 has no
	// sockets). It is beside Network, not instead of it: a docker
	// container keeps its job network for the Internet.
	Subnet *Subnet `json:"subnet,omitempty"`
	// Privileged asks for a privileged container (docker only, and only if
	// the provider's docker.Config allows it).
	Privileged bool `json:"privileged,omitempty"`

	// Labels are attached to the instance; List finds instances by them.
	// Keys starting with "dms." are dms's own (LabelAllocation and the
	// like); those the executor sets itself (LabelManaged) are refused.
	Labels map[string]string `json:"labels,omitempty"`
	// Timeout, when positive, ends the workload that long after it started
	// with ReasonTimedOut.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// VMImage is what a microVM boots: a kernel, and an initramfs or a root
// filesystem image (or both: an initramfs that mounts the rootfs). Paths
// are on the host.
type VMImage struct {
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd,omitempty"`
	// Rootfs is a raw disk image given to the guest as /dev/vda. The
	// guest sees a private copy-on-write view; the file is never written.
	Rootfs string `json:"rootfs,omitempty"`
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string `json:"kernel_args,omitempty"`
}

// Resources are the limits of one instance. Zero means the backend's
// default (docker: no limit; vm: 1 vCPU and vm.Config.DefaultMemory; wasm:
// wasm.Config.MaxMemoryPages).
type Resources struct {
	// CPU is in thousandths of a core (docker: CFS quota; vm: vCPUs,
	// rounded up to whole cores; wasm: a module runs on one thread, and
	// below one core a cgroup CFS quota on that thread bounds it).
	CPU match.MilliCPU `json:"cpu,omitempty"`
	// Memory is the memory limit (docker: RAM with no extra swap; vm: the
	// guest's RAM; wasm: linear memory, rounded up to 64 KiB pages).
	Memory match.Bytes `json:"memory,omitempty"`
	// PIDs limits the number of processes and threads (docker; wasm and
	// vm have nothing to limit: a module spawns nothing, and a VM's
	// processes are its own kernel's business).
	PIDs int64 `json:"pids,omitempty"`
	// Disk limits the writable layer where the backend supports it
	// (docker with docker.Config.DiskQuota); elsewhere it is accounting
	// only.
	Disk match.Bytes `json:"disk,omitempty"`
	// GPUs are the host's devices given to the instance, by Index (as
	// nvidia-smi or rocm-smi number them) and Vendor (docker only).
	GPUs []match.GPU `json:"gpus,omitempty"`
}

// The GPU vendors the executors know.
const (
	GPUNvidia = "nvidia"
	GPUAMD    = "amd"
	GPUIntel  = "intel"
)

// Port publishes a guest port on the host.
type Port struct {
	// Guest is the port inside the instance.
	Guest uint16 `json:"guest"`
	// Host is the host port; 0 lets the backend choose (List reports it).
	Host uint16 `json:"host,omitempty"`
	// Protocol is "tcp" (the default) or "udp".
	Protocol string `json:"protocol,omitempty"`
	// HostIP is the host address to bind; "" means all.
	HostIP string `json:"host_ip,omitempty"`
}

// Subnet is how an instance joins its deployment's subnet. The executor
// makes the instance's interface exist (docker: a network namespace; vm: a
// tap) and hands it to the provider's data path through the two hooks; it
// configures the guest's side: Addr on the interface (named
// SubnetInterface), a route for the subnet, and DNS as the resolver with
// the search domain "internal". No interface of the host is involved: the
// docker container's TUN lives in its own namespace and the VM's frames
// travel over a socket, so the host never routes a subnet packet.
type Subnet struct {
	// Addr is the instance's address with the subnet's length:
	// 10.77.0.2/24.
	Addr netip.Prefix `json:"addr"`
	// DNS is the subnet's gateway, which answers <name>.internal and
	// forwards other names to the provider's resolver.
	DNS netip.Addr `json:"dns"`
	// AttachNetns (docker) is called once the container's network
	// namespace exists, with a path to it, after every start of the
	// container, before Start returns (and by AttachSubnet after a
	// restart). It creates the interface inside that namespace. The path
	// (/proc/self/fd/N: the executor holds the namespace open, so a
	// reused PID cannot point elsewhere) is valid only during the call.
	AttachNetns func(ctx context.Context, netns string) error `json:"-"`
	// OpenGuest (vm) returns one end of a datagram socket pair already
	// joined to the data path, carrying the guest's Ethernet frames one
	// per datagram; the executor gives it to QEMU's virtio-net device
	// (-netdev socket,fd=N) and closes its copy.
	OpenGuest func(ctx context.Context) (*os.File, error) `json:"-"`
}

// SubnetInterface is the name of the subnet's interface in a container
// or guest.
const SubnetInterface = "dms0"

// Mount shares a host directory with the guest.
type Mount struct {
	// Source is an absolute path on the host.
	Source string `json:"source"`
	// Target is an absolute path in the guest.
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// NetworkMode is how an instance reaches the network.
type NetworkMode string

// The network modes. Not every backend has every mode: vm and wasm have
// only NetworkNone.
const (
	NetworkDefault NetworkMode = ""
	NetworkNone    NetworkMode = "none"
	NetworkBridge  NetworkMode = "bridge"
	NetworkHost    NetworkMode = "host"
)

// Labels with a meaning to dms.
const (
	// LabelManaged is set by the executor on everything it creates; List
	// and re-attach consider only instances that carry it.
	LabelManaged = "dms.managed"
	// LabelAllocation names the allocation an instance belongs to; the
	// allocation sets it so it can find its instance again after a
	// restart.
	LabelAllocation = "dms.allocation"
)

// Argv returns Entrypoint ++ Command.
func (s *Spec) Argv() []string {
	return append(slices.Clip(s.Entrypoint), s.Command...)
}

// Validate checks what every backend agrees on and returns a
// *ValidationError listing every problem, or nil. Backends check the rest
// (which source they need, which fields they support) in Start.
func (s *Spec) Validate() error {
	var v ValidationError
	sources := 0
	if s.Image != "" {
		sources++
	}
	if s.Module != nil {
		sources++
	}
	if s.VM != nil {
		sources++
		if s.VM.Kernel == "" {
			v.Add("vm.kernel", "required")
		} else {
			checkHostPath(&v, "vm.kernel", s.VM.Kernel)
		}
		if s.VM.Initrd != "" {
			checkHostPath(&v, "vm.initrd", s.VM.Initrd)
		}
		if s.VM.Rootfs != "" {
			checkHostPath(&v, "vm.rootfs", s.VM.Rootfs)
		}
	}
	switch {
	case sources == 0:
		v.Add("image", "missing: give an image (docker), a module (wasm) or a vm kernel (vm)")
	case sources > 1:
		v.Add("image", "give only one of image, module and vm")
	}
	if s.Image != "" && strings.ContainsAny(s.Image, " \t\n") {
		v.Add("image", "%q contains white space", s.Image)
	}
	if s.Module != nil && len(s.Module) == 0 {
		v.Add("module", "empty")
	}

	argv := s.Argv()
	switch {
	case len(argv) == 0 && s.ImageDefaults && s.Image != "":
		// The image's own entrypoint and command run.
	case len(argv) == 0:
		v.Add("command", "empty: give the program to run and its arguments")
	case argv[0] == "":
		v.Add("command", "the program name is empty")
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			v.Add("command", "argument %d contains a NUL byte", i)
		}
	}
	for _, k := range mapkeys.Sorted(s.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.Add("env", "bad variable name %q", k)
		}
		if strings.ContainsRune(s.Env[k], 0) {
			v.Add("env", "value of %s contains a NUL byte", k)
		}
	}
	if s.WorkDir != "" && !path.IsAbs(s.WorkDir) {
		v.Add("workdir", "%q is not an absolute path", s.WorkDir)
	}

	r := s.Resources
	if r.CPU < 0 {
		v.Add("resources.cpu", "negative (%d millicores)", int64(r.CPU))
	}
	if r.Memory > math.MaxInt64 {
		v.Add("resources.memory", "out of range: %d bytes (negative, or over 8 EiB)", uint64(r.Memory))
	}
	if r.PIDs < 0 {
		v.Add("resources.pids", "negative (%d)", r.PIDs)
	}
	if r.Disk > math.MaxInt64 {
		v.Add("resources.disk", "out of range: %d bytes (negative, or over 8 EiB)", uint64(r.Disk))
	}
	seenGPU := map[int]bool{}
	for i, g := range r.GPUs {
		f := fmt.Sprintf("resources.gpus[%d]", i)
		switch g.Vendor {
		case GPUNvidia, GPUAMD, GPUIntel:
		default:
			v.Add(f+".vendor", "%q is not one of nvidia, amd, intel", g.Vendor)
		}
		if g.Index < 0 {
			v.Add(f+".index", "negative (%d)", g.Index)
		}
		if seenGPU[g.Index] {
			v.Add(f+".index", "GPU %d given twice", g.Index)
		}
		seenGPU[g.Index] = true
	}

	seenPort := map[string]bool{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.Guest == 0 {
			v.Add(f+".guest", "required (1-65535)")
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			v.Add(f+".protocol", "%q is not tcp or udp", p.Protocol)
		}
		key := fmt.Sprintf("%d/%s", p.Guest, proto)
		if seenPort[key] {
			v.Add(f, "guest port %s published twice", key)
		}
		seenPort[key] = true
	}

	seenTarget := map[string]bool{}
	for i, m := range s.Mounts {
		f := fmt.Sprintf("mounts[%d]", i)
		checkHostPath(&v, f+".source", m.Source)
		switch {
		case m.Target == "":
			v.Add(f+".target", "required")
		case !path.IsAbs(m.Target):
			v.Add(f+".target", "%q is not an absolute path", m.Target)
		case path.Clean(m.Target) == "/":
			v.Add(f+".target", "cannot mount over /")
		case seenTarget[path.Clean(m.Target)]:
			v.Add(f+".target", "%s mounted twice", m.Target)
		}
		seenTarget[path.Clean(m.Target)] = true
	}

	switch s.Network {
	case NetworkDefault, NetworkNone, NetworkBridge, NetworkHost:
	default:
		v.Add("network", "%q is not one of none, bridge, host", s.Network)
	}
	if s.Network == NetworkNone && len(s.Ports) > 0 {
		v.Add("ports", "cannot publish ports with network none")
	}

	for _, k := range mapkeys.Sorted(s.Labels) {
		switch {
		case k == "":
			v.Add("labels", "empty label key")
		case k == LabelManaged:
			v.Add("labels", "%s is set by the executor", k)
		}
	}
	if s.Timeout < 0 {
		v.Add("timeout", "negative (%s)", s.Timeout)
	}
	return v.Err()
}

func checkHostPath(v *ValidationError, field, p string) {
	switch {
	case p == "":
		v.Add(field, "required")
	case !path.IsAbs(p):
		v.Add(field, "%q is not an absolute path", p)
	case strings.ContainsRune(p, 0):
		v.Add(field, "%q contains a NUL byte", p)
	}
}

// EnvList returns Env as sorted KEY=value strings.
func (s *Spec) EnvList() []string {
	env := make([]string, 0, len(s.Env))
	for _, k := range mapkeys.Sorted(s.Env) {
		env = append(env, k+"="+s.Env[k])
	}
	return env
}
