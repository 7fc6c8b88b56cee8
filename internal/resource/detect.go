package resource

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// Executor names as Machine.Executors lists them.
const (
	ExecutorDocker = "docker"
	ExecutorVM     = "vm"
	ExecutorWasm   = "wasm"
)

// DetectConfig says where Detect looks. Only DataDir is required.
type DetectConfig struct {
	// DataDir is the node's data directory; its filesystem is the disk.
	DataDir string
	// Location is the machine's location from config (no look-ups).
	Location match.Location
	// Root is prepended to /proc, /sys and /etc paths; default "/". Tests
	// point it at a testdata tree.
	Root string
	// DockerSocket is the Docker engine's unix socket; default
	// /var/run/docker.sock. "-" skips Docker.
	DockerSocket string
	// KVMDevice is the KVM device; default /dev/kvm. "-" skips it.
	KVMDevice string
	// Command runs a helper program (nvidia-smi, rocm-smi) and returns its
	// standard output; default: os/exec. A missing program is reported as
	// an error wrapping exec.ErrNotFound.
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// LookPath finds a program in PATH; default exec.LookPath.
	LookPath func(file string) (string, error)
	// Timeout bounds each probe (a helper program, the Docker ping);
	// default 5s.
	Timeout time.Duration
	// Logger receives what could not be detected (also in
	// Machine.Warnings); default: discard.
	Logger *slog.Logger
}

func (c *DetectConfig) defaults() {
	if c.Root == "" {
		c.Root = "/"
	}
	if c.DockerSocket == "" {
		c.DockerSocket = "/var/run/docker.sock"
	}
	if c.KVMDevice == "" {
		c.KVMDevice = "/dev/kvm"
	}
	if c.Command == nil {
		c.Command = runCommand
	}
	if c.LookPath == nil {
		c.LookPath = exec.LookPath
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Detect describes this machine: CPU, memory, the data directory's disk,
// GPUs, OS, usable executors and the configured location. It fails only when
// CPU, memory or the disk cannot be read; a missing GPU tool, an absent Docker
// engine or /dev/kvm are normal and noted in Warnings when unexpected.
func Detect(ctx context.Context, cfg DetectConfig) (Machine, error) {
	cfg.defaults()
	if cfg.DataDir == "" {
		return Machine{}, errors.New("detect: no data directory")
	}
	m := Machine{Location: cfg.Location}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		m.Warnings = append(m.Warnings, msg)
		cfg.Logger.Warn("detect: " + msg)
	}
	var err error
	if m.CPU, err = detectCPU(cfg.Root); err != nil {
		return Machine{}, fmt.Errorf("detect cpu: %w", err)
	}
	if m.RAM, err = detectRAM(cfg.Root); err != nil {
		return Machine{}, fmt.Errorf("detect memory: %w", err)
	}
	if m.Disk, err = detectDisk(cfg.DataDir); err != nil {
		return Machine{}, fmt.Errorf("detect disk: %w", err)
	}
	m.OS = detectOS(cfg.Root)
	m.GPUs = detectGPUs(ctx, cfg, warn)

	m.Executors = []string{ExecutorWasm}
	if cfg.DockerSocket != "-" {
		m.Docker = pingDocker(ctx, cfg.DockerSocket, cfg.Timeout)
		if m.Docker.Reachable {
			m.Executors = append(m.Executors, ExecutorDocker)
		}
	}
	if cfg.KVMDevice != "-" {
		if f, err := os.OpenFile(cfg.KVMDevice, os.O_RDWR, 0); err == nil {
			m.KVM = true
			_ = f.Close()
		}
	}
	if p, err := cfg.LookPath("qemu-system-" + qemuArch(m.CPU.Arch)); err == nil {
		m.QEMU = p
		m.Executors = append(m.Executors, ExecutorVM)
	}
	sort.Strings(m.Executors)
	return m, nil
}

func qemuArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	}
	return goarch
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("%s: %w: %s", name, err, firstLine(msg))
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// readRoot reads a file below root.
func readRoot(root, path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(root, path))
}

// detectCPU parses /proc/cpuinfo (x86 and ARM forms), the cpufreq maxima and
// the cgroup v2 cpu.max.
func detectCPU(root string) (CPU, error) {
	data, err := readRoot(root, "/proc/cpuinfo")
	if err != nil {
		return CPU{}, err
	}
	c := parseCPUInfo(data)
	if c.Threads == 0 {
		return CPU{}, errors.New("/proc/cpuinfo lists no processor")
	}
	c.Arch = runtime.GOARCH
	// The highest cpuinfo_max_freq (kHz) of any CPU.
	if dirs, _ := filepath.Glob(filepath.Join(root, "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq")); len(dirs) > 0 {
		best := 0.0
		for _, p := range dirs {
			if b, err := os.ReadFile(p); err == nil {
				if khz, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && khz/1000 > best {
					best = khz / 1000
				}
			}
		}
		if best > 0 {
			c.MHz = best
		}
	}
	if b, err := readRoot(root, "/sys/fs/cgroup/cpu.max"); err == nil {
		c.Quota = parseCPUMax(string(b))
	}
	return c, nil
}

