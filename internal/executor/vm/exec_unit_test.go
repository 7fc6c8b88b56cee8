package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/instance"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// These tests run ExecStream against a fake guest agent on a net.Pipe: no
// QEMU, no kernel (TestExecStreamVM has the real one).

// fakeAgent answers open frames by the command's name: "echo ARGS…"
// prints them, "cat" returns its stdin at stdin-closed, "fail" writes to
// stderr and exits 3, "size" prints the last terminal size at
// stdin-closed, "resize" prints the first new size, "hang" never ends (its stdin-closed is reported on
// closed).
func fakeAgent(t *testing.T, conn net.Conn, closed chan<- uint32) {
	send := func(f guest.Frame) {
		if err := guest.WriteFrame(conn, f); err != nil {
			t.Logf("agent: %v", err)
		}
	}
	send(guest.Frame{Type: guest.FrameHello})
	type sess struct {
		req        guest.ExecRequest
		in         bytes.Buffer
		rows, cols int
	}
	sessions := map[uint32]*sess{}
	for {
		f, err := guest.ReadFrame(conn)
		if err != nil {
			return
		}
		s := sessions[f.Session]
		switch f.Type {
		case guest.FrameOpen:
			req, err := guest.ParseOpen(f.Data)
			if err != nil {
				t.Errorf("agent: %v", err)
				return
			}
			s = &sess{req: req, rows: req.Rows, cols: req.Cols}
			sessions[f.Session] = s
			switch req.Args[0] {
			case "echo":
				send(guest.Frame{Type: guest.FrameStdout, Session: f.Session, Data: []byte(strings.Join(req.Args[1:], " ") + "\n")})
				send(guest.ExitFrame(f.Session, 0))
			case "fail":
				send(guest.Frame{Type: guest.FrameStdout, Session: f.Session, Data: []byte("out\n")})
				send(guest.Frame{Type: guest.FrameStderr, Session: f.Session, Data: []byte("err\n")})
				send(guest.ExitFrame(f.Session, 3))
			}
		case guest.FrameStdin:
			s.in.Write(f.Data)
		case guest.FrameResize:
			s.rows, s.cols = guest.ParseResize(f.Data)
			if s.req.Args[0] == "resize" {
				send(guest.Frame{Type: guest.FrameStdout, Session: f.Session, Data: fmt.Appendf(nil, "%d %d", s.rows, s.cols)})
				send(guest.ExitFrame(f.Session, 0))
			}
		case guest.FrameStdinClose:
			switch s.req.Args[0] {
			case "cat":
				for b := s.in.Bytes(); len(b) > 0; b = b[min(len(b), guest.MaxFramePayload):] {
					send(guest.Frame{Type: guest.FrameStdout, Session: f.Session, Data: b[:min(len(b), guest.MaxFramePayload)]})
				}
				send(guest.ExitFrame(f.Session, 0))
			case "size":
				send(guest.Frame{Type: guest.FrameStdout, Session: f.Session, Data: fmt.Appendf(nil, "%d %d", s.rows, s.cols)})
				send(guest.ExitFrame(f.Session, 0))
			case "hang":
				closed <- f.Session
			}
		}
	}
}

// fakeVM adds a running instance whose exec connection is a fake agent.
func fakeVM(t *testing.T) (*Executor, string, net.Conn, chan uint32) {
	e, _ := New(Config{})
	in := &process{}
	in.Instance = instance.New(0, func(time.Duration) {})
	id, err := e.instances.Add(in)
	if err != nil {
		t.Fatal(err)
	}
	host, agent := net.Pipe()
	closed := make(chan uint32, 4)
	go fakeAgent(t, agent, closed)
	in.agent = newExecConn(host)
	t.Cleanup(func() { host.Close(); agent.Close() })
	return e, id, agent, closed
}

