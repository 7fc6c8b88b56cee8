package e2etest

import (
	"os/exec"
	"strings"
	"testing"
)

// RunInput is Run with stdin read from input.
func (h *Home) RunInput(t testing.TB, input string, args ...string) Result {
	t.Helper()
	return h.exec(t, strings.NewReader(input), h.Bin, append([]string{"--home", h.Dir}, args...)...)
}

// RunTerminal is Run with the command's stdin, stdout and stderr on a
// pseudo-terminal, through script(1) (util-linux); ok is false when script
// is not installed. Stdout then holds everything the terminal showed.
func (h *Home) RunTerminal(t testing.TB, args ...string) (res Result, ok bool) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		return Result{}, false
	}
	quoted := make([]string, 0, len(args)+3)
	for _, a := range append([]string{h.Bin, "--home", h.Dir}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return h.exec(t, nil, script, "-qefc", strings.Join(quoted, " "), "/dev/null"), true
}
