package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestWrite(t *testing.T) {
	type file struct {
		content string
		perm    fs.FileMode
	}
	tests := []struct {
		name    string
		old     *file // the file at path before, if any
		dirAt   bool  // a directory stands at path instead
		noDir   bool  // path's directory does not exist
		write   func(t *testing.T, path string) error
		wantErr error // errors.Is target; nil: no error
		anyErr  bool  // some error, of no particular kind
		want    *file // the file at path after; nil: none
	}{
		{name: "WriteFile creates", write: writeFile("new", 0o600), want: &file{"new", 0o600}},
		{name: "WriteFile sets perm exactly, umask aside", write: writeFile("new", 0o666), want: &file{"new", 0o666}},
		{name: "WriteFile writes an empty file", write: writeFile("", 0o644), want: &file{"", 0o644}},
		{name: "WriteFile replaces content and perm", old: &file{"old content", 0o644}, write: writeFile("new", 0o600), want: &file{"new", 0o600}},
		{name: "WriteFile into a missing directory", noDir: true, write: writeFile("new", 0o600), wantErr: fs.ErrNotExist},
		{name: "WriteFile over a directory fails at rename", dirAt: true, write: writeFile("new", 0o600), anyErr: true},
		{name: "WriteNew creates", write: writeNew("new", 0o600), want: &file{"new", 0o600}},
		{name: "WriteNew refuses to replace", old: &file{"old", 0o644}, write: writeNew("new", 0o600), wantErr: fs.ErrExist, want: &file{"old", 0o644}},
		{name: "WriteNew into a missing directory", noDir: true, write: writeNew("new", 0o600), wantErr: fs.ErrNotExist},
		{
			name: "Create, Write in parts, Commit",
			old:  &file{"old", 0o600},
			write: func(t *testing.T, p string) error {
				f, err := Create(p, 0o640)
				if err != nil {
					return err
				}
				defer f.Cleanup()
				for _, part := range []string{"ne", "", "w"} {
					if _, err := f.Write([]byte(part)); err != nil {
						return err
					}
				}
				if got, _ := os.ReadFile(p); string(got) != "old" {
					t.Errorf("before Commit, ReadFile = %q, want %q", got, "old")
				}
				return f.Commit()
			},
			want: &file{"new", 0o640},
		},
		{name: "a write abandoned by Cleanup leaves the old file", old: &file{"old", 0o600}, write: abandon, anyErr: true, want: &file{"old", 0o600}},
		{name: "a write abandoned by Cleanup creates nothing", write: abandon, anyErr: true},
		{
			name: "Commit twice",
			write: func(t *testing.T, p string) error {
				f, err := Create(p, 0o600)
				if err != nil {
					return err
				}
				f.Write([]byte("new"))
				if err := f.Commit(); err != nil {
					t.Fatalf("first Commit() = %v", err)
				}
				f.Cleanup()
				return f.Commit()
			},
			wantErr: os.ErrClosed,
			want:    &file{"new", 0o600},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			switch {
			case tt.noDir:
				path = filepath.Join(dir, "missing", "state.json")
			case tt.dirAt:
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			case tt.old != nil:
				if err := os.WriteFile(path, []byte(tt.old.content), tt.old.perm); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.old.perm); err != nil {
					t.Fatal(err)
				}
			}

			err := tt.write(t, path)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("write = %v, want %v", err, tt.wantErr)
			case tt.anyErr && err == nil:
				t.Errorf("write = nil, want an error")
			case tt.wantErr == nil && !tt.anyErr && err != nil:
				t.Errorf("write = %v, want nil", err)
			}

			if tt.want != nil {
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("ReadFile = %v", err)
				}
				if string(got) != tt.want.content {
					t.Errorf("content = %q, want %q", got, tt.want.content)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != tt.want.perm {
					t.Errorf("perm = %v, want %v", fi.Mode().Perm(), tt.want.perm)
				}
			} else if fi, err := os.Stat(path); !tt.dirAt && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat = %v, %v; want no file", fi, err)
			}

			// No temporary file is left behind, whatever happened.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			var want []string
			if tt.want != nil || tt.dirAt {
				want = []string{"state.json"}
			}
			if tt.noDir {
				want = nil
			}
			if !slices.Equal(names, want) {
				t.Errorf("directory holds %q, want %q", names, want)
			}
		})
	}
}

// writeFile and writeNew are the write steps of TestWrite's cases.
func writeFile(data string, perm fs.FileMode) func(*testing.T, string) error {
	return func(_ *testing.T, path string) error { return WriteFile(path, []byte(data), perm) }
}

func writeNew(data string, perm fs.FileMode) func(*testing.T, string) error {
	return func(_ *testing.T, path string) error { return WriteNew(path, []byte(data), perm) }
}

// abandon starts a write, then gives up as when its source fails, calling
// Cleanup twice (a deferred one after an explicit one).
func abandon(_ *testing.T, path string) error {
	f, err := Create(path, 0o600)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write([]byte("partial")); err != nil {
		return err
	}
	f.Cleanup()
	return errors.New("source failed")
}

// TestReadersSeeWholeFiles replaces a file over and over while readers read
// it: every read returns one whole version, never a mix, a part or nothing.
func TestReadersSeeWholeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	versions := [][]byte{bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<16)}
	if err := WriteFile(path, versions[0], 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("ReadFile = %v", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("ReadFile returned %d bytes that are neither version", len(got))
					return
				}
			}
		})
	}
	for i := range 50 {
		if err := WriteFile(path, versions[i%2], 0o600); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}
