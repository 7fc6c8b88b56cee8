package subnettest

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

// RequireRoot skips the test unless it can make network namespaces and
// TUN devices.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no TUN support: %v", err)
	}
}

var nsCount atomic.Int64

// NewNetns makes a network namespace bound at
// /var/run/netns/dmst-<pid>-<n> and returns its path; it is deleted when
// the test ends. The name is unique across the test processes of one
// machine, so packages may run their tests at the same time.
func NewNetns(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("dmst-%d-%d", os.Getpid(), nsCount.Add(1))
	if err := onThread("", name, func() error { return nil }); err != nil {
		t.Fatalf("new netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return "/var/run/netns/" + name
}

// InNetns runs f on a thread inside the namespace at path, and fails the
// test with f's error. Sockets f opens stay in that namespace.
func InNetns(t testing.TB, path string, f func() error) {
	t.Helper()
	if err := onThread(path, "", f); err != nil {
		t.Fatalf("in %s: %v", path, err)
	}
}

// onThread runs f on a locked OS thread in the namespace at path (when
// path is "", a new one bound as name), then returns the thread to its
// namespace; a thread that cannot return stays locked, so Go ends it.
func onThread(path, name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		var ns netns.NsHandle
		if path == "" {
			ns, err = netns.NewNamed(name)
		} else if ns, err = netns.GetFromPath(path); err == nil {
			err = netns.Set(ns)
		}
		if err == nil {
			ns.Close()
			err = f()
		}
		if rerr := netns.Set(orig); rerr != nil {
			errc <- fmt.Errorf("restore namespace: %w", rerr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
