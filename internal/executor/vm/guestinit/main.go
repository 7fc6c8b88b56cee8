//go:build linux && amd64

// Command guestinit is the init (PID 1) of a dms microVM: the vm
// executor's guest side. Put it in the job's initramfs as /init, beside
// the payload and whatever it needs:
//
//	CGO_ENABLED=0 go build -o init ./internal/executor/vm/guestinit
//
// It mounts /proc, /sys and /dev, reads what to run from the kernel
// command line, loads the kernel modules listed in /etc/dms/modules (when
// the job has mounts or a root device and the kernel has virtio or 9p as
// modules), mounts the job's 9p shares and root device, configures the
// subnet interface when the VM has one (net.go: virtio_net, failover and
// net_failover from the same list), runs the payload
// with its output tagged on the serial console, reports its exit code and
// reboots, which ends the VM. While the payload runs it serves exec
// sessions on a virtio-serial port (exec.go; it loads the virtio modules
// of /etc/dms/modules for it, virtio_console among them). The protocol is
// package vm/guest's.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// console writes whole tagged lines to the serial console.
var console struct {
	mu sync.Mutex
	f  *os.File
}

func emit(kind, text string) {
	console.mu.Lock()
	defer console.mu.Unlock()
	console.f.WriteString(guest.Prefix + kind + text + "\n")
}

func main() {
	console.f = os.Stdout
	rawOutput(console.f)
	code := run()
	syscall.Sync()
	// A reboot ends QEMU (it runs with -no-reboot); the kernel gets there
	// by a triple fault (reboot=t), which needs no firmware.
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	os.Exit(code)
}

// run prepares the guest, runs the payload and reports how it ended.
func run() int {
	mountBasics()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fail("read /proc/cmdline: %v", err)
	}
	spec, err := guest.Decode(string(cmdline))
	if err != nil {
		return fail("%v", err)
	}
	if len(spec.Mounts) > 0 || spec.Root != "" {
		if err := loadModules("/etc/dms/modules"); err != nil {
			return fail("%v", err)
		}
	}
	root := "/"
	if spec.Root != "" {
		if root, err = mountRoot(spec.Root); err != nil {
			return fail("%v", err)
		}
	}
	if spec.Net != nil {
		if err := setUpNet(spec.Net, root); err != nil {
			return fail("%v", err)
		}
	}
	var mounted []string
	defer func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			syscall.Unmount(mounted[i], 0)
		}
	}()
	for _, m := range spec.Mounts {
		target := filepath.Join(root, m.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fail("mount %s: %v", m.Target, err)
		}
		var flags uintptr
		if m.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		if err := syscall.Mount(m.Tag, target, "9p", flags, "trans=virtio,version=9p2000.L,msize=262144,cache=none"); err != nil {
			return fail("mount %s at %s: %v", m.Tag, m.Target, err)
		}
		mounted = append(mounted, target)
	}
	if spec.Dir != "" {
		os.MkdirAll(filepath.Join(root, spec.Dir), 0o755)
	}

	oomBefore := oomKills()
	env := spec.Env
	if !hasVar(env, "PATH") {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			os.Setenv("PATH", v) // exec.Command looks the program up in our own PATH
		}
	}
	cmd := exec.Command(spec.Args[0], spec.Args[1:]...)
	cmd.Env = env
	cmd.Dir = spec.Dir
	if root != "/" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		if cmd.Dir == "" {
			cmd.Dir = "/"
		}
		cmd.Path, cmd.Err = lookPathIn(root, spec.Args[0], cmd.Env), nil
	}
	out, errw := &lineWriter{kind: guest.Stdout, partial: guest.StdoutNoEOL}, &lineWriter{kind: guest.Stderr, partial: guest.StderrNoEOL}
	cmd.Stdout, cmd.Stderr = out, errw
	cmd.WaitDelay = time.Second // background children may keep the pipes open
	go serveExec(root, spec.Dir, env)
	emit(guest.Start, "")
	err = cmd.Run()
	out.flush()
	errw.flush()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		code = ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if ws.Signaled() && ws.Signal() == syscall.SIGKILL && oomKills() > oomBefore {
			emit(guest.Exit, strconv.Itoa(code)+guest.OOMSuffix)
			return code
		}
	case errors.Is(err, exec.ErrWaitDelay):
	default:
		emit(guest.Stderr, "guestinit: "+err.Error())
		code = 127
	}
	emit(guest.Exit, strconv.Itoa(code))
	return code
}

