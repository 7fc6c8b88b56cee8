package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/dmsnet/dms/internal/executor"
)

const testID = "b98e95bbbe7b5498ed25592b9251d8370a7df9a05f79413397165603fece9841"

// fakeHost writes a /proc and cgroup tree under a temporary root.
func fakeHost(t *testing.T, files map[string]string) cgroupHost {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cgroupHost{root: root}
}

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const v2Mountinfo = `25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
`

func TestCgroupFind(t *testing.T) {
	dockerPath := "/docker/" + testID
	v1cgroup := "4:memory:" + dockerPath + "\n2:cpu,cpuacct:" + dockerPath + "\n8:pids:" + dockerPath + "\n0::" + dockerPath + "\n"
	scope := "/system.slice/docker-" + testID + ".scope"
	tests := []struct {
		name  string
		files map[string]string
		want  executor.Usage
		err   bool
	}{
		{
			name: "v2",
			files: map[string]string{
				"proc/self/mountinfo":                       v2Mountinfo,
				"proc/42/cgroup":                            "0::" + scope + "\n",
				"sys/fs/cgroup" + scope + "/cpu.stat":       "usage_usec 4401015\nuser_usec 4342289\nsystem_usec 58725\n",
				"sys/fs/cgroup" + scope + "/memory.current": "2203648\n",
				"sys/fs/cgroup" + scope + "/memory.peak":    "9000000\n",
				"sys/fs/cgroup" + scope + "/pids.current":   "3\n",
			},
			want: executor.Usage{CPUTime: 4401015 * time.Microsecond, Memory: 2203648, MemoryPeak: 9000000, PIDs: 3},
		},
		{
			name: "v2: the inactive file cache is not counted",
			files: map[string]string{
				"proc/self/mountinfo":                       v2Mountinfo,
				"proc/42/cgroup":                            "0::" + scope + "\n",
				"sys/fs/cgroup" + scope + "/cpu.stat":       "usage_usec 1\n",
				"sys/fs/cgroup" + scope + "/memory.current": "10000000\n",
				"sys/fs/cgroup" + scope + "/memory.peak":    "12000000\n",
				"sys/fs/cgroup" + scope + "/memory.stat":    "anon 2000000\nfile 7500000\nkernel 500000\nactive_file 1500000\ninactive_file 6000000\ntotal_inactive_file 1\n",
			},
			want: executor.Usage{CPUTime: time.Microsecond, Memory: 4000000, MemoryPeak: 12000000},
		},
		{
			name: "v2: a cache above the usage (read later) leaves the usage",
			files: map[string]string{
				"proc/self/mountinfo":                       v2Mountinfo,
				"proc/42/cgroup":                            "0::" + scope + "\n",
				"sys/fs/cgroup" + scope + "/cpu.stat":       "usage_usec 1\n",
				"sys/fs/cgroup" + scope + "/memory.current": "4096\n",
				"sys/fs/cgroup" + scope + "/memory.stat":    "inactive_file 8192\n",
			},
			want: executor.Usage{CPUTime: time.Microsecond, Memory: 4096, MemoryPeak: 4096},
		},
		{
			name: "hybrid: cpu from v2, memory from v1",
			files: map[string]string{
				"proc/self/mountinfo": hybridMountinfo,
				"proc/42/cgroup":      v1cgroup,
				"sys/fs/cgroup/unified" + dockerPath + "/cpu.stat":                 "usage_usec 1500\n",
				"sys/fs/cgroup/cpu,cpuacct" + dockerPath + "/cpuacct.usage":        "999\n",
				"sys/fs/cgroup/memory" + dockerPath + "/memory.usage_in_bytes":     "4096\n",
				"sys/fs/cgroup/memory" + dockerPath + "/memory.max_usage_in_bytes": "8192\n",
				"sys/fs/cgroup/pids" + dockerPath + "/pids.current":                "1\n",
			},
			want: executor.Usage{CPUTime: 1500 * time.Microsecond, Memory: 4096, MemoryPeak: 8192, PIDs: 1},
		},
		{
			name: "v1 only",
			files: map[string]string{
				"proc/self/mountinfo": strings.Replace(hybridMountinfo, "cgroup2 cgroup2", "tmpfs tmpfs", 1),
				"proc/42/cgroup":      v1cgroup,
				"sys/fs/cgroup/cpu,cpuacct" + dockerPath + "/cpuacct.usage":    "2032385747\n",
				"sys/fs/cgroup/memory" + dockerPath + "/memory.usage_in_bytes": "4096\n",
			},
			want: executor.Usage{CPUTime: 2032385747, Memory: 4096, MemoryPeak: 4096},
		},
		{
			name: "v1: total_inactive_file is not counted",
			files: map[string]string{
				"proc/self/mountinfo": strings.Replace(hybridMountinfo, "cgroup2 cgroup2", "tmpfs tmpfs", 1),
				"proc/42/cgroup":      v1cgroup,
				"sys/fs/cgroup/cpu,cpuacct" + dockerPath + "/cpuacct.usage":    "5\n",
				"sys/fs/cgroup/memory" + dockerPath + "/memory.usage_in_bytes": "10000\n",
				"sys/fs/cgroup/memory" + dockerPath + "/memory.stat":           "cache 9000\ninactive_file 100\ntotal_cache 9000\ntotal_inactive_file 7000\n",
			},
			want: executor.Usage{CPUTime: 5, Memory: 3000, MemoryPeak: 10000},
		},
		{
			name: "namespaced: the mount's root is the container's cgroup",
			files: map[string]string{
				"proc/self/mountinfo":          "25 20 0:22 " + scope + " /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
				"proc/42/cgroup":               "0::" + scope + "\n",
				"sys/fs/cgroup/cpu.stat":       "usage_usec 7\n",
				"sys/fs/cgroup/memory.current": "1\n",
			},
			want: executor.Usage{CPUTime: 7 * time.Microsecond, Memory: 1, MemoryPeak: 1},
		},
		{
			name: "the cgroup does not name the container (a reused pid)",
			files: map[string]string{
				"proc/self/mountinfo":                     v2Mountinfo,
				"proc/42/cgroup":                          "0::/user.slice\n",
				"sys/fs/cgroup/user.slice/cpu.stat":       "usage_usec 7\n",
				"sys/fs/cgroup/user.slice/memory.current": "1\n",
			},
			err: true,
		},
		{
			name:  "no process",
			files: map[string]string{"proc/self/mountinfo": v2Mountinfo},
			err:   true,
		},
		{
			name: "no memory file",
			files: map[string]string{
				"proc/self/mountinfo":                 v2Mountinfo,
				"proc/42/cgroup":                      "0::" + scope + "\n",
				"sys/fs/cgroup" + scope + "/cpu.stat": "usage_usec 1\n",
			},
			err: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, tt.files)
			mounts, err := h.mounts()
			if err != nil {
				t.Fatal(err)
			}
			cf, err := h.find(42, testID, mounts)
			if tt.err {
				if err == nil {
					t.Fatalf("find = %+v, want an error", cf)
				}
				return
			}
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			got, err := cf.read()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if got != tt.want {
				t.Errorf("read = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCgroupReadGone(t *testing.T) {
	h := fakeHost(t, map[string]string{
		"proc/self/mountinfo": v2Mountinfo,
		"proc/42/cgroup":      "0::/docker/" + testID + "\n",
		"sys/fs/cgroup/docker/" + testID + "/cpu.stat":       "usage_usec 1\n",
		"sys/fs/cgroup/docker/" + testID + "/memory.current": "1\n",
	})
	mounts, _ := h.mounts()
	cf, err := h.find(42, testID, mounts)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(h.root, "sys/fs/cgroup/docker"))
	if u, err := cf.read(); err == nil {
		t.Errorf("read of a removed cgroup = %+v, want an error", u)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatField(t *testing.T) {
	b := []byte("usage_usec 12\nuser_usec 10\nsystem_usec 2")
	for key, want := range map[string]uint64{"usage_usec": 12, "system_usec": 2} {
		if got, ok := statField(b, key); !ok || got != want {
			t.Errorf("statField(%s) = %d, %v, want %d", key, got, ok, want)
		}
	}
	if _, ok := statField(b, "nr_periods"); ok {
		t.Error("statField(nr_periods) found a field that is not there")
	}
}

// FuzzParseCgroupFiles feeds the parsers the bytes of /proc files.
func FuzzParseCgroupFiles(f *testing.F) {
	f.Add([]byte(hybridMountinfo))
	f.Add([]byte("0::/docker/x\n2:cpu,cpuacct:/docker/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseMountinfo(strings.NewReader(string(b)))
		parseProcCgroup(strings.NewReader(string(b)))
		statField(b, "usage_usec")
		for _, v2 := range []bool{true, false} {
			if in, ok := inactiveFile(b, v2); workingSet(1<<20, in, ok) > 1<<20 {
				t.Fatalf("working set above the usage")
			}
		}
		unescapeMount(string(b))
	})
}

// BenchmarkCgroupRead is the cost of one Stats reading from the cgroup
// files (hybrid layout: v2 cpu.stat, v1 memory, pids). The anchor is one
// os.ReadFile of the same cpu.stat.
func BenchmarkCgroupRead(b *testing.B) {
	dockerPath := "/docker/" + testID
	files := map[string]string{
		"proc/self/mountinfo": hybridMountinfo,
		"proc/42/cgroup":      "4:memory:" + dockerPath + "\n2:cpu,cpuacct:" + dockerPath + "\n8:pids:" + dockerPath + "\n0::" + dockerPath + "\n",
		"sys/fs/cgroup/unified" + dockerPath + "/cpu.stat":                 "usage_usec 4401015\nuser_usec 4342289\nsystem_usec 58725\nnice_usec 0\n",
		"sys/fs/cgroup/memory" + dockerPath + "/memory.usage_in_bytes":     "2203648\n",
		"sys/fs/cgroup/memory" + dockerPath + "/memory.max_usage_in_bytes": "9203648\n",
		"sys/fs/cgroup/pids" + dockerPath + "/pids.current":                "1\n",
	}
	root := b.TempDir()
	for p, c := range files {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(c), 0o644)
	}
	h := cgroupHost{root: root}
	mounts, _ := h.mounts()
	cf, err := h.find(42, testID, mounts)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("anchor-readfile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			os.ReadFile(cf.cpu)
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cf.read(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestStatsWorkingSet(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stats map[string]uint64
		want  uint64
	}{
		{"v1", map[string]uint64{"total_inactive_file": 300, "inactive_file": 1}, 700},
		{"v2", map[string]uint64{"inactive_file": 400}, 600},
		{"no stats", nil, 1000},
		{"cache above the usage", map[string]uint64{"inactive_file": 5000}, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := container.MemoryStats{Usage: 1000, Stats: tt.stats}
			if got := statsWorkingSet(&m); got != tt.want {
				t.Errorf("statsWorkingSet(%v) = %d, want %d", tt.stats, got, tt.want)
			}
		})
	}
}
