package local

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needLoop skips a test that needs root and loop devices.
func needLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop mounts")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no /dev/loop-control")
	}
}

// loopsUnder lists the loop devices whose backing file lies under root.
func loopsUnder(t *testing.T, root string) []string {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.HasPrefix(strings.TrimSpace(string(b)), root+"/") {
			out = append(out, f)
		}
	}
	return out
}

// waitNoLoops polls until no loop device is backed by a file under root.
func waitNoLoops(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := loopsUnder(t, root)
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop devices still attached to images under %s: %v", root, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// volume mounts a bounded volume in a fresh temporary directory and
// removes it at the end of the test.
func volume(t *testing.T, size int64) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "vol")
	t.Cleanup(func() {
		if err := Remove(dir); err != nil {
			t.Errorf("Remove: %v", err)
		}
		waitNoLoops(t, root)
	})
	if err := Mount(dir, size); err != nil {
		t.Fatalf("Mount(%s, %d) = %v", dir, size, err)
	}
	return root, dir
}

func isMount(t *testing.T, dir string) bool {
	t.Helper()
	_, mounted, err := mountSource(dir)
	if err != nil {
		t.Fatalf("mountSource(%s) = %v", dir, err)
	}
	return mounted
}

func TestMountRefusesBadInput(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		name string
		dir  string
		size int64
		err  string
	}{
		{"empty path", "", 0, "empty path"},
		{"relative", "vol", 1 << 20, "not absolute"},
		{"root", "/", 1 << 20, "root directory"},
		{"NUL", root + "/a\x00b", 0, "NUL"},
		{"negative", root + "/neg", -1, "negative"},
		{"too small", root + "/small", MinSize - 1, "below the minimum"},
		{"tiny", root + "/tiny", 4096, "1 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Mount(tc.dir, tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Mount(%q, %d) = %v, want an error with %q", tc.dir, tc.size, err, tc.err)
			}
		})
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("refused mounts left %d entries in %s", len(ents), root)
	}
}

func TestMountPlainDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	for range 2 { // idempotent
		if err := Mount(dir, 0); err != nil {
			t.Fatalf("Mount(%s, 0) = %v", dir, err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 {
		t.Errorf("mode = %v, want 0777", fi.Mode().Perm())
	}
	if _, err := os.Stat(dir + ".img"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("size 0 made an image: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
}

func TestWritePastSizeIsENOSPC(t *testing.T) {
	needLoop(t)
	cases := []struct {
		name string
		size int64
	}{
		{"1 MiB", 1 << 20},
		{"8 MiB", 8 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, dir := volume(t, tc.size)
			if !isMount(t, dir) {
				t.Fatalf("%s is not a mount point", dir)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o777 {
				t.Errorf("root mode = %v, want 0777", fi.Mode().Perm())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("fresh volume holds %v", ents)
			}
			_, capacity, err := Usage(dir)
			if err != nil {
				t.Fatal(err)
			}
			if capacity <= 0 || capacity > tc.size {
				t.Errorf("Usage capacity = %d, want in (0, %d]", capacity, tc.size)
			}

			f, err := os.Create(filepath.Join(dir, "big"))
			if err != nil {
				t.Fatal(err)
			}
			buf := bytes.Repeat([]byte{0xa5}, 64<<10)
			var written int64
			for written <= 2*tc.size {
				n, err := f.Write(buf)
				written += int64(n)
				if err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("write error = %v, want ENOSPC", err)
					}
					break
				}
			}
			if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("sync = %v", err)
			}
			f.Close()
			if written > tc.size {
				t.Fatalf("wrote %d bytes into a volume of %d", written, tc.size)
			}
			used, _, err := Usage(dir)
			if err != nil {
				t.Fatal(err)
			}
			if used < written/2 {
				t.Errorf("Usage used = %d after writing %d", used, written)
			}

			// The host's filesystem is not the volume's: it still takes writes.
			host := filepath.Join(root, "host-file")
			if err := os.WriteFile(host, buf, 0o600); err != nil {
				t.Errorf("host write after the volume filled = %v", err)
			}
			// The image is sparse: it takes about what was written.
			var st syscall.Stat_t
			if err := syscall.Stat(dir+".img", &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != tc.size {
				t.Errorf("image size = %d, want %d", st.Size, tc.size)
			}
		})
	}
}

func TestRemountKeepsData(t *testing.T) {
	needLoop(t)
	_, dir := volume(t, 4<<20)
	want := []byte("results of a long job")
	if err := os.WriteFile(filepath.Join(dir, "out.txt"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Mount(dir, 4<<20); err != nil { // already mounted: nothing happens
		t.Fatalf("second Mount = %v", err)
	}
	if err := Unmount(dir); err != nil {
		t.Fatalf("Unmount = %v", err)
	}
	if isMount(t, dir) {
		t.Fatal("still mounted after Unmount")
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file visible without the mount: %v", err)
	}
	if err := Unmount(dir); err != nil {
		t.Fatalf("Unmount of an unmounted volume = %v", err)
	}
	if err := Mount(dir, 8<<20); err == nil || !strings.Contains(err.Error(), "remove the volume") {
		t.Fatalf("Mount with another size = %v, want a refusal", err)
	}
	if err := Mount(dir, 4<<20); err != nil { // as after a node restart
		t.Fatalf("Mount again = %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after remount: %q, %v; want %q", got, err, want)
	}
}

func TestMountThroughSymlink(t *testing.T) {
	needLoop(t)
	root, _ := volume(t, 1<<20) // cleans up root's loop devices
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(link, "other")
	t.Cleanup(func() { Remove(dir) })
	for i := range 2 { // the second finds it mounted from its image
		if err := Mount(dir, 1<<20); err != nil {
			t.Fatalf("Mount #%d through a symlink = %v", i+1, err)
		}
	}
	if n := len(loopsUnder(t, root)); n != 2 {
		t.Errorf("%d loop devices under %s, want 2 (vol and other)", n, root)
	}
}

func TestRemoveCleansEverything(t *testing.T) {
	needLoop(t)
	root := t.TempDir()
	dir := filepath.Join(root, "vol")
	if err := Mount(dir, 2<<20); err != nil {
		t.Fatal(err)
	}
	if len(loopsUnder(t, root)) != 1 {
		t.Fatalf("loop devices for the image: %v, want one", loopsUnder(t, root))
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	for _, p := range []string{dir, dir + ".img", dir + ".img.tmp"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v", p, err)
		}
	}
	waitNoLoops(t, root)
	if err := Remove(dir); err != nil {
		t.Errorf("Remove of a removed volume = %v", err)
	}
}

func TestUnmountBusyIsLazy(t *testing.T) {
	needLoop(t)
	root, dir := volume(t, 2<<20)
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmount(dir); err != nil {
		f.Close()
		t.Fatalf("Unmount of a busy volume = %v", err)
	}
	if isMount(t, dir) {
		t.Error("busy volume still mounted on its directory")
	}
	if _, err := f.Write([]byte("still writable through the open file")); err != nil {
		t.Errorf("write to the detached volume = %v", err)
	}
	f.Close()
	waitNoLoops(t, root) // the last close frees the loop device
	if err := Mount(dir, 2<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "open")); err != nil || len(b) == 0 {
		t.Errorf("data written while detached: %q, %v", b, err)
	}
}

func TestMountRefusesForeignMount(t *testing.T) {
	needLoop(t)
	_, a := volume(t, 2<<20)
	// Make b's directory a mount of a's image through a bind mount.
	b := filepath.Join(filepath.Dir(a), "b")
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(a, b, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(b, 0) })
	if err := Mount(b, 2<<20); err == nil || !strings.Contains(err.Error(), "already a mount") {
		t.Fatalf("Mount over a foreign mount = %v, want a refusal", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	cases := []struct {
		name, line    string
		point, source string
		ok            bool
	}{
		{"kernel doc", "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue", "/mnt2", "/dev/root", true},
		{"no optional", "90 30 7:0 / /tmp/x rw,nosuid,nodev - ext4 /dev/loop0 rw", "/tmp/x", "/dev/loop0", true},
		{"escaped space", `90 30 7:0 / /tmp/a\040b rw - ext4 /dev/loop1 rw`, "/tmp/a b", "/dev/loop1", true},
		{"escaped backslash", `90 30 7:0 / /tmp/a\134b rw - ext4 /dev/loop1 rw`, `/tmp/a\b`, "/dev/loop1", true},
		{"bad escape kept", `90 30 7:0 / /tmp/a\9 rw - ext4 src rw`, `/tmp/a\9`, "src", true},
		{"no separator", "90 30 7:0 / /tmp/x rw shared:1 ext4 /dev/loop0 rw", "", "", false},
		{"short", "90 30 7:0 /", "", "", false},
		{"nothing after separator", "90 30 7:0 / /x rw -", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			point, source, ok := parseMountinfo(tc.line)
			if point != tc.point || source != tc.source || ok != tc.ok {
				t.Errorf("parseMountinfo(%q) = %q, %q, %v; want %q, %q, %v", tc.line, point, source, ok, tc.point, tc.source, tc.ok)
			}
		})
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue")
	f.Add(`90 30 7:0 / /tmp/a\040b rw - ext4 /dev/loop1 rw`)
	f.Add(`1 2 3 4 \777\0 6 - \`)
	f.Fuzz(func(t *testing.T, line string) {
		point, source, ok := parseMountinfo(line)
		if !ok && (point != "" || source != "") {
			t.Errorf("not ok but returned %q, %q", point, source)
		}
		if len(point) > len(line) || len(source) > len(line) {
			t.Errorf("unescaping grew the fields")
		}
	})
}
