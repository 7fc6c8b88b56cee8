package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchmarkCmd(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "--home", home, "-o", "json", "benchmark", "--budget", "400ms")
	if code != 0 {
		t.Fatalf("dms benchmark: exit %d: %s", code, stderr)
	}
	var r BenchmarkResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("dms benchmark -o json printed %q: %v", stdout, err)
	}
	if r.CPUSingle <= 0 || r.MemoryMBps <= 0 || r.DiskWriteMBps <= 0 || r.FsyncP50 <= 0 || r.Version < 1 || r.DataDir != dir {
		t.Fatalf("dms benchmark -o json = %+v, want scores > 0 measured in %s", r, dir)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("dms benchmark left files in %s: %v", dir, entries)
	}

	code, stdout, stderr = run(t, "--home", home, "benchmark", "--budget", "300ms", "--dir", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "cpu single") || !strings.Contains(stdout, "fsync") {
		t.Fatalf("dms benchmark = exit %d, %q, %q, want a table", code, stdout, stderr)
	}

	for _, args := range [][]string{
		{"benchmark", "--budget", "0s"},
		{"benchmark", "--budget", "ten"},
		{"benchmark", "extra"},
	} {
		if code, _, stderr := run(t, append([]string{"--home", home}, args...)...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("dms %v = exit %d, stderr %q, want a one-line usage error", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "--home", home, "benchmark", "--budget", "300ms", "--dir", "/nonexistent/x"); code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("dms benchmark --dir missing = exit %d, %q, want a one-line failure", code, stderr)
	}
}
