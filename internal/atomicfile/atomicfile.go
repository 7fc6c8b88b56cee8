// Package atomicfile writes files atomically and durably: a reader of the
// path sees the old content or the new, never a part of it, and once a write
// returns nil a crash does not lose it.
//
// # Usage
//
//	err := atomicfile.WriteFile(path, data, 0o600) // create or replace
//	err := atomicfile.WriteNew(path, data, 0o600)  // create; fs.ErrExist if path exists
//
// To write from a stream, Create the file, Write to it, and Commit; a deferred
// Cleanup removes the temporary file when anything fails first:
//
//	f, err := atomicfile.Create(path, 0o600)
//	if err != nil {
//		return err
//	}
//	defer f.Cleanup()
//	if _, err := io.Copy(f, r); err != nil {
//		return err
//	}
//	return f.Commit()
//
// # How
//
// The data goes to a temporary file in path's directory, named
// "."+base+".tmp" and random digits, so listings that skip dot files skip
// it. The file gets exactly perm (with chmod: the umask does not apply)
// before anything is written to it, is fsynced and closed, then renamed over
// path (WriteNew hard-links it instead, which fails if path exists, even when
// two processes race), and the directory is fsynced so the new entry
// survives a crash. On any failure the temporary file is removed and path is
// left as it was.
//
// Errors are the *fs.PathError or *os.LinkError of the step that failed; they
// name the file, so callers add only their own context.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with mode perm, replacing any
// file there.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, (*File).Commit)
}

// WriteNew writes data to path atomically with mode perm, refusing to
// replace: if path exists it returns an error wrapping fs.ErrExist and leaves
// the file alone.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, (*File).commitNew)
}

func write(path string, data []byte, perm fs.FileMode, commit func(*File) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return commit(f)
}

// File is a temporary file that replaces its path on Commit. It is not safe
// for concurrent use.
type File struct {
	tmp  *os.File
	path string
	done bool // committed or cleaned up
}

// Create starts an atomic write of path with mode perm. Nothing is visible
// at path until Commit; Cleanup abandons the write.
func Create(path string, perm fs.FileMode) (*File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &File{tmp: tmp, path: path}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	return f.tmp.Write(p)
}

// Commit fsyncs the file, renames it over the path and fsyncs the directory.
// After a failure the path is unchanged, unless only the directory fsync
// failed: then the new content is in place but may not survive a crash.
func (f *File) Commit() error {
	return f.commit(os.Rename)
}

// commitNew is Commit that hard-links instead of renaming, so it fails with
// fs.ErrExist when the path exists.
func (f *File) commitNew() error {
	return f.commit(os.Link)
}

func (f *File) commit(place func(oldpath, newpath string) error) error {
	if f.done {
		return fmt.Errorf("commit %s: %w", f.path, os.ErrClosed)
	}
	defer f.Cleanup()
	if err := f.tmp.Sync(); err != nil {
		return err
	}
	if err := f.tmp.Close(); err != nil {
		return err
	}
	if err := place(f.tmp.Name(), f.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(f.path))
}

// Cleanup closes and removes the temporary file. It does nothing after
// Commit, and may be called more than once: defer it after Create.
func (f *File) Cleanup() {
	if f.done {
		return
	}
	f.done = true
	f.tmp.Close()
	// After a rename the name is gone and this fails harmlessly; after a
	// link it removes the temporary name, leaving the path.
	os.Remove(f.tmp.Name())
}

// syncDir fsyncs a directory so a new entry in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
