package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

// This file measures containers from their cgroup files, which is exact
// and cheap: a few small reads instead of a call to the daemon, whose
// stats API takes a second to answer a non-streaming request. The cgroup
// is found from the container's init process: /proc/<pid>/cgroup names
// its path in each hierarchy, /proc/self/mountinfo where each hierarchy is
// mounted. cgroup v2 is preferred where its files are there (cpu.stat's
// usage_usec, memory.current); otherwise cgroup v1 (cpuacct.usage in ns,
// memory.usage_in_bytes). On a hybrid host (v1 controllers and a v2
// hierarchy without them) the CPU comes from v2's cpu.stat, which the
// kernel keeps for every cgroup, and the memory from v1.
//
// Memory is the cgroup's working set, as docker stats and kubectl top
// count it: what the kernel charges the cgroup (memory.current, v1
// memory.usage_in_bytes) less its inactive file cache (memory.stat's
// inactive_file, v1 total_inactive_file), which the kernel reclaims
// first. So a workload that reads many files is not billed for the page
// cache they leave behind; its anonymous memory, kernel memory and the
// cache it keeps using (active_file) count. The peak is the kernel's
// (memory.peak, max_usage_in_bytes), page cache included.

// cgroupSampleEvery is how often a container's cgroup is read for its
// Result: a run loses at most this much CPU time at its end, when the
// cgroup is removed with the container.
const cgroupSampleEvery = 100 * time.Millisecond

// cgroupFinalWait bounds the wait of a container's end for its sampler's
// final reading.
const cgroupFinalWait = 200 * time.Millisecond

// errNoCgroup says a container's cgroup files could not be found.
var errNoCgroup = errors.New("no cgroup files")

// cgroupFiles are the files that measure one container.
type cgroupFiles struct {
	cpu    string // v2 cpu.stat, or v1 cpuacct.usage
	cpuV2  bool   // cpu is v2's cpu.stat (µs in usage_usec), else v1's (ns)
	memory string // memory.current, or memory.usage_in_bytes
	stat   string // memory.stat (v2 when memV2); "" if absent
	memV2  bool
	peak   string // memory.peak, or memory.max_usage_in_bytes; "" if absent
	pids   string // pids.current; "" if absent
	events string // v2 cgroup.events, to see the end; "" if absent
}

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	root, point string
	v2          bool
	controllers []string // v1 only
}

// cgroupHost is where the host's /proc and cgroup mounts are ("/" but in
// tests).
type cgroupHost struct {
	root string
}

