package vm

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// The lifecycle of VMs (Close, Remove, Start racing Close) without QEMU:
// the sham backend's "VM" is a shell that speaks the guest protocol.

// sham runs the spec's command, argv[0], as a shell script in place of a
// VMM: the script writes the console (see package vm/guest).
type sham struct{}

func (sham) name() string { return "sham" }

func (sham) command(m machine) (*exec.Cmd, error) {
	gs, err := guest.Decode(m.cmdline)
	if err != nil {
		return nil, err
	}
	return exec.Command("/bin/sh", "-c", gs.Args[0]), nil
}

// Console scripts for the sham.
const (
	shamRuns  = "echo @@dms:start; echo @@dms:o:started; exec sleep 3600"
	shamExits = "echo @@dms:start; echo @@dms:o:bye; echo @@dms:exit:4"
)

func newSham(t *testing.T) (*Executor, func(script string) executor.Spec) {
	t.Helper()
	kernel, initrd, _ := files(t)
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.backend = sham{}
	t.Cleanup(func() { e.Close() })
	return e, func(script string) executor.Spec {
		return executor.Spec{VM: &executor.VMImage{Kernel: kernel, Initrd: initrd}, Command: []string{script}}
	}
}

func TestShamCloseTwice(t *testing.T) {
	e, spec := newSham(t)
	ctx := t.Context()
	id, err := e.Start(ctx, spec(shamRuns))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := e.Close(); err != nil {
			t.Errorf("Close #%d = %v, want nil", i+1, err)
		}
	}
	if res, err := e.Wait(ctx, id); err != nil || res.Reason != executor.ReasonCancelled {
		t.Errorf("Wait after Close = %s (%s), %v; want cancelled", res.Reason, res.Error, err)
	}
	if _, err := e.Start(ctx, spec(shamRuns)); !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("Start after Close = %v, want ErrUnavailable", err)
	}
	if err := e.Remove(ctx, id); err != nil {
		t.Errorf("Remove after Close = %v", err)
	}
}

func TestShamRemoveWithDoneCtx(t *testing.T) {
	e, spec := newSham(t)
	ctx := t.Context()
	done, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		name   string
		script string
		ended  bool
	}{
		{"running", shamRuns, false},
		{"ended", shamExits, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := e.Start(ctx, spec(c.script))
			if err != nil {
				t.Fatal(err)
			}
			if c.ended {
				if res, err := e.Wait(ctx, id); err != nil || res.ExitCode != 4 {
					t.Fatalf("Wait = %+v, %v; want exit 4", res, err)
				}
			}
			for i := range 10 {
				if err := e.Remove(done, id); !errors.Is(err, context.Canceled) {
					t.Fatalf("Remove(done ctx) #%d = %v, want context.Canceled", i+1, err)
				}
			}
			short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
			res, err := e.Wait(short, id)
			stop()
			switch {
			case c.ended && (err != nil || res.ExitCode != 4):
				t.Errorf("Wait after Remove(done ctx) = %+v, %v; want the Result kept", res, err)
			case !c.ended && !errors.Is(err, context.DeadlineExceeded):
				t.Errorf("Wait after Remove(done ctx) = %s, %v; want the VM still running", res.Reason, err)
			}
			if err := e.Remove(ctx, id); err != nil {
				t.Errorf("Remove = %v", err)
			}
			if _, err := e.Wait(ctx, id); !errors.Is(err, executor.ErrNotFound) {
				t.Errorf("Wait after Remove = %v, want ErrNotFound", err)
			}
		})
	}
}

// Close while Starts run: every Start succeeds or says ErrUnavailable, and
// Close returns once every VM it knows of has ended — also when the VMM
// fails to start (before, Close could kill a VM whose process did not
// exist yet).
func TestShamCloseWhileStarting(t *testing.T) {
	for _, c := range []struct {
		name  string
		qemu  string // a QEMU path instead of the sham
		start error  // what a Start that is not refused returns
	}{
		{"VMs run", "", nil},
		{"the VMM is missing", "/nonexistent/qemu-system-x86_64", executor.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, spec := newSham(t)
			if c.qemu != "" {
				e.backend = qemu{path: c.qemu, accel: AccelTCG}
			}
			ctx := t.Context()
			const starters, each = 4, 8
			var wg sync.WaitGroup
			tried := make(chan struct{}, starters*each)
			for range starters {
				wg.Go(func() {
					for range each {
						_, err := e.Start(ctx, spec(shamRuns))
						tried <- struct{}{}
						if errors.Is(err, executor.ErrUnavailable) && c.start == nil {
							return // closed
						}
						if err != nil && !errors.Is(err, executor.ErrUnavailable) || err == nil && c.start != nil {
							t.Errorf("Start = %v, want %v or ErrUnavailable", err, c.start)
							return
						}
					}
				})
			}
			for range starters + 2 {
				<-tried
			}
			closed := make(chan error, 1)
			go func() { closed <- e.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close = %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not return within 30s")
			}
			wg.Wait()
			for _, in := range e.instances.All() {
				if !in.Ended() {
					t.Errorf("%s still runs after Close", in.ID())
				}
			}
		})
	}
}
