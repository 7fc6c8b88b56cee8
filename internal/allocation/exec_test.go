package allocation

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

func newTestSession() *execSession {
	_, cancel := context.WithCancel(context.Background())
	return &execSession{id: "s", cancel: cancel, idle: time.NewTimer(time.Hour), changed: make(chan struct{})}
}

// TestExecSessionBounds: output beyond maxExecBuffered waits for the reader
// instead of growing the buffer; what is read comes in order and in chunks
// of at most the asked size; the exit code comes only once all was read.
func TestExecSessionBounds(t *testing.T) {
	s := newTestSession()
	data := bytes.Repeat([]byte("0123456789"), maxExecBuffered/10+1000) // > maxExecBuffered
	written := make(chan error, 1)
	go func() {
		w := sessionWriter{s: s}
		half := len(data) / 2
		if _, err := w.Write(data[:half]); err != nil {
			written <- err
			return
		}
		_, err := w.Write(data[half:])
		written <- err
	}()
	var got []byte
	for len(got) < len(data) {
		s.mu.Lock()
		if n := len(s.stdout) + len(s.stderr); n > maxExecBuffered+len(data)/2 {
			s.mu.Unlock()
			t.Fatalf("buffer holds %d bytes, the bound is %d plus one write", n, maxExecBuffered)
		}
		out := s.takeLocked(deployproto.ExecChunk)
		ch := s.changed
		s.mu.Unlock()
		if len(out.Stdout) > deployproto.ExecChunk {
			t.Fatalf("took %d bytes, asked for at most %d", len(out.Stdout), deployproto.ExecChunk)
		}
		if out.Exited {
			t.Fatal("exited before the command finished")
		}
		got = append(got, out.Stdout...)
		if len(out.Stdout) == 0 {
			<-ch
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written (%d)", len(got), len(data))
	}
	s.sessionEnd(t, 5)
}

func (s *execSession) sessionEnd(t *testing.T, code int) {
	t.Helper()
	sessionWriter{s: s, stderr: true}.Write([]byte("bye\n"))
	s.finish(code, nil)
	s.mu.Lock()
	out := s.takeLocked(2)
	s.mu.Unlock()
	if out.Exited || string(out.Stderr) != "by" {
		t.Fatalf("first take = %+v, want 2 bytes and not exited", out)
	}
	s.mu.Lock()
	out = s.takeLocked(100)
	s.mu.Unlock()
	if !out.Exited || out.ExitCode != code || string(out.Stderr) != "e\n" {
		t.Fatalf("last take = %+v, want the rest and exit %d", out, code)
	}
}

// TestExecSessionClose: a writer waiting on a full buffer is released
// with an error when the session closes (idle, or the allocation gone).
func TestExecSessionClose(t *testing.T) {
	s := newTestSession()
	s.write(false, make([]byte, maxExecBuffered))
	done := make(chan error, 1)
	go func() {
		_, err := s.write(false, []byte("more"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write on a full buffer returned %v, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.close()
	if err := <-done; err == nil {
		t.Fatal("write after close succeeded")
	}
	x := &execSessions{m: map[string]*execSession{"s": s}}
	x.remove(s)
	if _, err := x.get("s"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("get after remove = %v, want ErrNoSession", err)
	}
}
