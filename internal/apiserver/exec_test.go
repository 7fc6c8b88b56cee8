package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// fakeExec is a DeploymentService with one deployment "d1" whose
// allocation "web" runs exec commands in-process: "cat" echoes stdin,
// "fail N" writes to stderr and exits N, "refuse" fails to start.
type fakeExec struct{ DeploymentService }

func (fakeExec) Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	if id != "d1" {
		return nil, &NotFound{Err: errors.New("deployment " + id + " not found")}
	}
	return &api.Deployment{ID: id}, nil
}

func (fakeExec) Exec(ctx context.Context, id, alloc string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	switch req.Cmd[0] {
	case "cat":
		if stdin == nil {
			return 0, errors.New("no stdin")
		}
		_, err := io.Copy(stdout, stdin)
		return 0, err
	case "size":
		sz := <-req.Resize
		fmt.Fprintf(stdout, "%dx%d\n", sz.Rows, sz.Cols)
		return 0, nil
	case "fail":
		var n int
		fmt.Sscan(req.Cmd[1], &n)
		fmt.Fprintf(stderr, "failing with %d, tty %v\n", n, req.TTY)
		return n, nil
	default:
		return 0, errors.New("exec is not supported by executor wasm")
	}
}

func TestExecEndpoint(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: fakeExec{}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c, _ := api.NewClient(api.ClientConfig{Addr: addr.String(), Token: token})
	big := strings.Repeat("x", 3*api.MaxFramePayload+7)
	tests := []struct {
		name       string
		id         string
		req        api.ExecRequest
		stdin      string
		wantOut    string
		wantErrOut string
		wantCode   int
		wantErr    string
	}{
		{name: "stdin round trip", id: "d1", req: api.ExecRequest{Cmd: []string{"cat"}, Stdin: true}, stdin: "hello\n", wantOut: "hello\n"},
		{name: "more than one frame", id: "d1", req: api.ExecRequest{Cmd: []string{"cat"}, Stdin: true}, stdin: big, wantOut: big},
		{name: "exit code and stderr", id: "d1", req: api.ExecRequest{Cmd: []string{"fail", "7"}, TTY: true, Rows: 24, Cols: 80}, wantErrOut: "failing with 7, tty true\n", wantCode: 7},
		{name: "resize", id: "d1", req: api.ExecRequest{Cmd: []string{"size"}, TTY: true, Resize: sizes(api.TermSize{Rows: 33, Cols: 120})}, wantOut: "33x120\n"},
		{name: "refused", id: "d1", req: api.ExecRequest{Cmd: []string{"sh"}}, wantErr: "exec is not supported by executor wasm"},
		{name: "unknown deployment", id: "nope", req: api.ExecRequest{Cmd: []string{"sh"}}, wantErr: "deployment nope not found"},
		{name: "no command", id: "d1", req: api.ExecRequest{}, wantErr: "cmd is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			var out, errOut strings.Builder
			code, err := c.Exec(cctx, tc.id, "web", tc.req, strings.NewReader(tc.stdin), &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Exec error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || out.String() != tc.wantOut || errOut.String() != tc.wantErrOut {
				t.Errorf("Exec = %d, %.40q, %q, want %d, %.40q, %q", code, out.String(), errOut.String(), tc.wantCode, tc.wantOut, tc.wantErrOut)
			}
		})
	}
}

func sizes(s ...api.TermSize) <-chan api.TermSize {
	ch := make(chan api.TermSize, len(s))
	for _, v := range s {
		ch <- v
	}
	return ch
}
