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
