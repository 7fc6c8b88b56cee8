// Package local makes a provider directory a volume, optionally bounded in
// size.
//
// Usage:
//
//	if err := local.Mount("/var/lib/dms/volumes/d1/out", 64<<20); err != nil { ... }
//	defer local.Unmount("/var/lib/dms/volumes/d1/out")  // keeps the data
//	used, size, err := local.Usage("/var/lib/dms/volumes/d1/out")
//	local.Remove("/var/lib/dms/volumes/d1/out")           // data and image gone
//
// A bounded volume is an ext4 filesystem in a sparse image file (the
// directory's path + ".img", beside it), attached to a free loop device
// with autoclear (unmounting frees the device) and mounted nodev,nosuid on
// the directory. A job writing past the size gets ENOSPC from its own
// filesystem; the node's disk and the other jobs are unaffected. The image
// reserves no root blocks, so the job gets all of it except the
// filesystem's own metadata (an ext4 journal and inode tables take a few
// percent; statfs, as Usage reports it, says how much is left).
//
// The root of a mounted volume, and a plain directory made for size 0, is
// world-writable (0o777): a container's user is often not root and not
// known to the node, and the directory is only ever bind-mounted into the
// one allocation that owns it.
//
// Mount, Unmount and Remove need root (CAP_SYS_ADMIN) for a bounded volume.
// Calls for one directory must not run concurrently; calls for different
// directories may.
package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MinSize is the smallest bounded volume: ext4 needs some room for itself.
const MinSize = 1 << 20

// dirMode is the mode of a volume's root: writable by a container's
// non-root user.
const dirMode = 0o777

