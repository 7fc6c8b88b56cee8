package e2etest

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RunInput is Run with stdin read from input.
func (h *Home) RunInput(t testing.TB, input string, args ...string) Result {
	t.Helper()
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, append([]string{"--home", h.Dir}, args...)...)
	cmd.Env = h.environ()
	cmd.Dir = h.WorkDir
	cmd.Stdin = strings.NewReader(input)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("dms %s: %v", strings.Join(args, " "), err)
		}
		res.Code = ee.ExitCode()
	}
	return res
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
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qefc", strings.Join(quoted, " "), "/dev/null")
	cmd.Env = h.environ()
	cmd.Dir = h.WorkDir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	res = Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		ee, isExit := err.(*exec.ExitError)
		if !isExit {
			t.Fatalf("script dms %s: %v", strings.Join(args, " "), err)
		}
		res.Code = ee.ExitCode()
	}
	return res, true
}
