package cli

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

// readBytes is what this process has read from files and pipes so far
// (rchar of /proc/self/io).
func readBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// TestDeployHashesEachFileOnce checks that dms deploy reads (and hashes)
// each local file once however many allocations refer to it: the red team's
// ensemble named one module in every one of its allocations and the CLI
// spent minutes of CPU on it. What the process reads is measured by the
// kernel (/proc/self/io), not by the code under test.
func TestDeployHashesEachFileOnce(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	module := make([]byte, size)
	copy(module, "\x00asm\x01\x00\x00\x00")
	for i := 8; i < size; i++ {
		module[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), module, 0o644); err != nil {
		t.Fatal(err)
	}
	other := []byte("\x00asm\x01\x00\x00\x00other")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "o.wasm"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		refs  int    // allocations naming m.wasm
		alias string // how the others name it
	}{
		{"one reference", 1, ""},
		{"a hundred references", 100, ""},
		{"the same file under two spellings", 100, "./sub/../m.wasm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("version: v1\nallocations:\n  a0: &x {executor: wasm, execution: {module: m.wasm}}\n")
			for i := 1; i < tc.refs; i++ {
				if tc.alias != "" && i%2 == 0 {
					fmt.Fprintf(&b, "  a%d: {executor: wasm, execution: {module: %q}}\n", i, tc.alias)
				} else {
					fmt.Fprintf(&b, "  a%d: *x\n", i)
				}
			}
			b.WriteString("  other: {executor: wasm, execution: {module: sub/o.wasm}}\n")
			file := filepath.Join(dir, "e.yaml")
			if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			a := &app{stderr: io.Discard}
			before := readBytes(t)
			req, spec, err := a.deployRequest(file)
			read := readBytes(t) - before
			if err != nil {
				t.Fatal(err)
			}
			// The file once, the ensemble, the small module; plus slack for
			// whatever else the process reads meanwhile (a second read of
			// the module would be 1 MiB more).
			if limit := int64(size + size/2); read > limit {
				t.Errorf("deployRequest read %d bytes for %d references to a %d-byte module, want at most %d (each file once)", read, tc.refs, size, limit)
			}
			sum := sha256.Sum256(module)
			want := ensemble.DigestPrefix + hex.EncodeToString(sum[:])
			if len(req.Artifacts) != 2 || string(req.Artifacts[want]) != string(module) {
				t.Errorf("artifacts: %d, want 2 with %s the module", len(req.Artifacts), want[:19])
			}
			for name, al := range spec.Allocations {
				if name != "other" && al.Execution.Module != want {
					t.Errorf("allocations.%s.execution.module = %q, want %q", name, al.Execution.Module, want)
				}
			}
		})
	}
}
