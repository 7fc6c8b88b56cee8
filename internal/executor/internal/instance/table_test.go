package instance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/internal/instance"
)

// job is a workload of a test executor: it runs until it is stopped (when
// it obeys stop) or told to exit.
type job struct {
	*instance.Instance
	obeys bool
	quit  chan struct{} // closed by the first obeyed stop
	exit  chan int      // an exit code ends the job by itself

	mu     sync.Mutex
	graces []time.Duration // guarded by mu: every call of stop
}

func (j *job) stop(grace time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.graces = append(j.graces, grace)
	if j.obeys && len(j.graces) == 1 {
		close(j.quit)
	}
}

func (j *job) stops() []time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]time.Duration(nil), j.graces...)
}

func (j *job) run() {
	fmt.Fprintln(j.Stdout(), "started")
	select {
	case <-j.quit:
		j.Finish(executor.Result{ExitCode: -1, Reason: executor.ReasonCancelled})
	case code := <-j.exit:
		fmt.Fprintln(j.Stderr(), "exiting")
		j.Finish(executor.Result{ExitCode: code, Reason: executor.ReasonExited})
	}
}

// start adds a running job to tab.
func start(t *testing.T, tab *instance.Table[*job], obeys bool) *job {
	t.Helper()
	j := &job{obeys: obeys, quit: make(chan struct{}), exit: make(chan int, 1)}
	j.Instance = instance.New(0, j.stop)
	if _, err := tab.Add(j); err != nil {
		t.Fatalf("Add: %v", err)
	}
	go j.run()
	return j
}

// exited adds a job to tab that has exited with code.
func exited(t *testing.T, tab *instance.Table[*job], code int) *job {
	t.Helper()
	j := start(t, tab, true)
	j.exit <- code
	<-j.Done()
	return j
}

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func TestAddGetAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := instance.NewTable[*job]("test")
		a, b := start(t, tab, true), start(t, tab, true)
		for _, j := range []*job{a, b} {
			if id := j.ID(); !strings.HasPrefix(id, "test-") || len(id) != len("test-")+16 {
				t.Errorf("ID = %q, want test- and 16 hex digits", id)
			}
			if got, err := tab.Get(j.ID()); err != nil || got != j {
				t.Errorf("Get(%s) = %p, %v; want %p", j.ID(), got, err, j)
			}
		}
		if a.ID() == b.ID() {
			t.Errorf("two instances got the ID %s", a.ID())
		}
		if all := tab.All(); len(all) != 2 {
			t.Errorf("All = %d instances, want 2", len(all))
		}
		_, err := tab.Get("nope")
		if !errors.Is(err, executor.ErrNotFound) || !strings.HasPrefix(err.Error(), "test: nope: ") {
			t.Errorf("Get(nope) = %v, want test: nope: ErrNotFound", err)
		}
		tab.Close(nil)
	})
}

func TestWait(t *testing.T) {
	for _, c := range []struct {
		name    string
		running bool // else exited 3
		ctx     func(t *testing.T) context.Context
		code    int
		err     error
	}{
		{"ended", false, func(t *testing.T) context.Context { return t.Context() }, 3, nil},
		// An ended instance wins over a done ctx, every time.
		{"ended, ctx done", false, cancelled, 3, nil},
		{"running, ctx done", true, cancelled, 0, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tab := instance.NewTable[*job]("test")
				var j *job
				if c.running {
					j = start(t, tab, true)
				} else {
					j = exited(t, tab, 3)
				}
				for range 20 {
					res, err := tab.Wait(c.ctx(t), j.ID())
					if !errors.Is(err, c.err) || res.ExitCode != c.code {
						t.Fatalf("Wait = %d, %v; want %d, %v", res.ExitCode, err, c.code, c.err)
					}
				}
				tab.Close(nil)
			})
		})
	}
}

func TestWaitBlocksUntilTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := instance.NewTable[*job]("test")
		j := start(t, tab, true)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if res, err := tab.Wait(t.Context(), j.ID()); err != nil || res.ExitCode != 7 {
					t.Errorf("Wait = %d, %v; want 7", res.ExitCode, err)
				}
			})
		}
		synctest.Wait()
		j.exit <- 7
		wg.Wait()
	})
}

