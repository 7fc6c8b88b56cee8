package executortest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/match"
)

func TestFakeConformance(t *testing.T) {
	executortest.Conformance(t, executortest.Harness{
		Executor: executortest.New(executortest.Config{}),
		Spec:     executortest.Spec,
		New:      func(*testing.T) executor.Executor { return executortest.New(executortest.Config{}) },
	})
}

func TestFakeLimits(t *testing.T) {
	ctx := t.Context()
	ex := executortest.New(executortest.Config{})
	for _, c := range []struct {
		name    string
		steps   []string
		res     executor.Resources
		reason  executor.Reason
		code    int
		wantOut string
	}{
		{"alloc within memory", []string{"alloc=16"}, executor.Resources{Memory: 32 << 20}, executor.ReasonExited, 0, "allocated 16 MiB\n"},
		{"alloc past memory", []string{"alloc=16", "alloc=32"}, executor.Resources{Memory: 32 << 20}, executor.ReasonOOMKilled, 137, "allocated 16 MiB\n"},
		{"spawn within pids", []string{"spawn=3"}, executor.Resources{PIDs: 10}, executor.ReasonExited, 0, "spawned 3\n"},
		{"spawn past pids", []string{"spawn=30"}, executor.Resources{PIDs: 10}, executor.ReasonExited, 0, "spawned 9\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := executortest.Spec(c.steps...)
			spec.Resources = c.res
			id, err := ex.Start(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ex.Wait(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if res.Reason != c.reason || res.ExitCode != c.code {
				t.Errorf("Wait = %s %d, want %s %d", res.Reason, res.ExitCode, c.reason, c.code)
			}
			var out bytes.Buffer
			ex.Logs(ctx, id, executor.LogOptions{}, &out, nil)
			if out.String() != c.wantOut {
				t.Errorf("stdout = %q, want %q", out.String(), c.wantOut)
			}
		})
	}
}

func TestFakeBadScriptIsInvalidSpec(t *testing.T) {
	_, err := executortest.New(executortest.Config{}).Start(t.Context(), executortest.Spec("explode"))
	if !errors.Is(err, executor.ErrInvalidSpec) {
		t.Fatalf("Start = %v, want ErrInvalidSpec", err)
	}
}

func TestFakeStartErrorAndDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		ex := executortest.New(executortest.Config{
			StartDelay: 5 * time.Second,
			StartError: func(s executor.Spec) error {
				if s.Labels["fail"] == "yes" {
					return boom
				}
				return nil
			},
		})
		began := time.Now()
		id, err := ex.Start(t.Context(), executortest.Spec("sleep=1m", "exit=4"))
		if err != nil || time.Since(began) != 5*time.Second {
			t.Fatalf("Start = %v after %v, want success after 5s", err, time.Since(began))
		}
		res, _ := ex.Wait(t.Context(), id)
		if res.ExitCode != 4 || res.FinishedAt.Sub(res.StartedAt) != time.Minute {
			t.Errorf("Wait = %d after %v, want 4 after 1m", res.ExitCode, res.FinishedAt.Sub(res.StartedAt))
		}
		spec := executortest.Spec("exit=0")
		spec.Labels = map[string]string{"fail": "yes"}
		if _, err := ex.Start(t.Context(), spec); !errors.Is(err, boom) {
			t.Errorf("Start = %v, want boom", err)
		}
	})
}

func TestFakePauseExecStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		ex := executortest.New(executortest.Config{})
		id, err := ex.Start(ctx, executortest.Spec("alloc=8", "tick=3x1s"))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := ex.Pause(ctx, id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if l, _ := ex.List(ctx, nil); len(l) != 1 || l[0].State != executor.StatePaused {
			t.Errorf("List = %+v, want one paused instance", l)
		}
		var out bytes.Buffer
		ex.Logs(ctx, id, executor.LogOptions{}, &out, nil)
		if out.String() != "allocated 8 MiB\ntick 1\n" {
			t.Errorf("stdout while paused = %q", out.String())
		}
		if _, err := ex.Exec(ctx, id, []string{"check"}, nil, nil); err == nil {
			t.Errorf("Exec in a paused instance succeeded")
		}
		u, err := ex.Stats(ctx, id)
		if err != nil || u.Memory != 8<<20 || u.PIDs != 1 {
			t.Errorf("Stats = %+v, %v", u, err)
		}
		ex.Resume(ctx, id)
		var eout bytes.Buffer
		code, err := ex.Exec(ctx, id, []string{"check", "print=ok", "exit=5"}, &eout, nil)
		if err != nil || code != 5 || eout.String() != "ok\n" {
			t.Errorf("Exec = %d, %v, %q; want 5, nil, ok", code, err, eout.String())
		}
		res, _ := ex.Wait(ctx, id)
		if res.Reason != executor.ReasonExited {
			t.Errorf("Wait = %+v", res)
		}
		if err := ex.Remove(context.Background(), id); err != nil {
			t.Error(err)
		}
	})
}

func TestFakeSetUsage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		ex := executortest.New(executortest.Config{})
		id, err := ex.Start(ctx, executortest.Spec("sleep=10s"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if u, _ := ex.Stats(ctx, id); u.CPUTime != time.Second {
			t.Errorf("Stats before SetUsage: CPUTime = %v, want the time since the start, 1s", u.CPUTime)
		}
		steps := []struct {
			cpu      time.Duration
			mem      match.Bytes
			wantPeak match.Bytes
		}{
			{cpu: 300 * time.Millisecond, mem: 10 << 20, wantPeak: 10 << 20},
			{cpu: 700 * time.Millisecond, mem: 4 << 20, wantPeak: 10 << 20},
		}
		for _, s := range steps {
			if err := ex.SetUsage(id, s.cpu, s.mem); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // scripted CPU does not follow the clock
			u, err := ex.Stats(ctx, id)
			if err != nil || u.CPUTime != s.cpu || u.Memory != s.mem || u.MemoryPeak != s.wantPeak {
				t.Errorf("Stats = %+v, %v; want cpu %v, memory %v, peak %v", u, err, s.cpu, s.mem, s.wantPeak)
			}
		}
		ex.Stop(ctx, id, 0)
		res, _ := ex.Wait(ctx, id)
		if res.Usage.CPUTime != 700*time.Millisecond || res.Usage.MemoryPeak != 10<<20 {
			t.Errorf("Result.Usage = %+v, want the scripted cpu 700ms and peak 10 MiB", res.Usage)
		}
		if u, err := ex.Stats(ctx, id); err != nil || u != res.Usage {
			t.Errorf("Stats of the ended instance = %+v, %v; want its Result's usage %+v", u, err, res.Usage)
		}
		if err := ex.SetUsage(id, time.Second, 0); err == nil {
			t.Error("SetUsage of an ended instance succeeded")
		}
		if err := ex.SetUsage("nope", time.Second, 0); !errors.Is(err, executor.ErrNotFound) {
			t.Errorf("SetUsage of an unknown instance = %v, want ErrNotFound", err)
		}
		ex.Remove(ctx, id)
	})
}
