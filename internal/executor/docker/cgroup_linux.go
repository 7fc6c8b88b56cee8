package docker

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// watchEmpty closes the returned channel once the cgroup v2 whose
// cgroup.events file is events has no process left ("populated 0"): the
// container has ended, and its cgroup, removed a little later with the
// container, still holds its final counters. It watches until ctx ends.
func watchEmpty(ctx context.Context, events string) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: reads honour deadlines
	empty := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	go func() {
		defer f.Close()
		defer stop()
		var buf [4096]byte
		for {
			if unpopulated(events) {
				close(empty)
				return
			}
			if _, err := f.Read(buf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
				return // ctx ended, or the cgroup is gone
			}
		}
	}()
	return empty, nil
}

// unpopulated reports whether a cgroup.events file says "populated 0" (or
// cannot be read: the cgroup is gone).
func unpopulated(events string) bool {
	var buf [256]byte
	b, err := readSmall(events, buf[:])
	if err != nil {
		return true
	}
	v, ok := statField(b, "populated")
	return ok && v == 0
}
