package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
)

func TestExecRelay(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	d := w.submit(task("0.5", "print=up", "sleep=1m"))
	svc := w.nodes[0].svc
	waitState(t, svc, d.ID, orchestrator.Running)
	// The allocation's own state follows its report.
	err := poll.Until(context.Background(), 10*time.Second, "allocation running", func(context.Context) (bool, error) {
		got, err := svc.Get(d.ID)
		return err == nil && got.Allocations["job"] != nil && got.Allocations["job"].State == deployproto.AllocRunning, nil
	})
	if err != nil {
		t.Fatalf("allocation never ran: %v", err)
	}

	tests := []struct {
		name     string
		alloc    string
		req      deployproto.ExecRequest
		stdin    string
		want     string
		wantErr  string
		wantCode int
		notFound bool
	}{
		{name: "stdin round trip and exit code", alloc: "job", req: deployproto.ExecRequest{Cmd: []string{"sh", "print=done", "exit=3"}, Stdin: true}, stdin: "hello\n", want: "hello\ndone\n", wantCode: 3},
		{name: "no stdin", alloc: "job", req: deployproto.ExecRequest{Cmd: []string{"sh", "print=x"}}, want: "x\n"},
		{name: "large stdin is bounded, not lost", alloc: "job", req: deployproto.ExecRequest{Cmd: []string{"cat"}, Stdin: true}, stdin: strings.Repeat("0123456789abcdef", 64<<10), want: strings.Repeat("0123456789abcdef", 64<<10)},
		{name: "unknown allocation", alloc: "nope", req: deployproto.ExecRequest{Cmd: []string{"sh"}}, notFound: true},
		{name: "empty command", alloc: "job", req: deployproto.ExecRequest{Cmd: []string{""}}, wantErr: "empty command"},
		{name: "bad step", alloc: "job", req: deployproto.ExecRequest{Cmd: []string{"sh", "bogus"}}, wantErr: "exec in job"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out, errOut strings.Builder
			code, err := svc.Exec(ctx, d.ID, tc.alloc, tc.req, strings.NewReader(tc.stdin), &out, &errOut)
			if tc.notFound {
				if !errors.Is(err, orchestrator.ErrNotFound) {
					t.Fatalf("Exec = %v, want ErrNotFound", err)
				}
				return
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Exec error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want || code != tc.wantCode {
				t.Errorf("Exec = %d, stdout %.80q, want %d, %.80q (stderr %q)", code, out.String(), tc.wantCode, tc.want, errOut.String())
			}
		})
	}
}

// TestExecCancelEndsSession: a caller that goes away ends its session on
// the provider at once, so the allocation's session slots free up.
func TestExecCancelEndsSession(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	d := w.submit(task("0.5", "print=up", "sleep=1m"))
	svc := w.nodes[0].svc
	waitState(t, svc, d.ID, orchestrator.Running)
	err := poll.Until(context.Background(), 10*time.Second, "allocation running", func(context.Context) (bool, error) {
		got, err := svc.Get(d.ID)
		return err == nil && got.Allocations["job"] != nil && got.Allocations["job"].State == deployproto.AllocRunning, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// More sessions than an allocation holds at once, each abandoned while
	// its command waits for stdin that never ends.
	for i := range 6 {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		var out syncBuffer
		go func() {
			_, err := svc.Exec(ctx, d.ID, "job", deployproto.ExecRequest{Cmd: []string{"cat"}, Stdin: true}, pr, &out, io.Discard)
			done <- err
		}()
		pw.Write([]byte("ping\n"))
		if err := poll.Until(context.Background(), 10*time.Second, "echo", func(context.Context) (bool, error) { return out.String() == "ping\n", nil }); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("session %d: Exec after cancel = %v, want context.Canceled", i, err)
		}
		pw.Close()
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecResize: terminal sizes reach the provider's session while the
// command runs.
func TestExecResize(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	d := w.submit(task("0.5", "print=up", "sleep=1m"))
	svc := w.nodes[0].svc
	waitState(t, svc, d.ID, orchestrator.Running)
	if err := poll.Until(context.Background(), 10*time.Second, "allocation running", func(context.Context) (bool, error) {
		got, err := svc.Get(d.ID)
		return err == nil && got.Allocations["job"] != nil && got.Allocations["job"].State == deployproto.AllocRunning, nil
	}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	resize := make(chan deployproto.TermSize, 1)
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		code, err := svc.ExecResizable(context.Background(), d.ID, "job", deployproto.ExecRequest{Cmd: []string{"cat"}, Stdin: true, TTY: true, Rows: 24, Cols: 80}, pr, &out, &out, resize)
		if err == nil && code != 0 {
			err = errors.New("non-zero exit")
		}
		done <- err
	}()
	pw.Write([]byte("ready\n"))
	if err := poll.Until(context.Background(), 10*time.Second, "echo", func(context.Context) (bool, error) { return strings.Contains(out.String(), "ready\n"), nil }); err != nil {
		t.Fatal(err)
	}
	resize <- deployproto.TermSize{Rows: 40, Cols: 100}
	if err := poll.Until(context.Background(), 10*time.Second, "resize", func(context.Context) (bool, error) {
		return strings.Contains(out.String(), "resize 40x100\n"), nil
	}); err != nil {
		t.Fatalf("%v; output %q", err, out.String())
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
