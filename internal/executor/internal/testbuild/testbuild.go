// Package testbuild builds the executors' test workloads: the workload
// program for Linux and wasip1, the VM guest init, a FROM-scratch image
// tarball and a busybox root filesystem. Only tests import it.
package testbuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Import paths of the programs the tests build.
const (
	Workload  = "github.com/dmsnet/dms/internal/executor/internal/workload"
	GuestInit = "github.com/dmsnet/dms/internal/executor/vm/guestinit"
)

// Go builds the main package pkg for goos/goarch, static and stripped,
// into dir/name and returns the file's path.
func Go(dir, pkg, goos, goarch, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s for %s/%s: %v\n%s", pkg, goos, goarch, err, b)
	}
	return out, nil
}

// File is one entry of a tarball or initramfs.
type File struct {
	Path     string // relative, slash-separated: "bin/sh"
	Mode     os.FileMode
	Data     []byte
	Linkname string // for a symlink (Mode has os.ModeSymlink)
}

// Tar writes files as a tar stream, as `docker import` takes it.
func Tar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.Path, Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data)), Typeflag: tar.TypeReg}
		switch {
		case f.Mode.IsDir():
			h.Typeflag, h.Name, h.Size = tar.TypeDir, f.Path+"/", 0
		case f.Mode&os.ModeSymlink != 0:
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.Linkname, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// BusyboxPath is where Debian's busybox-static installs busybox.
const BusyboxPath = "/bin/busybox"

// Busybox returns a root filesystem of the static busybox at path: the
// binary as bin/busybox and a symlink for each of its applets in bin.
func Busybox(path string) ([]File, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("busybox: %w (install Debian's busybox-static)", err)
	}
	if !isStatic(bin) {
		return nil, fmt.Errorf("busybox: %s is not statically linked (install Debian's busybox-static)", path)
	}
	list, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	files := []File{{Path: "bin", Mode: os.ModeDir | 0o755}, {Path: "bin/busybox", Mode: 0o755, Data: bin}}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			files = append(files, File{Path: "bin/" + applet, Mode: os.ModeSymlink | 0o777, Linkname: "busybox"})
		}
	}
	return files, nil
}

// isStatic reports whether an ELF binary has no program interpreter.
func isStatic(bin []byte) bool {
	return bytes.HasPrefix(bin, []byte("\x7fELF")) && !bytes.Contains(bin[:min(len(bin), 4096)], []byte("/lib64/ld-linux"))
}
