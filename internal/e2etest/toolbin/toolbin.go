// Package toolbin finds the binaries of the real servers tests start
// (versitygw, ZincSearch, Jaeger): the path in an environment variable,
// else PATH, else the Go bin directory their install scripts write to.
package toolbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoBin returns the directory `go install` writes to: the first entry of
// $GOPATH (else `go env GOPATH`, else ~/go), then bin.
func GoBin() string {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	return filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin")
}

// Find returns the path of the binary name: $env when set (it must exist),
// else name on PATH when path is true, else GoBin()/name; the error names
// the places looked at and install, the command that provides it.
func Find(name, env string, path bool, install string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	where := "$" + env
	if path {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		where += ", PATH"
	}
	p := filepath.Join(GoBin(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found (%s, %s); install it: %s", name, where, p, install)
	}
	return p, nil
}