func TestStop(t *testing.T) {
	for _, c := range []struct {
		name      string
		obeys     bool
		ended     bool
		grace     time.Duration
		err       error
		stops     int
		reason    executor.Reason
		stillRuns bool
	}{
		{"running", true, false, 5 * time.Second, nil, 1, executor.ReasonCancelled, false},
		{"ended: stop is not called", true, true, time.Second, nil, 0, executor.ReasonExited, false},
		{"ctx ends first", false, false, time.Second, context.DeadlineExceeded, 1, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tab := instance.NewTable[*job]("test")
				j := start(t, tab, c.obeys)
				if c.ended {
					j.exit <- 0
					<-j.Done()
				}
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				if err := tab.Stop(ctx, j.ID(), c.grace); !errors.Is(err, c.err) {
					t.Errorf("Stop = %v, want %v", err, c.err)
				}
				if got := j.stops(); len(got) != c.stops || c.stops > 0 && got[0] != c.grace {
					t.Errorf("stop called with %v, want %d calls with %v", got, c.stops, c.grace)
				}
				if j.Ended() == c.stillRuns {
					t.Errorf("Ended = %v after Stop, want %v", j.Ended(), !c.stillRuns)
				}
				if !c.stillRuns {
					if res, _ := tab.Wait(t.Context(), j.ID()); res.Reason != c.reason {
						t.Errorf("Wait = %s, want %s", res.Reason, c.reason)
					}
				}
				j.exit <- 0 // ends the disobedient one
				tab.Close(nil)
			})
		})
	}
}

func TestRemove(t *testing.T) {
	for _, c := range []struct {
		name    string
		running bool // else exited
		obeys   bool
		ctx     func(t *testing.T) context.Context
		err     error
		stops   int  // calls of stop
		gone    bool // removed from the table
	}{
		{"running", true, true, func(t *testing.T) context.Context { return t.Context() }, nil, 1, true},
		{"ended", false, true, func(t *testing.T) context.Context { return t.Context() }, nil, 0, true},
		// A done ctx changes nothing, whatever the instance's state.
		{"running, ctx done", true, true, cancelled, context.Canceled, 0, false},
		{"ended, ctx done", false, true, cancelled, context.Canceled, 0, false},
		// ctx ends while the instance is ending: told to stop, still there.
		{"ctx ends while it ends", true, false, func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tab := instance.NewTable[*job]("test")
				var j *job
				if c.running {
					j = start(t, tab, c.obeys)
				} else {
					j = exited(t, tab, 4)
				}
				synctest.Wait() // the job has logged
				tries := 1
				if c.stops == 0 && !c.gone {
					tries = 10 // a done ctx must lose every time
				}
				for range tries {
					if err := tab.Remove(c.ctx(t), j.ID()); !errors.Is(err, c.err) {
						t.Fatalf("Remove = %v, want %v", err, c.err)
					}
				}
				if got := len(j.stops()); got != c.stops {
					t.Errorf("stop called %d times, want %d", got, c.stops)
				}
				_, err := tab.Get(j.ID())
				if gone := errors.Is(err, executor.ErrNotFound); gone != c.gone {
					t.Fatalf("after Remove: Get = %v, want gone %v", err, c.gone)
				}
				if !c.gone {
					// Not half-removed: the logs and the state are all there.
					var out bytes.Buffer
					if err := tab.Logs(t.Context(), j.ID(), executor.LogOptions{}, &out, nil); err != nil || out.String() != "started\n" {
						t.Errorf("Logs = %q, %v; want started", out.String(), err)
					}
					if c.running && c.obeys && j.Ended() {
						t.Errorf("the instance ended although Remove changed nothing")
					}
					j.exit <- 0
					if err := tab.Remove(t.Context(), j.ID()); err != nil {
						t.Errorf("Remove with a live ctx = %v", err)
					}
					if _, err := tab.Get(j.ID()); !errors.Is(err, executor.ErrNotFound) {
						t.Errorf("after the second Remove: Get = %v, want ErrNotFound", err)
					}
				}
				if err := tab.Remove(t.Context(), j.ID()); !errors.Is(err, executor.ErrNotFound) {
					t.Errorf("Remove of a removed instance = %v, want ErrNotFound", err)
				}
			})
		})
	}
}

func TestLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := instance.NewTable[*job]("test")
		j := start(t, tab, true)
		var out, errs bytes.Buffer
		followed := make(chan error)
		go func() { followed <- tab.Logs(t.Context(), j.ID(), executor.LogOptions{Follow: true}, &out, &errs) }()
		synctest.Wait()
		j.exit <- 0 // Finish closes the logs: the follower returns
		if err := <-followed; err != nil || out.String() != "started\n" || errs.String() != "exiting\n" {
			t.Errorf("Logs(follow) = %v, stdout %q, stderr %q", err, out.String(), errs.String())
		}
		if err := tab.Logs(t.Context(), "nope", executor.LogOptions{}, nil, nil); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("Logs(nope) = %v, want ErrNotFound", err)
		}
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := instance.NewTable[*job]("test")
		running, done := start(t, tab, true), exited(t, tab, 5)
		released := 0
		boom := errors.New("boom")
		if err := tab.Close(func() error { released++; return boom }); err != boom {
			t.Errorf("first Close = %v, want the release error", err)
		}
		for i := range 2 {
			if err := tab.Close(func() error { released++; return boom }); err != nil {
				t.Errorf("Close #%d = %v, want nil", i+2, err)
			}
		}
		if released != 1 {
			t.Errorf("release called %d times, want once", released)
		}
		if got := running.stops(); len(got) != 1 || got[0] != 0 {
			t.Errorf("running instance: stop called with %v, want once with no grace", got)
		}
		if got := done.stops(); len(got) != 0 {
			t.Errorf("ended instance: stop called with %v, want never", got)
		}
		// The instances are kept, ended.
		for _, c := range []struct {
			j      *job
			reason executor.Reason
		}{{running, executor.ReasonCancelled}, {done, executor.ReasonExited}} {
			if res, err := tab.Wait(t.Context(), c.j.ID()); err != nil || res.Reason != c.reason {
				t.Errorf("Wait after Close = %s, %v; want %s", res.Reason, err, c.reason)
			}
		}
		// No new work.
		j := &job{quit: make(chan struct{}), exit: make(chan int, 1)}
		j.Instance = instance.New(0, j.stop)
		if _, err := tab.Add(j); !errors.Is(err, executor.ErrUnavailable) || !strings.HasPrefix(err.Error(), "test: executor closed") {
			t.Errorf("Add after Close = %v, want test: executor closed: ErrUnavailable", err)
		}
		if err := tab.Err(); !errors.Is(err, executor.ErrUnavailable) {
			t.Errorf("Err after Close = %v, want ErrUnavailable", err)
		}
		if err := tab.Remove(t.Context(), running.ID()); err != nil {
			t.Errorf("Remove after Close = %v", err)
		}
	})
}

// A second Close waits for the first, which waits for every instance.
func TestCloseConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := instance.NewTable[*job]("test")
		if err := tab.Err(); err != nil {
			t.Fatalf("Err of an open table = %v", err)
		}
		slow := start(t, tab, false) // ends only when told to exit
		var firstDone, secondDone bool
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Go(func() {
			tab.Close(nil)
			mu.Lock()
			firstDone = true
			mu.Unlock()
		})
		synctest.Wait()
		wg.Go(func() {
			if err := tab.Close(nil); err != nil {
				t.Errorf("second Close = %v", err)
			}
			mu.Lock()
			secondDone = true
			mu.Unlock()
		})
		synctest.Wait()
		mu.Lock()
		if firstDone || secondDone {
			t.Errorf("Close returned (first %v, second %v) while an instance still ran", firstDone, secondDone)
		}
		mu.Unlock()
		slow.exit <- 0
		wg.Wait()
	})
}
