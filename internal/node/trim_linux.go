package node

import (
	"bufio"
	"debug/elf"
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimBinary drops this process's page-table references to the read-only
// segments of its own executable (code, read-only data, the pc tables),
// so that the resident set counts what the running node touches, not
// every page that package initialisers and start-up faulted in (the
// kernel maps file pages 64 KiB around each fault). The pages stay in the
// page cache: a page used again is mapped back by a minor fault. Writable
// segments are never touched (MADV_DONTNEED would discard their changes).
// It returns the bytes of the ranges advised.
//
// Only a fixed-address executable without a RELRO segment is trimmed: a
// position-independent build has relocations applied to pages that are
// read-only after start-up, and dropping those would bring back the
// unrelocated file contents.
func trimBinary() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if err := trimmable(exe); err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return total, errno
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}

// errNotTrimmable says the executable's read-only pages may hold changes.
var errNotTrimmable = errors.New("executable is position-independent or has a RELRO segment")

// trimmable reports whether the read-only segments of the executable at
// path are exactly the file's contents while it runs.
func trimmable(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		return errNotTrimmable
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_GNU_RELRO {
			return errNotTrimmable
		}
	}
	return nil
}