// lookPathIn finds a program in the root filesystem at root, along the
// PATH of env, and returns its path inside that root.
func lookPathIn(root, name string, env []string) string {
	if strings.Contains(name, "/") {
		return name
	}
	path := "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(filepath.Join(root, p)); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return name
}

func fail(format string, args ...any) int {
	emit(guest.Fail, fmt.Sprintf(format, args...))
	return 1
}

func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// mountBasics mounts /proc, /sys, /dev and /dev/pts (terminals for
// exec), which may exist already, and links /dev/fd and /dev/std*.
func mountBasics() {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"devpts", "/dev/pts"}} {
		os.MkdirAll(m.dir, 0o755)
		syscall.Mount(m.fs, m.dir, m.fs, 0, "")
	}
	// What udev would add and programs expect (cat /dev/stdin).
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		os.Symlink(target, "/dev/"+name)
	}
}

// sysFinitModule is finit_module(2) on amd64 (syscall has no constant).
const sysFinitModule = 313

// loadModules loads the kernel modules listed, one path per line, in
// list, but the subnet's (net.go loads those when the VM has one: a list
// may have virtio_net without failover, which it needs); a missing list
// means the kernel has what it needs built in.
func loadModules(list string) error {
	return loadModulesWith(list, func(name string) bool { return !subnetModules[name] })
}

// loadModulesWith loads, in the list's order, the modules of list whose
// file names (virtio_net.ko) want accepts.
func loadModulesWith(list string, want func(name string) bool) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, path := range strings.Fields(string(b)) {
		if !want(filepath.Base(path)) {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("load module: %w", err)
		}
		empty := [1]byte{}
		_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&empty[0])), 0)
		f.Close()
		if errno != 0 && errno != syscall.EEXIST {
			return fmt.Errorf("load module %s: %v", path, errno)
		}
	}
	return nil
}

// mountRoot mounts the root device at /newroot, with /proc, /sys and
// /dev inside it, and returns /newroot.
func mountRoot(dev string) (string, error) {
	const root = "/newroot"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("root device %s did not appear", dev)
		}
	}
	os.MkdirAll(root, 0o755)
	var errs []string
	mounted := false
	for _, fs := range []string{"ext4", "ext2", "squashfs", "erofs", "xfs", "btrfs"} {
		if err := syscall.Mount(dev, root, fs, 0, ""); err == nil {
			mounted = true
			break
		} else {
			errs = append(errs, fs+": "+err.Error())
		}
	}
	if !mounted {
		return "", fmt.Errorf("mount root %s: %s", dev, strings.Join(errs, "; "))
	}
	for _, d := range []string{"/proc", "/sys", "/dev"} {
		os.MkdirAll(root+d, 0o755)
		if err := syscall.Mount(d, root+d, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return "", fmt.Errorf("bind %s into the root: %v", d, err)
		}
	}
	return root, nil
}

// oomKills reads how many processes the kernel's OOM killer has killed.
func oomKills() int {
	f, err := os.Open("/proc/vmstat")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// rawOutput turns off output processing on the console, so a newline
// stays a newline (no CR added).
func rawOutput(f *os.File) {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return
	}
	t.Oflag &^= syscall.OPOST
	syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(&t)))
}

// lineWriter tags each line of one output stream for the console.
type lineWriter struct {
	kind, partial string
	mu            sync.Mutex
	buf           []byte
}

// maxLine is the longest piece of a line sent at once.
const maxLine = 4096

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		emit(w.kind, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		emit(w.partial, string(w.buf[:maxLine]))
		w.buf = w.buf[maxLine:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		emit(w.partial, string(w.buf))
		w.buf = nil
	}
}
