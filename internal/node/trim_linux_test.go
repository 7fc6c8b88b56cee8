package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTrimBinary: the read-only segments of the test binary are advised
// away and the program runs on (code and read-only data fault back in).
func TestTrimBinary(t *testing.T) {
	n, err := trimBinary()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("trimmed %d bytes, want the binary's read-only segments", n)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("still running after trimming %d bytes", n)))
	if sum == ([32]byte{}) {
		t.Fatal("sha256 of a string is zero")
	}
}

// TestTrimmableRefusesPIE: a position-independent build is never trimmed
// (its relocated read-only pages would revert to the file's contents).
func TestTrimmableRefusesPIE(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		want error
	}{
		{"exe", nil},
		{"pie", errNotTrimmable},
	} {
		bin := filepath.Join(dir, tc.mode)
		cmd := exec.Command("go", "build", "-buildmode="+tc.mode, "-o", bin, src)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -buildmode=%s: %v\n%s", tc.mode, err, out)
		}
		if err := trimmable(bin); !errors.Is(err, tc.want) {
			t.Errorf("trimmable(%s build) = %v, want %v", tc.mode, err, tc.want)
		}
	}
}
