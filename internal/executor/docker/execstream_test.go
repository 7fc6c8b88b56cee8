//go:build integration

package docker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/docker"
)

func TestExecStream(t *testing.T) {
	ctx := t.Context()
	ex := newExecutor(t, docker.Config{})
	id, err := ex.Start(ctx, shell("echo ready; sleep 3600"))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Remove(context.Background(), id)
	waitFor(t, ex, id, "ready")

	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	tests := []struct {
		name       string
		opts       executor.ExecOptions
		stdin      string
		wantOut    string
		wantErrOut string
		wantCode   int
	}{
		{name: "echo", opts: executor.ExecOptions{Cmd: []string{"echo", "hello", "world"}}, wantOut: "hello world\n"},
		{name: "stdin round trip", opts: executor.ExecOptions{Cmd: []string{"cat"}}, stdin: "line 1\nline 2\n", wantOut: "line 1\nline 2\n"},
		{name: "large stdin", opts: executor.ExecOptions{Cmd: []string{"cat"}}, stdin: big, wantOut: big},
		{name: "stderr and exit code", opts: executor.ExecOptions{Cmd: []string{"sh", "-c", "echo oops >&2; exit 7"}}, wantErrOut: "oops\n", wantCode: 7},
		{name: "tty merges the streams", opts: executor.ExecOptions{Cmd: []string{"sh", "-c", "tty >/dev/null && echo is-a-tty; echo err >&2"}, TTY: true, Rows: 24, Cols: 80}, wantOut: "is-a-tty\r\nerr\r\n"},
		{name: "tty exit code", opts: executor.ExecOptions{Cmd: []string{"sh", "-c", "exit 3"}, TTY: true}, wantCode: 3},
		// The engine of Debian 12 (API 1.41) ignores the size given at create: the
		// resize after attach races the command, hence the sleep.
		{name: "tty size", opts: executor.ExecOptions{Cmd: []string{"sh", "-c", "sleep 0.5; stty size </dev/tty"}, TTY: true, Rows: 33, Cols: 99}, wantOut: "33 99\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			opts := tc.opts
			opts.Stdout, opts.Stderr = &out, &errOut
			if tc.stdin != "" {
				opts.Stdin = strings.NewReader(tc.stdin)
			}
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			code, err := ex.ExecStream(cctx, id, opts)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || out.String() != tc.wantOut || errOut.String() != tc.wantErrOut {
				t.Errorf("ExecStream = %d, %.60q, %q; want %d, %.60q, %q", code, out.String(), errOut.String(), tc.wantCode, tc.wantOut, tc.wantErrOut)
			}
		})
	}
	t.Run("resize while running", func(t *testing.T) {
		resize := make(chan executor.TermSize, 1)
		resize <- executor.TermSize{Rows: 40, Cols: 100}
		var out bytes.Buffer
		code, err := ex.ExecStream(ctx, id, executor.ExecOptions{
			Cmd: []string{"sh", "-c", "sleep 1; stty size </dev/tty"}, TTY: true, Rows: 24, Cols: 80,
			Stdout: &out, Resize: resize,
		})
		if err != nil || code != 0 || out.String() != "40 100\r\n" {
			t.Errorf("ExecStream = %d, %v, %q; want 0, nil, \"40 100\\r\\n\"", code, err, out.String())
		}
	})
	if _, err := ex.ExecStream(ctx, id, executor.ExecOptions{Cmd: nil}); err == nil || !strings.Contains(err.Error(), "empty command") {
		t.Errorf("ExecStream(no command) = %v, want an empty-command error", err)
	}
}
