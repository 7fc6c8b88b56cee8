//go:build linux

package featureenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on a thread that has entered the network namespace at
// path (e.g. /proc/PID/ns/net). Sockets fn opens stay in that namespace.
func inNetns(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine: it must
		// not run anything else in the wrong namespace.
		return fmt.Errorf("leave netns %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// iptablesIn runs iptables with args in the network namespace at path,
// through nsenter (the binaries are the host's: the node images have
// none).
func iptablesIn(ctx context.Context, path string, args ...string) error {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + path, "iptables", "-w"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables %s in %s: %w: %s", strings.Join(args, " "), path, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// iptablesRestoreIn feeds rules to iptables-restore --noflush in the
// network namespace at path: the chains the rules declare are replaced
// at once, the others kept.
func iptablesRestoreIn(ctx context.Context, path, rules string) error {
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+path, "iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore in %s: %w: %s\n%s", path, err, strings.TrimSpace(out.String()), rules)
	}
	return nil
}

// hostTools checks that this machine can shape the network: root, and
// nsenter and iptables on the PATH.
func hostTools() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: shaping the network needs root (setns, iptables in the containers' namespaces)", ErrUnsupported)
	}
	for _, tool := range []string{"nsenter", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s is not installed (Debian: util-linux, iptables)", ErrUnsupported, tool)
		}
	}
	return nil
}
