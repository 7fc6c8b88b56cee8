package resource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/match"
)

// fakeCommands answers helper programs from a table; a program not in it is
// not installed.
func fakeCommands(outputs map[string]string) func(context.Context, string, ...string) ([]byte, error) {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		out, ok := outputs[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
		}
		if strings.HasPrefix(out, "ERROR ") {
			return nil, errors.New(strings.TrimPrefix(out, "ERROR "))
		}
		return []byte(out), nil
	}
}

func noPath(string) (string, error) { return "", exec.ErrNotFound }

const nvidiaOut = `0, Tesla T4, 15360, GPU-5c8f1d0a-aaaa-bbbb-cccc-000000000000, 00000000:00:1E.0
1, NVIDIA A100-SXM4-40GB, 40960, GPU-6d9e2e1b-aaaa-bbbb-cccc-111111111111, 00000000:00:1F.0
`

const rocmOut = `{"card0": {"Card series": "Instinct MI210", "Card model": "0x0c34", "VRAM Total Memory (B)": "68702699520", "PCI Bus": "0000:03:00.0"},
 "system": {"Driver version": "6.3.6"}}`

func TestDetectFakeRoots(t *testing.T) {
	tests := []struct {
		name     string
		root     string
		commands map[string]string
		check    func(t *testing.T, m Machine)
	}{
		{
			name: "x86 with cgroup limits, sysfs AMD card",
			root: "testdata/x86",
			check: func(t *testing.T, m Machine) {
				c := m.CPU
				if c.Vendor != "GenuineIntel" || c.Model != "Intel(R) Core(TM) i7-7700HQ CPU @ 2.80GHz" || c.Cores != 2 || c.Threads != 4 {
					t.Errorf("CPU = %+v, want GenuineIntel i7-7700HQ 2 cores 4 threads", c)
				}
				if c.MHz != 3800 || !c.HasFlag("avx2") || c.HasFlag("avx512f") || c.Quota != 1500 {
					t.Errorf("CPU = MHz %v avx2 %v quota %v, want 3800 MHz (cpufreq), avx2, quota 1.5", c.MHz, c.HasFlag("avx2"), c.Quota)
				}
				if m.RAM.Total != 16314256*1024 || m.RAM.Available != 12000000*1024 || m.RAM.Limit != 8<<30 {
					t.Errorf("RAM = %+v", m.RAM)
				}
				if m.OS.Name != "Debian GNU/Linux 12 (bookworm)" || m.OS.Kernel != "6.1.0-18-amd64" || m.OS.Type != "Linux" {
					t.Errorf("OS = %+v", m.OS)
				}
				want := []GPU{{GPU: match.GPU{Index: 0, Vendor: "amd", Model: "AMD GPU 0x66a1", VRAM: 17163091968}, Source: "sysfs"}}
				if !slices.Equal(m.GPUs, want) {
					t.Errorf("GPUs = %+v, want %+v", m.GPUs, want)
				}
				r := m.Resources()
				if r.CPU != 1500 || r.RAM != 8<<30 || len(r.GPUs) != 1 {
					t.Errorf("Resources() = %v, want the cgroup limits (1.5 cores, 8GiB) and 1 GPU", r)
				}
			},
		},
		{
			name:     "x86 with nvidia-smi and rocm-smi",
			root:     "testdata/x86",
			commands: map[string]string{"nvidia-smi": nvidiaOut, "rocm-smi": rocmOut},
			check: func(t *testing.T, m Machine) {
				var got []string
				for _, g := range m.GPUs {
					got = append(got, fmt.Sprintf("%d %s %s %s vendor#%d %s", g.Index, g.Vendor, g.Model, g.VRAM, g.VendorIndex, g.Source))
				}
				want := []string{
					"0 nvidia Tesla T4 15GiB vendor#0 nvidia-smi",
					"1 nvidia NVIDIA A100-SXM4-40GB 40GiB vendor#1 nvidia-smi",
					"2 amd Instinct MI210 63.98GiB vendor#0 rocm-smi",
				}
				if !slices.Equal(got, want) {
					t.Errorf("GPUs = %q, want %q", got, want)
				}
				if m.GPUs[0].UUID == "" || m.GPUs[0].PCI != "00000000:00:1E.0" {
					t.Errorf("GPU 0 = %+v, want UUID and PCI", m.GPUs[0])
				}
			},
		},
		{
			name:     "broken nvidia-smi is a warning, not an error",
			root:     "testdata/x86",
			commands: map[string]string{"nvidia-smi": "ERROR NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"},
			check: func(t *testing.T, m Machine) {
				if len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "nvidia-smi") {
					t.Errorf("Warnings = %q, want the nvidia-smi failure", m.Warnings)
				}
			},
		},
		{
			name: "arm board",
			root: "testdata/arm",
			check: func(t *testing.T, m Machine) {
				c := m.CPU
				if c.Vendor != "ARM" || c.Model != "Raspberry Pi 4 Model B Rev 1.4" || c.Threads != 4 || c.Cores != 4 || !c.HasFlag("asimd") {
					t.Errorf("CPU = %+v", c)
				}
				if m.RAM.Total != 3884360*1024 || len(m.GPUs) != 0 || m.OS.Type != runtime.GOOS {
					t.Errorf("machine = %+v", m)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Detect(t.Context(), DetectConfig{
				DataDir: t.TempDir(), Root: tc.root, Command: fakeCommands(tc.commands), LookPath: noPath,
				DockerSocket: "-", KVMDevice: "-", Location: match.Location{Country: "DE"},
			})
			if err != nil {
				t.Fatalf("Detect = %v", err)
			}
			if !slices.Equal(m.Executors, []string{"wasm"}) || m.Location.Country != "DE" || m.Disk.Free == 0 {
				t.Errorf("Detect = executors %v location %v disk %+v, want wasm only, DE, a disk", m.Executors, m.Location, m.Disk)
			}
			tc.check(t, m)
		})
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name    string
		root    string
		dataDir string
		want    string
	}{
		{"no cpuinfo", "testdata/empty", "", "detect cpu"},
		{"no data dir", "testdata/x86", "/nonexistent/dms-data", "detect disk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dataDir
			if dir == "" {
				dir = t.TempDir()
			}
			_, err := Detect(t.Context(), DetectConfig{DataDir: dir, Root: tc.root, Command: fakeCommands(nil), LookPath: noPath, DockerSocket: "-", KVMDevice: "-"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Detect = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]match.MilliCPU{
		"max 100000": 0, "150000 100000": 1500, "50000 100000\n": 500, "1 3": 334, "x y": 0, "": 0, "-1 100000": 0,
	} {
		if got := parseCPUMax(in); got != want {
			t.Errorf("parseCPUMax(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseNvidiaSMIBad(t *testing.T) {
	for _, in := range []string{"x, T4, 100", "0, T4", "\"unterminated"} {
		if _, err := parseNvidiaSMI([]byte(in)); err == nil {
			t.Errorf("parseNvidiaSMI(%q) = nil error", in)
		}
	}
	if _, err := parseROCmSMI([]byte("not json")); err == nil {
		t.Error("parseROCmSMI(not json) = nil error")
	}
}

// TestDockerPing serves /_ping on a unix socket of our own, as the Docker
// engine does, and checks the executor list.
func TestDockerPing(t *testing.T) {
	dir, err := os.MkdirTemp("", "dock") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Api-Version", "1.47")
		fmt.Fprint(w, "OK")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	kvm := filepath.Join(dir, "kvm")
	if err := os.WriteFile(kvm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	qemu := func(f string) (string, error) {
		if f == "qemu-system-"+qemuArch(runtime.GOARCH) {
			return "/usr/bin/" + f, nil
		}
		return "", exec.ErrNotFound
	}
	m, err := Detect(t.Context(), DetectConfig{DataDir: t.TempDir(), Root: "testdata/x86", Command: fakeCommands(nil),
		LookPath: qemu, DockerSocket: sock, KVMDevice: kvm})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Docker.Reachable || m.Docker.APIVersion != "1.47" || !m.KVM || m.QEMU == "" {
		t.Errorf("Detect = docker %+v kvm %v qemu %q, want all usable", m.Docker, m.KVM, m.QEMU)
	}
	if want := []string{"docker", "vm", "wasm"}; !slices.Equal(m.Executors, want) {
		t.Errorf("Executors = %v, want %v", m.Executors, want)
	}

	// A socket nobody answers on is "not reachable", quickly.
	m, err = Detect(t.Context(), DetectConfig{DataDir: t.TempDir(), Root: "testdata/x86", Command: fakeCommands(nil),
		LookPath: noPath, DockerSocket: filepath.Join(dir, "nobody.sock"), KVMDevice: filepath.Join(dir, "nokvm")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Docker.Reachable || m.KVM || !slices.Equal(m.Executors, []string{"wasm"}) {
		t.Errorf("Detect = docker %+v kvm %v executors %v, want nothing but wasm", m.Docker, m.KVM, m.Executors)
	}
}

// TestDetectThisMachine runs the real detection here. It checks only what
// holds on any Linux machine.
func TestDetectThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("detection reads /proc: Linux only")
	}
	m, err := Detect(t.Context(), DetectConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.CPU.Threads < 1 || m.CPU.Threads < m.CPU.Cores || m.RAM.Total == 0 || m.Disk.Total == 0 || m.OS.Kernel == "" {
		t.Errorf("Detect = %+v, want CPU, RAM, disk and kernel", m)
	}
	if !slices.Contains(m.Executors, ExecutorWasm) {
		t.Errorf("Executors = %v, want wasm always", m.Executors)
	}
	t.Logf("this machine: %d threads of %s %s, %s RAM, disk %s free, GPUs %d, executors %v, kvm %v, warnings %q",
		m.CPU.Threads, m.CPU.Vendor, m.CPU.Model, m.RAM.Total, m.Disk.Free, len(m.GPUs), m.Executors, m.KVM, m.Warnings)
}
