package resource

import (
	"os"

	"golang.org/x/sys/unix"
)

// statfs returns the size of the filesystem holding path and the space
// available to unprivileged users, in bytes.
func statfs(path string) (total, free uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}

// dropCache asks the kernel to drop f's clean pages from the page cache, so
// that the next read comes from the device.
func dropCache(f *os.File) error {
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
