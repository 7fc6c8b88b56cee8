package orchestrator_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
)

// signalWriter signals every write.
type signalWriter chan struct{}

func (s signalWriter) Write(p []byte) (int, error) {
	s <- struct{}{}
	return len(p), nil
}

// BenchmarkExec measures an exec session over in-process actors with the
// fake executor: a keystroke echoed (stdin to the provider, its output
// back) and a whole short command (start, output, exit). The anchor is a
// logs request of the same allocation (two request/reply round trips).
func BenchmarkExec(b *testing.B) {
	w := newWorld(b, 2, worldOpts{})
	d := w.submit(task("0.5", "print=up", "sleep=10m"))
	svc := w.nodes[0].svc
	waitState(b, svc, d.ID, orchestrator.Running)
	if err := poll.Until(context.Background(), 10*time.Second, "allocation running", func(context.Context) (bool, error) {
		got, err := svc.Get(d.ID)
		return err == nil && got.Allocations["job"] != nil && got.Allocations["job"].State == deployproto.AllocRunning, nil
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.Run("anchor-logs-tail-1", func(b *testing.B) {
		for b.Loop() {
			if err := svc.Logs(ctx, d.ID, "job", false, deployproto.LogFilter{Tail: 1}, func(string, deployproto.LogEntry) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("echo-1-byte", func(b *testing.B) {
		pr, pw := io.Pipe()
		got := make(signalWriter)
		done := make(chan error, 1)
		go func() {
			_, err := svc.Exec(ctx, d.ID, "job", deployproto.ExecRequest{Cmd: []string{"cat"}, Stdin: true}, pr, got, io.Discard)
			done <- err
		}()
		for b.Loop() {
			pw.Write([]byte("x"))
			<-got
		}
		pw.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("command", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Exec(ctx, d.ID, "job", deployproto.ExecRequest{Cmd: []string{"sh", "print=x"}}, nil, io.Discard, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