// mounts reads the cgroup hierarchies from mountinfo.
func (h cgroupHost) mounts() ([]cgroupMount, error) {
	f, err := os.Open(filepath.Join(h.root, "proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo returns the cgroup mounts of a mountinfo file.
func parseMountinfo(r io.Reader) ([]cgroupMount, error) {
	var out []cgroupMount
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 1 {
			continue
		}
		m := cgroupMount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch p[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if len(p) < 3 {
				continue
			}
			m.controllers = strings.Split(p[2], ",")
		default:
			continue
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup returns the cgroup paths of /proc/<pid>/cgroup: by
// controller for v1 ("name=systemd" included), and "" for v2.
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// dir returns the directory of path in the hierarchy mounted as m.
func (h cgroupHost) dir(m cgroupMount, path string) string {
	rel := path
	if r, err := filepath.Rel(m.root, path); err == nil && !strings.HasPrefix(r, "..") {
		rel = r
	}
	return filepath.Join(h.root, m.point, rel)
}

// find returns the cgroup files of the container id whose init process is
// pid. The cgroup's path must name the container, so a reused pid is never
// measured as the container.
func (h cgroupHost) find(pid int, id string, mounts []cgroupMount) (*cgroupFiles, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("%w: container %s has no process", errNoCgroup, short(id))
	}
	f, err := os.Open(filepath.Join(h.root, "proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCgroup, err)
	}
	paths, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCgroup, err)
	}
	var v2 string
	v1 := map[string]string{} // controller -> directory
	for _, m := range mounts {
		if m.v2 {
			if p, ok := paths[""]; ok && strings.Contains(p, id) {
				v2 = h.dir(m, p)
			}
			continue
		}
		for _, c := range m.controllers {
			if p, ok := paths[c]; ok && strings.Contains(p, id) {
				v1[c] = h.dir(m, p)
			}
		}
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	var cf cgroupFiles
	switch {
	case v2 != "" && exists(filepath.Join(v2, "cpu.stat")):
		cf.cpu, cf.cpuV2 = filepath.Join(v2, "cpu.stat"), true
	case v1["cpuacct"] != "" && exists(filepath.Join(v1["cpuacct"], "cpuacct.usage")):
		cf.cpu = filepath.Join(v1["cpuacct"], "cpuacct.usage")
	default:
		return nil, fmt.Errorf("%w: no cpu usage file for container %s", errNoCgroup, short(id))
	}
	switch {
	case v2 != "" && exists(filepath.Join(v2, "memory.current")):
		cf.memory, cf.memV2 = filepath.Join(v2, "memory.current"), true
		if p := filepath.Join(v2, "memory.peak"); exists(p) {
			cf.peak = p
		}
		if p := filepath.Join(v2, "memory.stat"); exists(p) {
			cf.stat = p
		}
	case v1["memory"] != "" && exists(filepath.Join(v1["memory"], "memory.usage_in_bytes")):
		cf.memory = filepath.Join(v1["memory"], "memory.usage_in_bytes")
		if p := filepath.Join(v1["memory"], "memory.max_usage_in_bytes"); exists(p) {
			cf.peak = p
		}
		if p := filepath.Join(v1["memory"], "memory.stat"); exists(p) {
			cf.stat = p
		}
	default:
		return nil, fmt.Errorf("%w: no memory usage file for container %s", errNoCgroup, short(id))
	}
	if p := filepath.Join(v2, "cgroup.events"); v2 != "" && exists(p) {
		cf.events = p
	}
	switch {
	case v2 != "" && exists(filepath.Join(v2, "pids.current")):
		cf.pids = filepath.Join(v2, "pids.current")
	case v1["pids"] != "" && exists(filepath.Join(v1["pids"], "pids.current")):
		cf.pids = filepath.Join(v1["pids"], "pids.current")
	}
	return &cf, nil
}

// read measures the cgroup now. It fails once the cgroup is gone.
func (cf *cgroupFiles) read() (executor.Usage, error) {
	var u executor.Usage
	var buf [512]byte
	b, err := readSmall(cf.cpu, buf[:])
	if err != nil {
		return u, err
	}
	if cf.cpuV2 {
		us, ok := statField(b, "usage_usec")
		if !ok {
			return u, fmt.Errorf("%s: no usage_usec", cf.cpu)
		}
		u.CPUTime = time.Duration(us) * time.Microsecond
	} else {
		ns, err := parseUint(b)
		if err != nil {
			return u, fmt.Errorf("%s: %w", cf.cpu, err)
		}
		u.CPUTime = time.Duration(ns)
	}
	if b, err = readSmall(cf.memory, buf[:]); err != nil {
		return u, err
	}
	mem, err := parseUint(b)
	if err != nil {
		return u, fmt.Errorf("%s: %w", cf.memory, err)
	}
	u.Memory, u.MemoryPeak = match.Bytes(mem), match.Bytes(mem)
	if cf.stat != "" {
		var sbuf [8 << 10]byte // memory.stat is 1–3 KiB
		if b, err := readSmall(cf.stat, sbuf[:]); err == nil {
			in, ok := inactiveFile(b, cf.memV2)
			u.Memory = match.Bytes(workingSet(mem, in, ok))
		}
	}
	if cf.peak != "" {
		if b, err := readSmall(cf.peak, buf[:]); err == nil {
			if p, err := parseUint(b); err == nil {
				u.MemoryPeak = max(u.MemoryPeak, match.Bytes(p))
			}
		}
	}
	if cf.pids != "" {
		if b, err := readSmall(cf.pids, buf[:]); err == nil {
			if n, err := parseUint(b); err == nil {
				u.PIDs = int64(n)
			}
		}
	}
	return u, nil
}

// inactiveFile returns the inactive file cache of a memory.stat file:
// inactive_file (v2), total_inactive_file (v1: the cgroup and its
// descendants). ok is false when the line is missing.
func inactiveFile(stat []byte, v2 bool) (n uint64, ok bool) {
	if v2 {
		return statField(stat, "inactive_file")
	}
	return statField(stat, "total_inactive_file")
}

// workingSet is usage less the inactive file cache, as docker stats
// computes it: unchanged when the cache is unknown or not below usage
// (two files read at slightly different times).
func workingSet(usage uint64, inactive uint64, ok bool) uint64 {
	if ok && inactive < usage {
		return usage - inactive
	}
	return usage
}

// statsWorkingSet is workingSet of the daemon's stats (the fallback when
// the cgroup files cannot be read): v1 reports total_inactive_file, v2
// inactive_file.
func statsWorkingSet(m *container.MemoryStats) uint64 {
	if v, ok := m.Stats["total_inactive_file"]; ok {
		return workingSet(m.Usage, v, true)
	}
	v, ok := m.Stats["inactive_file"]
	return workingSet(m.Usage, v, ok)
}

// readSmall reads a small file into buf (cgroup files are read in one
// go).
func readSmall(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// statField returns the value of a "key value" line of a stat file.
func statField(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if ok && string(k) == key {
			n, err := parseUint(v)
			return n, err == nil
		}
	}
	return 0, false
}

func parseUint(b []byte) (uint64, error) {
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

func short(id string) string { return id[:min(12, len(id))] }

// cgroupOf returns the cgroup files of t, finding them the first time
// (nil when they cannot be found: Stats then asks the daemon).
func (e *Executor) cgroupOf(ctx context.Context, t *tracked) *cgroupFiles {
	t.mu.Lock()
	cf, tried := t.cgroup, t.cgroupTried
	t.mu.Unlock()
	if cf != nil || tried {
		return cf
	}
	cf, err := e.findCgroup(ctx, t.id)
	if err != nil {
		if ctx.Err() != nil {
			return nil // try again next time
		}
		e.log.Debug("stats from the daemon", "container", short(t.id), "err", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cgroup == nil {
		t.cgroup, t.cgroupTried = cf, true
	}
	return t.cgroup
}

// findCgroup finds the cgroup files of the running container id.
func (e *Executor) findCgroup(ctx context.Context, id string) (*cgroupFiles, error) {
	info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCgroup, err)
	}
	if info.Container.State == nil || !info.Container.State.Running {
		return nil, fmt.Errorf("%w: container %s is not running", errNoCgroup, short(id))
	}
	host := cgroupHost{root: "/"}
	mounts, err := host.mounts()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCgroup, err)
	}
	return host.find(info.Container.State.Pid, info.Container.ID, mounts)
}

// sampleCgroup keeps the container's last usage for its Result, read
// from its cgroup every cgroupSampleEvery and, with cgroup v2, once more
// as soon as its last process has exited (cgroup.events): the Result then
// has the final counters. Where the cgroup cannot be read it samples the
// daemon's stats stream (sample) instead.
func (e *Executor) sampleCgroup(ctx context.Context, t *tracked) {
	cf := e.cgroupOf(ctx, t)
	if cf == nil {
		e.sample(ctx, t)
		return
	}
	var empty <-chan struct{}
	if cf.events != "" {
		var err error
		if empty, err = watchEmpty(ctx, cf.events); err != nil {
			e.log.Debug("cgroup events", "container", short(t.id), "err", err)
		}
	}
	tick := time.NewTicker(cgroupSampleEvery)
	defer tick.Stop()
	for {
		u, err := cf.read()
		if err != nil {
			return // the cgroup is gone with the container
		}
		t.keep(u)
		select {
		case <-tick.C:
		case <-empty:
			if u, err := cf.read(); err == nil {
				t.keep(u) // the final counters
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// keep records a sample of the container's usage; the counters it keeps
// never go back.
func (t *tracked) keep(u executor.Usage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u.CPUTime = max(u.CPUTime, t.usage.CPUTime)
	u.MemoryPeak = max(u.MemoryPeak, t.usage.MemoryPeak)
	t.usage = u
}