func TestExecStreamFrames(t *testing.T) {
	e, id, _, _ := fakeVM(t)
	if _, ok := executor.Executor(e).(executor.ExecStreamer); !ok {
		t.Fatal("vm.Executor is not an ExecStreamer: allocations would refuse exec")
	}
	resize := make(chan executor.TermSize, 1)
	resize <- executor.TermSize{Rows: 50, Cols: 132}
	for _, tc := range []struct {
		name             string
		opts             executor.ExecOptions
		code             int
		wantOut, wantErr string
	}{
		{name: "echo", opts: executor.ExecOptions{Cmd: []string{"echo", "a", "b"}}, wantOut: "a b\n"},
		{name: "stdin", opts: executor.ExecOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader(strings.Repeat("y", 100<<10))}, wantOut: strings.Repeat("y", 100<<10)},
		{name: "stderr and code", opts: executor.ExecOptions{Cmd: []string{"fail"}}, code: 3, wantOut: "out\n", wantErr: "err\n"},
		{name: "tty merges stderr", opts: executor.ExecOptions{Cmd: []string{"fail"}, TTY: true}, code: 3, wantOut: "out\nerr\n"},
		{name: "tty size", opts: executor.ExecOptions{Cmd: []string{"size"}, TTY: true, Rows: 24, Cols: 80}, wantOut: "24 80"},
		{name: "resize", opts: executor.ExecOptions{Cmd: []string{"resize"}, TTY: true, Rows: 24, Cols: 80, Resize: resize}, wantOut: "50 132"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			tc.opts.Stdout, tc.opts.Stderr = &out, &errb
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			code, err := e.ExecStream(ctx, id, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || out.String() != tc.wantOut || errb.String() != tc.wantErr {
				t.Errorf("got %d, %.40q, %q; want %d, %.40q, %q", code, out.String(), errb.String(), tc.code, tc.wantOut, tc.wantErr)
			}
		})
	}
}

func TestExecForHealthChecks(t *testing.T) {
	e, id, _, _ := fakeVM(t)
	var out, errb bytes.Buffer
	code, err := e.Exec(t.Context(), id, []string{"fail"}, &out, &errb)
	if err != nil || code != 3 || out.String() != "out\n" || errb.String() != "err\n" {
		t.Errorf("Exec = %d, %v, %q, %q; want 3, out, err", code, err, out.String(), errb.String())
	}
}

func TestExecStreamCancelClosesStdin(t *testing.T) {
	e, id, _, closed := fakeVM(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := e.ExecStream(ctx, id, executor.ExecOptions{Cmd: []string{"hang"}, Stdin: strings.NewReader("")})
		errc <- err
	}()
	select { // the stdin reader ends at once: stdin closed
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent never saw stdin closed")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("ExecStream = %v, want context.Canceled", err)
	}
}

func TestExecStreamErrors(t *testing.T) {
	e, id, agent, closed := fakeVM(t)
	if _, err := e.ExecStream(t.Context(), "nope", executor.ExecOptions{Cmd: []string{"echo"}}); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := e.ExecStream(t.Context(), id, executor.ExecOptions{}); err == nil || !strings.Contains(err.Error(), "empty command") {
		t.Errorf("empty command: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := e.ExecStream(ctx, id, executor.ExecOptions{Cmd: []string{"hang"}})
		errc <- err
	}()
	<-closed
	agent.Close() // the guest went away (the VM is still running)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "the guest closed the exec connection") {
		t.Errorf("closed connection: %v", err)
	}
}

func TestQEMUExecPort(t *testing.T) {
	kernel, initrd, _ := files(t)
	m := machine{kernel: kernel, initrd: initrd, cpus: 1, memory: 64 << 20, execSocket: "/tmp/a,b/exec.sock"}
	cmd, _ := qemu{path: "qemu", accel: AccelTCG}.command(m)
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"-chardev socket,id=exec,server=on,wait=off,path=/tmp/a,,b/exec.sock",
		"-device virtio-serial-device", "-device virtserialport,chardev=exec,name=dms.exec"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
	m.execSocket = ""
	cmd, _ = qemu{path: "qemu", accel: AccelTCG}.command(m)
	if args := strings.Join(cmd.Args, " "); strings.Contains(args, "virtserialport") {
		t.Errorf("an exec port without a socket: %s", args)
	}
}
