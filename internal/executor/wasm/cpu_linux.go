package wasm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/internal/match"
)

// cpuGroups makes the cgroups that bound the CPU of wasm instances. An
// instance runs on one goroutine locked to its OS thread; that thread alone
// is moved into a cgroup of its own with a CFS quota (cgroup v1: the
// thread's ID into tasks; cgroup v2: a threaded cgroup, the ID into
// cgroup.threads), and moved back when the module ends. The kernel then
// enforces the limit, whatever the module does.
type cpuGroups struct {
	v2     bool
	home   string // the process's own cpu cgroup, where threads go back
	parent string // home/dms-wasm-<pid>: the instances' groups
}

// cpuPeriod is the CFS period of an instance's group. Short, because a
// throttled thread answers the Go runtime's stop-the-world requests only
// when it runs again: a period of 10ms delays a GC pause by at most that.
const cpuPeriod = 10 * time.Millisecond

// newCPUGroups finds the process's cpu cgroup (dir overrides it) and makes
// the parent of the instances' groups in it.
func newCPUGroups(dir string) (*cpuGroups, error) {
	g := &cpuGroups{}
	if dir == "" {
		var err error
		if dir, g.v2, err = ownCPUCgroup(); err != nil {
			return nil, err
		}
	} else {
		_, err := os.Stat(filepath.Join(dir, "cgroup.controllers"))
		g.v2 = err == nil
	}
	g.home = dir
	cleanStale(dir)
	g.parent = filepath.Join(dir, fmt.Sprintf("dms-wasm-%d", os.Getpid()))
	if err := os.Mkdir(g.parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup %s: %w", g.parent, err)
	}
	if g.v2 {
		// The thread root is home: enable cpu for the threaded subtree.
		err := writeFile(filepath.Join(g.parent, "cgroup.type"), "threaded")
		if err == nil {
			err = writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+cpu")
		}
		if err == nil {
			err = writeFile(filepath.Join(g.parent, "cgroup.subtree_control"), "+cpu")
		}
		if err != nil {
			os.Remove(g.parent)
			return nil, fmt.Errorf("cgroup v2 threaded cpu in %s: %w", dir, err)
		}
	}
	// Check that this process may move its threads at all.
	probe, err := g.group("probe", 500)
	if err == nil {
		err = probe.remove()
	}
	if err != nil {
		os.Remove(g.parent)
		return nil, err
	}
	return g, nil
}

// close removes the parent group; the instances' groups are gone by then.
func (g *cpuGroups) close() error {
	if err := os.Remove(g.parent); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup %s: %w", g.parent, err)
	}
	return nil
}

// cpuGroup is the cgroup of one instance.
type cpuGroup struct {
	g   *cpuGroups
	dir string
}

// group makes the group of instance id, bounded to cpu (less than a core).
func (g *cpuGroups) group(id string, cpu match.MilliCPU) (*cpuGroup, error) {
	dir := filepath.Join(g.parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	period := cpuPeriod
	quota := period * time.Duration(cpu) / 1000
	if quota < time.Millisecond { // the kernel's least quota
		quota = time.Millisecond
		period = time.Millisecond * 1000 / time.Duration(cpu)
	}
	q, p := strconv.FormatInt(quota.Microseconds(), 10), strconv.FormatInt(period.Microseconds(), 10)
	var err error
	if g.v2 {
		if err = writeFile(filepath.Join(dir, "cgroup.type"), "threaded"); err == nil {
			err = writeFile(filepath.Join(dir, "cpu.max"), q+" "+p)
		}
	} else {
		if err = writeFile(filepath.Join(dir, "cpu.cfs_period_us"), p); err == nil {
			err = writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), q)
		}
	}
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	return &cpuGroup{g: g, dir: dir}, nil
}

func (g *cpuGroups) threadsFile(dir string) string {
	if g.v2 {
		return filepath.Join(dir, "cgroup.threads")
	}
	return filepath.Join(dir, "tasks")
}

// enter moves the calling thread into the group. The caller's goroutine
// must be locked to its thread (runtime.LockOSThread).
func (c *cpuGroup) enter() error {
	return writeFile(c.g.threadsFile(c.dir), strconv.Itoa(unix.Gettid()))
}

// leave moves the calling thread back to the process's cgroup.
func (c *cpuGroup) leave() error {
	return writeFile(c.g.threadsFile(c.g.home), strconv.Itoa(unix.Gettid()))
}

// remove deletes the group, which no thread may be in.
func (c *cpuGroup) remove() error {
	if err := os.Remove(c.dir); err != nil {
		return fmt.Errorf("cgroup %s: %w", c.dir, err)
	}
	return nil
}

// throttled reports how often the group's threads were throttled, from
// cpu.stat (nr_throttled), for the logs.
func (c *cpuGroup) throttled() int64 {
	data, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "nr_throttled "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// cleanStale removes the groups left by dms processes that are gone (a
// crash leaves them; they are empty once the process has exited).
func cleanStale(home string) {
	dirs, _ := filepath.Glob(filepath.Join(home, "dms-wasm-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "dms-wasm-"))
		if err != nil || pid == os.Getpid() || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue
		}
		subs, _ := os.ReadDir(d)
		for _, s := range subs {
			if s.IsDir() {
				os.Remove(filepath.Join(d, s.Name()))
			}
		}
		os.Remove(d)
	}
}

// ownCPUCgroup returns the directory of this process's cgroup that has the
// cpu controller: the v1 cpu hierarchy's, or the v2 one's when cpu is
// available there.
func ownCPUCgroup() (string, bool, error) {
	own := map[string]string{} // controller ("" for v2) -> path
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, fmt.Errorf("cgroups: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	mounts, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, fmt.Errorf("cgroups: %w", err)
	}
	defer mounts.Close()
	sc = bufio.NewScanner(mounts)
	var v2 string
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 3 {
			continue
		}
		root, point := f[3], f[4]
		switch p[0] {
		case "cgroup":
			for o := range strings.SplitSeq(p[2], ",") {
				if path, ok := own["cpu"]; o == "cpu" && ok {
					return filepath.Join(point, relCgroup(root, path)), false, nil
				}
			}
		case "cgroup2":
			if path, ok := own[""]; ok {
				v2 = filepath.Join(point, relCgroup(root, path))
			}
		}
	}
	if v2 != "" {
		data, err := os.ReadFile(filepath.Join(v2, "cgroup.controllers"))
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(data))+" ", " cpu ") {
			return v2, true, nil
		}
	}
	return "", false, errors.New("no cgroup with the cpu controller")
}

// relCgroup is path relative to a mount of the hierarchy at root.
func relCgroup(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

func writeFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// threadID is the calling thread's ID.
func threadID() int { return unix.Gettid() }

// threadCPUOf is the CPU time of thread tid of this process, read from its
// CPU clock (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) in the kernel's
// posix-timers.h: exact to the nanosecond, one system call).
func threadCPUOf(tid int) (time.Duration, bool) {
	if tid <= 0 || tid >= 1<<22 { // 0 would be the calling thread; pid_max is at most 2^22
		return 0, false
	}
	clock := int32(^uint32(tid)<<3 | 4 | 2) // per-thread, sched clock
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
