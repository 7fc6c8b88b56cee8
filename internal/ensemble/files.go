package ensemble

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// DigestPrefix starts a content reference: "sha256:" followed by 64
// lower-case hex digits names a file by its SHA-256.
const DigestPrefix = "sha256:"

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// IsDigest reports whether ref names content by its SHA-256 rather than by
// a local path.
func IsDigest(ref string) bool { return digestRE.MatchString(ref) }

// checkFileRef reports why ref is neither a digest nor a usable path.
func checkFileRef(ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("empty file reference")
	case strings.HasPrefix(ref, DigestPrefix):
		if !IsDigest(ref) {
			return fmt.Errorf("%q is not a sha256 reference (want sha256: and 64 lower-case hex digits)", ref)
		}
	case strings.Contains(ref, "://"):
		return fmt.Errorf("%q: URLs are not supported (want a path relative to the ensemble file, or sha256:<hex>)", ref)
	case strings.ContainsAny(ref, "\x00\n\r"):
		return fmt.Errorf("%q is not a file path", ref)
	case strings.HasSuffix(ref, "/"):
		return fmt.Errorf("%q is a directory (want a file)", ref)
	}
	return nil
}

// FileRef is a local file an ensemble refers to.
type FileRef struct {
	Path string // the YAML path of the reference: allocations.hello.execution.module
	File string // the file, as written: relative to the ensemble file's directory, or absolute
}

// fileFields are the execution fields that hold file references.
var fileFields = []struct {
	name string
	get  func(*Execution) *string
}{
	{"module", func(e *Execution) *string { return &e.Module }},
	{"kernel", func(e *Execution) *string { return &e.Kernel }},
	{"initrd", func(e *Execution) *string { return &e.Initrd }},
	{"rootfs", func(e *Execution) *string { return &e.Rootfs }},
}

// LocalFiles lists the local files the spec refers to (wasm modules, vm
// kernels, initrds and root filesystems given as paths, not sha256
// references), sorted by path. The CLI reads them, relative to the
// ensemble file, and ships them with the deployment; this package never
// touches the disk.
func (s *Spec) LocalFiles() []FileRef {
	var out []FileRef
	for _, name := range mapkeys.Sorted(s.Allocations) {
		a := s.Allocations[name]
		for _, f := range fileFields {
			if ref := *f.get(&a.Execution); ref != "" && !strings.HasPrefix(ref, DigestPrefix) {
				out = append(out, FileRef{Path: keyPath(keyPath(keyPath("allocations", name), "execution"), f.name), File: ref})
			}
		}
	}
	return out
}

// ReplaceFiles replaces every local file reference with what fn returns
// for it, typically the sha256 reference of the file once shipped. It stops
// at fn's first error.
func (s *Spec) ReplaceFiles(fn func(FileRef) (string, error)) error {
	for _, name := range mapkeys.Sorted(s.Allocations) {
		a := s.Allocations[name]
		for _, f := range fileFields {
			p := f.get(&a.Execution)
			if *p == "" || strings.HasPrefix(*p, DigestPrefix) {
				continue
			}
			ref := FileRef{Path: keyPath(keyPath(keyPath("allocations", name), "execution"), f.name), File: *p}
			repl, err := fn(ref)
			if err != nil {
				return fmt.Errorf("%s: %w", ref.Path, err)
			}
			*p = repl
		}
		s.Allocations[name] = a
	}
	return nil
}
