package allocation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestLogCreatedAtFirstOutput: a new log makes neither its directory nor
// its file until its first frame other than a mark; until then it reads as
// empty; a held mark is written before that frame, so the instance's output
// is attributed as before; a mark followed by nothing is never written.
func TestLogCreatedAtFirstOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a1")
	p := filepath.Join(dir, "log")
	l, err := openLog(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	l.mark("i0") // an instance with no output
	l.mark("i1")
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("directory after two marks: %v, want none", err)
	}
	if es, next, err := l.read(0, 1<<20, logFilter{}); err != nil || len(es) != 0 || next != 0 {
		t.Fatalf("read before any output = %v, %d, %v; want nothing at 0", es, next, err)
	}
	if out, errn, err := l.copied("i1"); err != nil || out != 0 || errn != 0 {
		t.Fatalf("copied(i1) before any output = %d, %d, %v; want 0, 0", out, errn, err)
	}
	if err := l.append(streamStdout, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if out, _, err := l.copied("i1"); err != nil || out != 5 {
		t.Errorf("copied(i1) = %d, %v; want 5", out, err)
	}
	es, _, err := l.read(0, 1<<20, logFilter{})
	if err != nil || entries(es) != "stdout:hello|" {
		t.Errorf("read = %q, %v; want stdout:hello|", entries(es), err)
	}
	// The file holds i1's mark then the output: reopened (a restart), it
	// reads and counts the same; i0 left no frame.
	l.close()
	r, err := openLog(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if out, _, err := r.copied("i1"); err != nil || out != 5 {
		t.Errorf("reopened: copied(i1) = %d, %v; want 5", out, err)
	}
	n := 0
	if _, err := r.scan(func(stream byte, data []byte) {
		if stream == streamMark && string(data) == "i0" {
			t.Error("the mark of i0, which wrote nothing, is in the file")
		}
		n++
	}); err != nil || n != 2 {
		t.Errorf("reopened log has %d frames (%v), want 2: i1's mark and its output", n, err)
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if err := r.append(streamStdout, []byte("x")); err == nil {
		t.Error("append after close succeeded, want an error")
	}
}

// TestCreateMakesNoFiles: an allocation without volumes has no directory
// until it writes output; one with volumes has it from the create.
func TestCreateMakesNoFiles(t *testing.T) {
	h := newHarness(t)
	h.create(h.m, "a1", "r1", task("exit=0"))
	if _, err := os.Stat(filepath.Join(h.dataDir, "a1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory of a new allocation without volumes: %v, want none", err)
	}
}
