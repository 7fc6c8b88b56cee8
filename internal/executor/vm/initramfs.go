package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Initramfs writes a cpio archive in the "newc" format, the one the Linux
// kernel unpacks as its initial root filesystem. Build a job's initramfs
// with it: the guest init (package vm/guestinit) as /init, the payload and
// what it needs beside it.
//
//	a := vm.NewInitramfs(f)
//	a.File("init", 0o755, guestInit)
//	a.Dir("bin", 0o755)
//	a.File("bin/app", 0o755, app)
//	err := a.Close()
//
// Paths are relative, slash-separated, and a directory must be written
// before what it holds. Errors stick: after the first one every call
// returns it.
type Initramfs struct {
	w   *bufio.Writer
	ino uint32
	err error
}

// NewInitramfs starts an archive on w.
func NewInitramfs(w io.Writer) *Initramfs {
	return &Initramfs{w: bufio.NewWriterSize(w, 64<<10), ino: 1}
}

// Mode bits of cpio entries (as in stat(2)).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

// Dir adds a directory.
func (a *Initramfs) Dir(path string, perm os.FileMode) error {
	return a.entry(path, modeDir|uint32(perm.Perm()), 2, nil)
}

// File adds a regular file.
func (a *Initramfs) File(path string, perm os.FileMode, data []byte) error {
	return a.entry(path, modeFile|uint32(perm.Perm()), 1, data)
}

// Symlink adds a symbolic link at path pointing to target.
func (a *Initramfs) Symlink(path, target string) error {
	return a.entry(path, modeSymlink|0o777, 1, []byte(target))
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (a *Initramfs) Close() error {
	if err := a.entry("TRAILER!!!", 0, 1, nil); err != nil {
		return err
	}
	if err := a.w.Flush(); err != nil {
		a.err = err
	}
	return a.err
}

func (a *Initramfs) entry(path string, mode, nlink uint32, data []byte) error {
	if a.err != nil {
		return a.err
	}
	if path == "" || strings.HasPrefix(path, "/") || strings.Contains(path, "\x00") {
		a.err = fmt.Errorf("initramfs: bad path %q (want a relative path)", path)
		return a.err
	}
	ino := a.ino
	a.ino++
	if path == "TRAILER!!!" {
		ino = 0
	}
	name := path + "\x00"
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	fmt.Fprintf(a.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name), 0)
	a.w.WriteString(name)
	a.pad(110 + len(name))
	a.w.Write(data)
	_, err := a.pad(len(data))
	if err != nil {
		a.err = err
	}
	return a.err
}

// pad writes zeros up to the next multiple of 4 after n bytes.
func (a *Initramfs) pad(n int) (int, error) {
	return a.w.Write(make([]byte, (4-n%4)%4))
}