func parseCPUInfo(data []byte) CPU {
	var c CPU
	type core struct{ pkg, id string }
	cores := map[core]bool{}
	var pkg, coreID string
	flags := map[string]bool{}
	var implementer, part, boardModel string
	flush := func() {
		if coreID != "" {
			cores[core{pkg, coreID}] = true
		}
		pkg, coreID = "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			if _, err := strconv.Atoi(v); err == nil {
				c.Threads++
			}
		case "vendor_id":
			c.Vendor = v
		case "model name", "Processor", "cpu model":
			if c.Model == "" || k == "model name" {
				c.Model = v
			}
		case "Model":
			boardModel = v // Raspberry Pi and other boards
		case "cpu MHz":
			if f, err := strconv.ParseFloat(v, 64); err == nil && f > c.MHz {
				c.MHz = f
			}
		case "flags", "Features":
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
		case "physical id":
			pkg = v
		case "core id":
			coreID = v
		case "CPU implementer":
			implementer = v
		case "CPU part":
			if part == "" {
				part = v
			}
		}
	}
	flush()
	c.Cores = len(cores)
	if c.Cores == 0 || c.Cores > c.Threads {
		c.Cores = c.Threads
	}
	if c.Vendor == "" && implementer != "" {
		c.Vendor = armImplementer(implementer)
	}
	if c.Model == "" {
		switch {
		case boardModel != "":
			c.Model = boardModel
		case part != "":
			c.Model = "CPU part " + part
		}
	}
	for f := range flags {
		c.Flags = append(c.Flags, f)
	}
	slices.Sort(c.Flags)
	return c
}

func armImplementer(hex string) string {
	switch strings.ToLower(hex) {
	case "0x41":
		return "ARM"
	case "0x42":
		return "Broadcom"
	case "0x43":
		return "Cavium"
	case "0x48":
		return "HiSilicon"
	case "0x4e":
		return "NVIDIA"
	case "0x51":
		return "Qualcomm"
	case "0x61":
		return "Apple"
	case "0xc0":
		return "Ampere"
	}
	return "implementer " + hex
}

// parseCPUMax reads cgroup v2 cpu.max: "max 100000" or "150000 100000".
func parseCPUMax(s string) match.MilliCPU {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.ParseInt(f[0], 10, 64)
	period, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 || quota > 1<<40 {
		return 0
	}
	return match.MilliCPU((quota*1000 + period - 1) / period)
}

// detectRAM parses /proc/meminfo and the cgroup v2 memory.max.
func detectRAM(root string) (RAM, error) {
	data, err := readRoot(root, "/proc/meminfo")
	if err != nil {
		return RAM{}, err
	}
	r, err := parseMemInfo(data)
	if err != nil {
		return RAM{}, err
	}
	if b, err := readRoot(root, "/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			r.Limit = match.Bytes(v)
		}
	}
	return r, nil
}

func parseMemInfo(data []byte) (RAM, error) {
	var r RAM
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<53 {
			continue
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= 1024
		}
		switch k {
		case "MemTotal":
			r.Total = match.Bytes(n)
		case "MemAvailable":
			r.Available = match.Bytes(n)
		}
	}
	if r.Total == 0 {
		return RAM{}, errors.New("/proc/meminfo has no MemTotal")
	}
	return r, nil
}

func detectDisk(dir string) (Disk, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Disk{}, err
	}
	total, free, err := statfs(abs)
	if err != nil {
		return Disk{}, fmt.Errorf("statfs %s: %w", abs, err)
	}
	return Disk{Path: abs, Total: match.Bytes(total), Free: match.Bytes(free)}, nil
}

func detectOS(root string) OS {
	var o OS
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := readRoot(root, p)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				o.Name = strings.Trim(v, `'"`)
			}
		}
		break
	}
	if b, err := readRoot(root, "/proc/sys/kernel/osrelease"); err == nil {
		o.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := readRoot(root, "/proc/sys/kernel/ostype"); err == nil {
		o.Type = strings.TrimSpace(string(b))
	}
	if o.Type == "" {
		o.Type = runtime.GOOS
	}
	return o
}

// readSmall reads at most n bytes of r.
func readSmall(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}
