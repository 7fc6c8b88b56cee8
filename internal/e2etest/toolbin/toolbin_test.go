package toolbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	onPath := filepath.Join(dir, "path")
	gopath := filepath.Join(dir, "gopath")
	for _, d := range []string{onPath, filepath.Join(gopath, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := func(p string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	explicit := exe(filepath.Join(dir, "explicit"))
	inPath := exe(filepath.Join(onPath, "both"))
	inGoBin := exe(filepath.Join(gopath, "bin", "both"))
	exe(filepath.Join(gopath, "bin", "gobin-only"))
	t.Setenv("PATH", onPath)
	t.Setenv("GOPATH", gopath+string(os.PathListSeparator)+filepath.Join(dir, "second"))

	tests := []struct {
		name    string
		env     string // the value of $TOOLBIN_TEST
		bin     string
		path    bool
		want    string
		wantErr []string
	}{
		{name: "the variable wins", env: explicit, bin: "both", path: true, want: explicit},
		{name: "the variable names no file", env: filepath.Join(dir, "nope"), bin: "both", path: true, wantErr: []string{"TOOLBIN_TEST=" + filepath.Join(dir, "nope")}},
		{name: "PATH before the Go bin", bin: "both", path: true, want: inPath},
		{name: "PATH not looked at", bin: "both", want: inGoBin},
		{name: "the first GOPATH entry's bin", bin: "gobin-only", path: true, want: filepath.Join(gopath, "bin", "gobin-only")},
		{name: "nowhere", bin: "absent", path: true, wantErr: []string{"absent not found ($TOOLBIN_TEST, PATH, " + filepath.Join(gopath, "bin", "absent") + ")", "install it: go install absent"}},
		{name: "nowhere, PATH not looked at", bin: "absent", wantErr: []string{"($TOOLBIN_TEST, " + filepath.Join(gopath, "bin", "absent") + ")"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TOOLBIN_TEST", tt.env)
			got, err := Find(tt.bin, "TOOLBIN_TEST", tt.path, "go install "+tt.bin)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Find(%s) = %s, want an error", tt.bin, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Find(%s) = %v, want an error with %q", tt.bin, err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Find(%s) = %s, %v, want %s", tt.bin, got, err, tt.want)
			}
		})
	}
}