// Mount makes dir a volume of at most size bytes: an ext4 filesystem in a
// sparse image file (dir + ".img", beside dir) loop-mounted on dir. size 0
// makes dir a plain directory. It is idempotent: when the image exists and
// dir is not mounted (after a node restart) it is mounted again with its
// data; when dir is already mounted from its image, nothing happens. An
// existing image of another size is refused (its data stays).
func Mount(dir string, size int64) error {
	dir, err := checkDir(dir)
	if err != nil {
		return err
	}
	switch {
	case size < 0:
		return fmt.Errorf("volume %s: size %d is negative", dir, size)
	case size == 0:
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		return os.Chmod(dir, dirMode)
	case size < MinSize:
		return fmt.Errorf("volume %s: size %d is below the minimum of %d bytes (1 MiB)", dir, size, MinSize)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	// The kernel names a loop device's file by its real path.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	img := dir + ".img"
	src, mounted, err := mountSource(dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if mounted {
		if backing, _ := loopBacking(src); backing == img {
			return nil
		}
		return fmt.Errorf("volume %s: already a mount of %s, not of its image %s", dir, src, img)
	}
	fi, err := os.Stat(img)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := makeImage(img, size); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		if err := mountImage(img, dir); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		// A fresh volume shows the job an empty directory.
		_ = os.Remove(filepath.Join(dir, "lost+found"))
		return nil
	case err != nil:
		return fmt.Errorf("volume %s: %w", dir, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("volume %s: image %s is not a regular file", dir, img)
	case fi.Size() != size:
		return fmt.Errorf("volume %s: image %s holds %d bytes, not the %d asked for (remove the volume to change its size)", dir, img, fi.Size(), size)
	}
	if err := mountImage(img, dir); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	return nil
}

// Unmount unmounts dir if it is a mount, keeping its image (and so its
// data). When the volume is busy it is detached lazily: it disappears from
// dir now and is freed, with its loop device, once the last user closes it.
func Unmount(dir string) error {
	dir, err := checkDir(dir)
	if err != nil {
		return err
	}
	_, mounted, err := mountSource(dir)
	if err != nil || !mounted {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	err = unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("volume %s: unmount: %w", dir, err)
	}
	return nil
}

// Remove unmounts dir and deletes it and its image. A volume that does not
// exist is not an error.
func Remove(dir string) error {
	if err := Unmount(dir); err != nil {
		return err
	}
	dir, _ = checkDir(dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if err := os.Remove(dir + ".img"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	return nil
}

// Usage returns the bytes used in the filesystem holding dir and its
// capacity, as statfs counts them (for a plain directory: the host's
// filesystem).
func Usage(dir string) (used, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("volume %s: statfs: %w", dir, err)
	}
	bs := int64(st.Bsize)
	return (int64(st.Blocks) - int64(st.Bfree)) * bs, int64(st.Blocks) * bs, nil
}

// checkDir refuses paths that cannot be a volume and returns dir cleaned.
func checkDir(dir string) (string, error) {
	switch {
	case dir == "":
		return "", errors.New("volume: empty path")
	case !filepath.IsAbs(dir):
		return "", fmt.Errorf("volume %q: path is not absolute", dir)
	case strings.ContainsAny(dir, "\x00\n"):
		return "", fmt.Errorf("volume %q: path holds a NUL or newline", dir)
	}
	dir = filepath.Clean(dir)
	if dir == "/" {
		return "", errors.New("volume /: refusing the root directory")
	}
	return dir, nil
}

// makeImage writes an empty ext4 filesystem of size bytes to img, through
// a temporary file so that a crash leaves no half-made image.
func makeImage(img string, size int64) error {
	tmp := img + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create image: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create image: %w", err)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		mkfs = "/usr/sbin/mkfs.ext4"
	}
	// -m 0: no blocks reserved for root; -F: a file, not a device;
	// lazy_itable_init=0,lazy_journal_init=0: no background zeroing
	// after mount, so the image stays sparse and unmount is immediate.
	out, err := exec.Command(mkfs, "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", tmp).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkfs.ext4: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create image: %w", err)
	}
	return nil
}

// mountImage attaches img to a free loop device with autoclear and mounts
// it on dir. On any failure the loop device is released.
func mountImage(img, dir string) error {
	loop, err := attachLoop(img)
	if err != nil {
		return err
	}
	// Closing the device once mounted is what autoclear waits for: the
	// device then goes with the last unmount. Closed before a mount, it
	// is released at once.
	defer loop.Close()
	if err := unix.Mount(loop.Name(), dir, "ext4", unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", loop.Name(), dir, err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		_ = unix.Unmount(dir, 0)
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// attachLoop binds img to a free loop device (LOOP_CTL_GET_FREE, then
// LOOP_CONFIGURE with autoclear) and returns the open device. Another
// process can take the free device first; then it asks again.
func attachLoop(img string) (*os.File, error) {
	backing, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	var lastErr error
	for range 8 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("no free loop device: %w", err)
		}
		dev, err := openLoop(n)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], img)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("configure %s: %w", dev.Name(), err)
		}
		lastErr = err // taken by someone else meanwhile
	}
	return nil, fmt.Errorf("no free loop device: %w", lastErr)
}

// openLoop opens /dev/loopN, making the node when the container's /dev
// lacks it.
func openLoop(n int) (*os.File, error) {
	name := "/dev/loop" + strconv.Itoa(n)
	dev, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("mknod %s: %w", name, err)
		}
		dev, err = os.OpenFile(name, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return dev, nil
}

// loopBacking returns the file behind loop device dev ("/dev/loop3").
func loopBacking(dev string) (string, error) {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "loop") {
		return "", fmt.Errorf("%s is not a loop device", dev)
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// mountSource reports whether dir is a mount point and, if so, what is
// mounted there (the last mount on it wins).
func mountSource(dir string) (src string, mounted bool, err error) {
	if _, err := os.Stat(dir); err != nil {
		return "", false, err
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	return findMount(f, real)
}

// findMount scans a mountinfo file for mount point dir.
func findMount(r io.Reader, dir string) (src string, mounted bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		point, source, ok := parseMountinfo(sc.Text())
		if ok && point == dir {
			src, mounted = source, true
		}
	}
	return src, mounted, sc.Err()
}

// parseMountinfo returns the mount point and source of one line of
// /proc/self/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(line string) (point, source string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return "", "", false
	}
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return "", "", false
	}
	return unescapeOctal(fields[4]), unescapeOctal(fields[sep+2]), true
}

// unescapeOctal undoes the kernel's \NNN escapes (space, tab, newline,
// backslash) in mountinfo fields.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := int(s[i+1]-'0')<<6 | int(s[i+2]-'0')<<3 | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
