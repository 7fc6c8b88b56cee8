package resource

import (
	"github.com/dmsnet/dms/internal/match"
)

// Machine is what Detect found on this machine. Its Resources are the
// capacity onboarding is checked against.
type Machine struct {
	CPU       CPU            `json:"cpu"`
	RAM       RAM            `json:"ram"`
	Disk      Disk           `json:"disk"`
	GPUs      []GPU          `json:"gpus"` // empty: no GPU, which is normal
	OS        OS             `json:"os"`
	Executors []string       `json:"executors"` // usable here, sorted: docker, vm, wasm
	Docker    Docker         `json:"docker"`
	KVM       bool           `json:"kvm"`                // /dev/kvm opens read-write
	QEMU      string         `json:"qemu,omitempty"`     // path of qemu-system-<arch>, when found
	Location  match.Location `json:"location"`           // from config
	Warnings  []string       `json:"warnings,omitempty"` // what could not be detected, and why
}

// CPU describes the processor.
type CPU struct {
	Vendor  string   `json:"vendor"` // GenuineIntel, AuthenticAMD, ARM …
	Model   string   `json:"model"`
	Cores   int      `json:"cores"`   // physical cores
	Threads int      `json:"threads"` // logical CPUs
	MHz     float64  `json:"mhz"`     // maximum frequency when known, else the current one
	Arch    string   `json:"arch"`    // Go's name: amd64, arm64
	Flags   []string `json:"flags,omitempty"`
	// Quota is the CPU limit of the cgroup dms runs in (cpu.max), 0 when
	// unlimited.
	Quota match.MilliCPU `json:"quota,omitempty"`
}

// HasFlag reports whether the CPU has a feature flag such as "avx2".
func (c CPU) HasFlag(f string) bool {
	for _, x := range c.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// RAM describes the memory.
type RAM struct {
	Total     match.Bytes `json:"total"`
	Available match.Bytes `json:"available"` // MemAvailable at detection
	// Limit is the memory limit of the cgroup dms runs in (memory.max), 0
	// when unlimited.
	Limit match.Bytes `json:"limit,omitempty"`
}

// Disk describes the filesystem holding the data directory.
type Disk struct {
	Path  string      `json:"path"`
	Total match.Bytes `json:"total"`
	Free  match.Bytes `json:"free"` // available to unprivileged users
}

// GPU is a detected graphics card: its place in the algebra (Index unique on
// this machine, Vendor, Model, VRAM) and how its driver names it.
type GPU struct {
	match.GPU
	UUID string `json:"uuid,omitempty"` // NVIDIA GPU UUID
	PCI  string `json:"pci,omitempty"`  // PCI bus id
	// VendorIndex is the index nvidia-smi or rocm-smi gives the device,
	// which executors pass to the driver (Index may differ on a machine
	// with GPUs of both vendors).
	VendorIndex int    `json:"vendor_index"`
	Source      string `json:"source"` // nvidia-smi, rocm-smi or sysfs
}

// OS describes the operating system.
type OS struct {
	Name   string `json:"name"`   // PRETTY_NAME of os-release: Debian GNU/Linux 12 (bookworm)
	Kernel string `json:"kernel"` // 6.1.0-18-amd64
	Type   string `json:"type"`   // Linux
}

// Docker says whether the Docker engine answered.
type Docker struct {
	Socket     string `json:"socket"`
	Reachable  bool   `json:"reachable"`
	APIVersion string `json:"api_version,omitempty"`
}

// Resources is the machine's capacity: every logical CPU (or the cgroup
// quota), all memory (or the cgroup limit), the free space of the data
// directory's filesystem, and every GPU.
func (m Machine) Resources() match.Resources {
	r := match.Resources{
		CPU:  match.MilliCPU(m.CPU.Threads) * 1000,
		RAM:  m.RAM.Total,
		Disk: m.Disk.Free,
	}
	if m.CPU.Quota > 0 && m.CPU.Quota < r.CPU {
		r.CPU = m.CPU.Quota
	}
	if m.RAM.Limit > 0 && m.RAM.Limit < r.RAM {
		r.RAM = m.RAM.Limit
	}
	for _, g := range m.GPUs {
		r.GPUs = append(r.GPUs, g.GPU)
	}
	return r
}

// GPU returns the detected GPU with the given Index.
func (m Machine) GPU(index int) (GPU, bool) {
	for _, g := range m.GPUs {
		if g.Index == index {
			return g, true
		}
	}
	return GPU{}, false
}
