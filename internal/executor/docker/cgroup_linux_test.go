package docker

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchEmpty writes a cgroup.events file as the kernel does (on a
// regular file, which inotify watches alike): the channel closes once it
// says "populated 0", not before.
func TestWatchEmpty(t *testing.T) {
	events := filepath.Join(t.TempDir(), "cgroup.events")
	if err := os.WriteFile(events, []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty, err := watchEmpty(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-empty:
		t.Fatal("watchEmpty fired while the cgroup is populated")
	default:
	}
	if err := os.WriteFile(events, []byte("populated 1\nfrozen 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-empty:
	case <-time.After(10 * time.Second):
		t.Fatal("watchEmpty did not fire after populated 0")
	}
	dir := t.TempDir()
	for content, want := range map[string]bool{
		"populated 1\nfrozen 0\n": false,
		"populated 0\nfrozen 0\n": true,
		"frozen 0\n":              false,
	} {
		p := filepath.Join(dir, "events")
		os.WriteFile(p, []byte(content), 0o644)
		if got := unpopulated(p); got != want {
			t.Errorf("unpopulated(%q) = %v, want %v", content, got, want)
		}
	}
	if !unpopulated(filepath.Join(dir, "gone")) {
		t.Error("unpopulated(a file that is gone) = false, want true")
	}
}
