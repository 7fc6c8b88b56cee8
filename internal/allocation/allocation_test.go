package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/poll"
)

func TestRunToEnd(t *testing.T) {
	tests := []struct {
		name       string
		steps      []string
		ram        match.Bytes
		wantState  deployproto.AllocationState
		wantReason executor.Reason
		wantCode   int
		wantOut    string
		wantErr    string
	}{
		{
			name:      "exit 0 completes",
			steps:     []string{"print=hello", "eprint=oops", "print=bye"},
			wantState: deployproto.AllocCompleted, wantReason: executor.ReasonExited, wantCode: 0,
			wantOut: "hello\nbye\n", wantErr: "oops\n",
		},
		{
			name:      "non-zero exit fails",
			steps:     []string{"print=working", "exit=3"},
			wantState: deployproto.AllocFailed, wantReason: executor.ReasonExited, wantCode: 3,
			wantOut: "working\n",
		},
		{
			name:      "out of memory fails",
			steps:     []string{"alloc=8", "alloc=8"},
			ram:       12 << 20,
			wantState: deployproto.AllocFailed, wantReason: executor.ReasonOOMKilled, wantCode: 137,
			wantOut: "allocated 8 MiB\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				spec := task(tc.steps...)
				spec.Resources.RAM = tc.ram
				hd := h.create(h.m, "a1", "r1", spec)
				h.mustStart(hd)
				final := h.awaitState("a1", tc.wantState)
				if final.Result == nil || final.Result.Reason != tc.wantReason || final.Result.ExitCode != tc.wantCode {
					t.Fatalf("final report result = %+v, want %s %d", final.Result, tc.wantReason, tc.wantCode)
				}
				if got := h.orch.states("a1"); !slices.Equal(got, []deployproto.AllocationState{"pending", "starting", "running", tc.wantState}) {
					t.Errorf("states = %v, want pending starting running %s", got, tc.wantState)
				}
				rs, _ := h.orch.reportsOf("a1")
				for i := 1; i < len(rs); i++ {
					if rs[i].Seq <= rs[i-1].Seq {
						t.Errorf("report %d has Seq %d after %d", i, rs[i].Seq, rs[i-1].Seq)
					}
				}
				out, errOut := h.readLogs(hd)
				if out != tc.wantOut || errOut != tc.wantErr {
					t.Errorf("logs = %q / %q, want %q / %q", out, errOut, tc.wantOut, tc.wantErr)
				}
				if st := h.status(hd); st.State != tc.wantState || st.Result == nil {
					t.Errorf("status = %s %+v, want %s with a result", st.State, st.Result, tc.wantState)
				}
				// The only allocation of r1 ended: the reservation is released.
				eventually(t, func() bool { return h.ledger.releases("r1") == 1 })
				// The instance is removed once it ended.
				if ins, _ := h.ex.List(context.Background(), nil); len(ins) != 0 {
					t.Errorf("%d instances left after the end", len(ins))
				}
			})
		})
	}
}

// eventually waits for cond: after the bubble's goroutines have settled,
// and then after each pause of virtual time, for a minute at most.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	poll.Eventually(t, time.Minute, "condition (virtual time)", func() bool {
		synctest.Wait()
		return cond()
	})
}

func TestSpecGivenToExecutor(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := task("write=/out/result.txt:42")
		spec.Execution.Env = ensemble.Env{"A": "1"}
		spec.Execution.Workdir = "/work"
		spec.Resources = match.Resources{CPU: 1500, RAM: 64 << 20, Disk: 1 << 30}
		spec.Ports = []ensemble.Port{{Port: 80, Public: 8080}, {Port: 9000}}
		spec.Volumes = map[string]ensemble.Volume{"out": {Path: "/out", Kind: ensemble.Local}}
		spec.Timeout = time.Hour
		hd := h.create(h.m, "a1", "r1", spec)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocCompleted)
		specs := h.startedSpecs()
		if len(specs) != 1 {
			t.Fatalf("%d starts, want 1", len(specs))
		}
		s := specs[0]
		volume := filepath.Join(h.dataDir, "a1", "volumes", "out")
		want := executor.Spec{
			Image: "workload", Entrypoint: []string{"workload"}, Command: []string{"write=/out/result.txt:42"},
			Env: map[string]string{"A": "1"}, WorkDir: "/work",
			Resources: executor.Resources{CPU: 1500, Memory: 64 << 20, Disk: 1 << 30, PIDs: DefaultPIDs},
			Ports:     []executor.Port{{Guest: 80, Host: 8080}, {Guest: 9000, HostIP: "127.0.0.1"}},
			Mounts:    []executor.Mount{{Source: volume, Target: "/out"}},
			Labels: map[string]string{executor.LabelAllocation: "a1", LabelDeployment: "dep1",
				LabelNode: h.provSys.Self()},
			Timeout: time.Hour,
		}
		if !equalJSON(t, s, want) {
			t.Errorf("spec = %+v\nwant %+v", s, want)
		}
		b, err := os.ReadFile(filepath.Join(volume, "result.txt"))
		if err != nil || string(b) != "42" {
			t.Errorf("output file = %q, %v; want 42", b, err)
		}
		if got := h.wallet.holders(); len(got) != 1 || got[0] != hd.DID {
			t.Errorf("wallet holders = %v, want [%s]", got, hd.DID)
		}
	})
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name         string
		restart      ensemble.Restart
		typ          ensemble.AllocationType
		steps        []string
		wantState    deployproto.AllocationState
		wantRestarts int
		wantDelays   []time.Duration // between the end of a run and the next start
	}{
		{
			name:    "on-failure up to max_restarts then failed",
			restart: ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 3, Backoff: time.Second},
			steps:   []string{"print=try", "exit=1"}, wantState: deployproto.AllocFailed, wantRestarts: 3,
			wantDelays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
		},
		{
			name:    "on-failure does not restart a success",
			restart: ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 3, Backoff: time.Second},
			steps:   []string{"print=ok"}, wantState: deployproto.AllocCompleted,
		},
		{
			name:    "always restarts a success",
			restart: ensemble.Restart{Policy: ensemble.Always, MaxRestarts: 2, Backoff: 40 * time.Second},
			steps:   []string{"print=ok"}, wantState: deployproto.AllocCompleted, wantRestarts: 2,
			wantDelays: []time.Duration{40 * time.Second, time.Minute}, // doubled, capped at 1m
		},
		{
			name:    "never",
			restart: ensemble.Restart{Policy: ensemble.Never},
			steps:   []string{"exit=2"}, wantState: deployproto.AllocFailed,
		},
		{
			name: "a service defaults to always, 5 restarts",
			typ:  ensemble.Service, steps: []string{"exit=1"}, wantState: deployproto.AllocFailed, wantRestarts: 5,
			wantDelays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				spec := task(tc.steps...)
				spec.Restart = tc.restart
				if tc.typ != "" {
					spec.Type = tc.typ
				}
				hd := h.create(h.m, "a1", "r1", spec)
				h.mustStart(hd)
				final := h.awaitState("a1", tc.wantState)
				if final.Restarts != tc.wantRestarts {
					t.Errorf("restarts = %d, want %d (%s)", final.Restarts, tc.wantRestarts, h.orch.summary("a1"))
				}
				// Measure the backoffs: from each restarting report to the
				// next starting one.
				rs, ts := h.orch.reportsOf("a1")
				var delays []time.Duration
				for i, r := range rs {
					if r.State != deployproto.AllocRestarting || rs[i-1].State == deployproto.AllocRestarting {
						continue // not the state change (a heartbeat)
					}
					if r.Result == nil {
						t.Errorf("restarting report without the run's result")
					}
					for j := i + 1; j < len(rs); j++ {
						if rs[j].State == deployproto.AllocStarting {
							delays = append(delays, ts[j].Sub(ts[i]))
							break
						}
					}
				}
				if !slices.Equal(delays, tc.wantDelays) {
					t.Errorf("backoffs = %v, want %v", delays, tc.wantDelays)
				}
				out, _ := h.readLogs(hd)
				if runs := strings.Count(out, "\n"); len(tc.steps) > 0 && strings.HasPrefix(tc.steps[0], "print=") && runs != tc.wantRestarts+1 {
					t.Errorf("log holds %d runs' output, want %d: %q", runs, tc.wantRestarts+1, out)
				}
				if n := len(h.startedSpecs()); n != tc.wantRestarts+1 {
					t.Errorf("%d instances started, want %d", n, tc.wantRestarts+1)
				}
			})
		})
	}
}

func TestHealthcheck(t *testing.T) {
	tests := []struct {
		name   string
		check  ensemble.Healthcheck
		want   deployproto.AllocationState
		before time.Duration // the state is not reached before this
	}{
		{
			name:  "passing exec check goes healthy",
			check: ensemble.Healthcheck{Exec: []string{"check", "exit=0"}, Interval: 5 * time.Second, Retries: 2},
			want:  deployproto.AllocHealthy,
		},
		{
			name:   "failing exec check goes unhealthy after retries",
			check:  ensemble.Healthcheck{Exec: []string{"check", "eprint=down", "exit=1"}, Interval: 5 * time.Second, Retries: 3},
			want:   deployproto.AllocUnhealthy,
			before: 10 * time.Second, // checks at 0, 5 and 10 s
		},
		{
			name: "failures in the start period do not count",
			check: ensemble.Healthcheck{Exec: []string{"check", "exit=1"}, Interval: 5 * time.Second, Retries: 1,
				StartPeriod: 30 * time.Second},
			want:   deployproto.AllocUnhealthy,
			before: 30 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				spec := task("print=serving", "sleep=10m")
				spec.Type = ensemble.Service
				spec.Restart = ensemble.Restart{Policy: ensemble.Never}
				check := tc.check
				spec.Healthcheck = &check
				hd := h.create(h.m, "a1", "r1", spec)
				start := time.Now()
				h.mustStart(hd)
				r := h.awaitState("a1", tc.want)
				if took := time.Since(start); took < tc.before {
					t.Errorf("%s after %s, want not before %s", tc.want, took, tc.before)
				}
				if tc.want == deployproto.AllocUnhealthy && !strings.Contains(r.Message, "health check failed") {
					t.Errorf("message = %q, want it to say the check failed", r.Message)
				}
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		start  bool
		remove bool
	}{
		{name: "running", start: true},
		{name: "running, with remove", start: true, remove: true},
		{name: "pending"},
		{name: "pending, with remove", remove: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				hd := h.create(h.m, "a1", "r1", task("print=up", "sleep=1h"))
				if tc.start {
					h.mustStart(hd)
					h.awaitState("a1", deployproto.AllocRunning)
				}
				err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop,
					deployproto.StopRequest{Grace: time.Second, Remove: tc.remove}, nil)
				if err != nil {
					t.Fatalf("stop: %v", err)
				}
				if n := h.ledger.releases("r1"); n != 1 {
					t.Errorf("ledger releases = %d, want 1", n)
				}
				if ins, _ := h.ex.List(context.Background(), nil); len(ins) != 0 {
					t.Errorf("%d instances left", len(ins))
				}
				if tc.remove {
					if _, err := os.Stat(filepath.Join(h.dataDir, "a1")); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("data dir still there: %v", err)
					}
					if recs, _ := h.store.List(); len(recs) != 0 {
						t.Errorf("%d records left", len(recs))
					}
					eventually(t, func() bool {
						err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStatus, nil, nil)
						return errors.Is(err, actor.ErrNoSuchActor)
					})
					if got := h.m.List(); len(got) != 0 {
						t.Errorf("List = %v, want none", got)
					}
					return
				}
				st := h.status(hd)
				if st.State != deployproto.AllocStopped {
					t.Fatalf("state = %s, want stopped", st.State)
				}
				if tc.start && (st.Result == nil || st.Result.Reason != executor.ReasonCancelled) {
					t.Errorf("result = %+v, want cancelled", st.Result)
				}
				h.awaitState("a1", deployproto.AllocStopped)
				if err := h.start(hd); err == nil || !strings.Contains(err.Error(), "cannot start again") {
					t.Errorf("start after stop = %v, want refused", err)
				}
				// Stopping again does nothing.
				if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
					t.Errorf("second stop: %v", err)
				}
				if n := h.ledger.releases("r1"); n != 1 {
					t.Errorf("ledger releases after a second stop = %d, want 1", n)
				}
			})
		})
	}
}

func TestStopDuringBackoff(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		spec := task("exit=1")
		spec.Restart = ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 5, Backoff: time.Minute}
		hd := h.create(h.m, "a1", "r1", spec)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRestarting)
		t0 := time.Now()
		if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took > time.Second {
			t.Errorf("stop took %s during a 1m backoff", took)
		}
		if st := h.status(hd); st.State != deployproto.AllocStopped || st.Result == nil || st.Result.ExitCode != 1 {
			t.Errorf("status = %s %+v, want stopped with the last run's result", st.State, st.Result)
		}
	})
}

func TestRevert(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		running := h.create(h.m, "a1", "r1", task("sleep=1h"))
		h.create(h.m, "a2", "r1", task("print=x")) // stays pending
		other := h.create(h.m, "b1", "r2", task("sleep=1h"))
		h.mustStart(running)
		h.mustStart(other)
		h.awaitState("a1", deployproto.AllocRunning)
		h.awaitState("b1", deployproto.AllocRunning)

		for i := range 2 {
			if err := h.m.Revert(context.Background(), "r1"); err != nil {
				t.Fatalf("Revert #%d: %v", i+1, err)
			}
		}
		if n := h.ledger.releases("r1"); n != 1 {
			t.Errorf("ledger releases of r1 = %d, want 1", n)
		}
		if n := h.ledger.releases("r2"); n != 0 {
			t.Errorf("ledger releases of r2 = %d, want 0", n)
		}
		var ids []string
		for _, r := range h.m.List() {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, []string{"b1"}) {
			t.Errorf("List = %v, want [b1]", ids)
		}
		ins, _ := h.ex.List(context.Background(), nil)
		if len(ins) != 1 || ins[0].Labels[executor.LabelAllocation] != "b1" {
			t.Errorf("instances = %v, want only b1's", ins)
		}
		for _, id := range []string{"a1", "a2"} {
			if _, err := os.Stat(filepath.Join(h.dataDir, id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data of %s still there", id)
			}
		}
		if err := h.orch.act.Invoke(context.Background(), running, deployproto.BehaviorStart, deployproto.StartRequest{}, nil); err == nil {
			t.Error("start of a reverted allocation succeeded")
		}
		if _, err := h.m.Create(context.Background(), CreateRequest{ID: "a3", Reservation: "r1", Orchestrator: h.orch.act.Handle(), Spec: task("x")}); err == nil {
			t.Error("Create in a reverted reservation succeeded")
		}
		// A reservation with no allocation here (a bid never committed)
		// is released through the ledger.
		h.ledger.hold("r9")
		if err := h.m.Revert(context.Background(), "r9"); err != nil || h.ledger.releases("r9") != 1 {
			t.Errorf("Revert(r9) = %v, %d releases; want nil, 1", err, h.ledger.releases("r9"))
		}
	})
}

func TestHeartbeat(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		t0 := time.Now()
		hd := h.create(h.m, "a1", "r1", task("sleep=5500ms"))
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocCompleted)
		rs, ts := h.orch.reportsOf("a1")
		beats := map[time.Duration]deployproto.AllocationState{}
		for i, r := range rs {
			beats[ts[i].Sub(t0)] = r.State
		}
		for k := 1; k <= 5; k++ {
			if st, ok := beats[time.Duration(k)*time.Second]; !ok || st != deployproto.AllocRunning {
				t.Errorf("no running heartbeat at %ds (reports at %v)", k, ts)
			}
		}
		// Nothing after the final report, however long we wait.
		n := len(rs)
		time.Sleep(10 * time.Second)
		if rs, _ := h.orch.reportsOf("a1"); len(rs) != n {
			t.Errorf("%d reports after the final one", len(rs)-n)
		}
	})
}

func TestFinalReportRetried(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("sleep=1s"))
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocRunning)
		h.orch.mu.Lock()
		h.orch.refuse = true // the orchestrator is restarting
		h.orch.mu.Unlock()
		time.Sleep(3 * time.Second)
		h.orch.mu.Lock()
		h.orch.refuse = false
		refused := h.orch.refused
		h.orch.mu.Unlock()
		if refused == 0 {
			t.Fatal("no report was refused")
		}
		h.awaitState("a1", deployproto.AllocCompleted)
		eventually(t, func() bool {
			recs, _ := h.store.List()
			return len(recs) == 1 && recs[0].Reported
		})
	})
}

func TestLogsLongPoll(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("tick=3x2s", "eprint=done"))
		// Before the start: nothing, after the whole wait.
		t0 := time.Now()
		c, err := h.logs(hd, deployproto.LogsRequest{Wait: 3 * time.Second})
		if err != nil || len(c.Entries) != 0 || c.EOF || c.Next != 0 {
			t.Fatalf("logs before start = %+v, %v", c, err)
		}
		if took := time.Since(t0); took != 3*time.Second {
			t.Errorf("empty long poll took %s, want the 3s wait", took)
		}
		h.mustStart(hd)
		var got []string
		var off int64
		var times []time.Duration
		t0 = time.Now()
		for {
			c, err := h.logs(hd, deployproto.LogsRequest{Offset: off, Wait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if c.Next < off {
				t.Fatalf("Next went back from %d to %d", off, c.Next)
			}
			off = c.Next
			for _, e := range c.Entries {
				got = append(got, e.Stream+":"+string(e.Data))
				times = append(times, time.Since(t0))
			}
			if c.EOF {
				break
			}
		}
		want := []string{"stdout:tick 1\n", "stdout:tick 2\n", "stdout:tick 3\n", "stderr:done\n"}
		if !slices.Equal(got, want) {
			t.Errorf("entries = %q, want %q", got, want)
		}
		if wantT := []time.Duration{0, 2 * time.Second, 4 * time.Second, 4 * time.Second}; !slices.Equal(times, wantT) {
			t.Errorf("entries arrived at %v, want %v (as written)", times, wantT)
		}
		// Reading again from the start gives it all; at the end, EOF at once.
		c, err = h.logs(hd, deployproto.LogsRequest{Offset: 0, Max: 1})
		if err != nil || len(c.Entries) != 1 || string(c.Entries[0].Data) != "tick 1\n" {
			t.Errorf("logs(0, max 1) = %+v, %v; want the first entry only", c, err)
		}
		c, err = h.logs(hd, deployproto.LogsRequest{Offset: off, Wait: time.Hour})
		if err != nil || !c.EOF || len(c.Entries) != 0 {
			t.Errorf("logs at the end = %+v, %v; want EOF", c, err)
		}
		for _, bad := range []deployproto.LogsRequest{{Offset: -1}, {Offset: off + 1}, {Offset: 3}, {Wait: -1}} {
			if _, err := h.logs(hd, bad); err == nil {
				t.Errorf("logs(%+v) succeeded, want an error", bad)
			}
		}
	})
}

func TestCreateRefuses(t *testing.T) {
	withVolume := func(name, path string, kind ensemble.VolumeKind) deployproto.AllocationSpec {
		s := task("x")
		s.Volumes = map[string]ensemble.Volume{name: {Path: path, Kind: kind}}
		return s
	}
	tests := []struct {
		name string
		req  func(h *harness) CreateRequest
		want string
	}{
		{"empty id", func(h *harness) CreateRequest { return h.req("", task("x")) }, "allocation id"},
		{"id with a slash", func(h *harness) CreateRequest { return h.req("a/b", task("x")) }, "allocation id"},
		{"id ..", func(h *harness) CreateRequest { return h.req("..", task("x")) }, "allocation id"},
		{"no reservation", func(h *harness) CreateRequest { r := h.req("a1", task("x")); r.Reservation = ""; return r }, "reservation"},
		{"no orchestrator", func(h *harness) CreateRequest { r := h.req("a1", task("x")); r.Orchestrator = actor.Handle{}; return r }, "orchestrator"},
		{"executor not here", func(h *harness) CreateRequest {
			s := task("x")
			s.Executor = ensemble.VM
			return h.req("a1", s)
		}, `executor "vm" is not available on this node (have docker, wasm)`},
		{"wasm module not a digest", func(h *harness) CreateRequest {
			s := task("x")
			s.Executor, s.Execution = ensemble.Wasm, ensemble.Execution{Module: "./hello.wasm"}
			return h.req("a1", s)
		}, "execution.module"},
		{"docker without image", func(h *harness) CreateRequest {
			s := task("x")
			s.Execution.Image = ""
			return h.req("a1", s)
		}, "execution.image"},
		{"volume name escapes", func(h *harness) CreateRequest { return h.req("a1", withVolume("../x", "/out", "")) }, "volume name"},
		{"volume kind s3 without a bucket", func(h *harness) CreateRequest { return h.req("a1", withVolume("out", "/out", "s3")) }, "s3.bucket: required"},
		{"volume kind unknown", func(h *harness) CreateRequest { return h.req("a1", withVolume("out", "/out", "nfs")) }, `kind "nfs" is not local, s3 or url`},
		{"volume path relative", func(h *harness) CreateRequest { return h.req("a1", withVolume("out", "out", "")) }, "absolute"},
		{"wasm publishes a port", func(h *harness) CreateRequest {
			s := task("x")
			s.Executor, s.Execution = ensemble.Wasm, ensemble.Execution{Module: "sha256:" + strings.Repeat("a", 64)}
			s.Ports = []ensemble.Port{{Port: 80, Public: 80}}
			return h.req("a1", s)
		}, "cannot publish ports"},
		{"http check on a port not listed", func(h *harness) CreateRequest {
			s := task("x")
			s.Healthcheck = &ensemble.Healthcheck{HTTP: &ensemble.HTTPProbe{Port: 81}}
			return h.req("a1", s)
		}, "not one of the allocation's ports"},
		{"two probes", func(h *harness) CreateRequest {
			s := task("x")
			s.Ports = []ensemble.Port{{Port: 81}}
			s.Healthcheck = &ensemble.Healthcheck{Exec: []string{"x"}, TCP: &ensemble.TCPProbe{Port: 81}}
			return h.req("a1", s)
		}, "exactly one"},
		{"bad restart policy", func(h *harness) CreateRequest {
			s := task("x")
			s.Restart.Policy = "sometimes"
			return h.req("a1", s)
		}, "restart.policy"},
		{"negative timeout", func(h *harness) CreateRequest {
			s := task("x")
			s.Timeout = -time.Second
			return h.req("a1", s)
		}, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				_, err := h.m.Create(context.Background(), tc.req(h))
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Create = %v, want an error saying %q", err, tc.want)
				}
				if recs, _ := h.store.List(); len(recs) != 0 {
					t.Errorf("%d records stored for a refused create", len(recs))
				}
			})
		})
	}
}

func (h *harness) req(id string, spec deployproto.AllocationSpec) CreateRequest {
	return CreateRequest{ID: id, Reservation: "r1", Deployment: "dep1", Orchestrator: h.orch.act.Handle(), Spec: spec}
}

func TestCreateTwice(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		first := h.create(h.m, "a1", "r1", task("x"))
		again, err := h.m.Create(context.Background(), h.req("a1", task("x")))
		if err != nil || again != first {
			t.Errorf("Create again = %v, %v; want the same handle", again, err)
		}
		r := h.req("a1", task("x"))
		r.Reservation = "r2"
		if _, err := h.m.Create(context.Background(), r); err == nil || !strings.Contains(err.Error(), "taken") {
			t.Errorf("Create with another reservation = %v, want taken", err)
		}
		recs, _ := h.store.List()
		if len(recs) != 1 || recs[0].DID != first.DID || len(recs[0].SealedKey) == 0 {
			t.Fatalf("records = %+v", recs)
		}
		if _, err := h.sealer.OpenKey(recs[0].SealedKey, recs[0].DID); err != nil {
			t.Errorf("stored key does not open: %v", err)
		}
	})
}

func TestStartRefuses(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("sleep=1s"))
		other := mustKey(t)
		tests := []struct {
			name  string
			chain string
			want  string
		}{
			{"garbage chain", "not a token", "chain"},
			{"chain for another actor", h.chain(other.DID()), "held by"},
		}
		for _, tc := range tests {
			err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStart, deployproto.StartRequest{Chain: tc.chain}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: start = %v, want an error saying %q", tc.name, err, tc.want)
			}
		}
		if st := h.status(hd); st.State != deployproto.AllocPending {
			t.Errorf("state after refused starts = %s, want pending", st.State)
		}
		if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStart, "{", nil); err == nil {
			t.Error("start with a malformed payload succeeded")
		}
		// A second start of a started allocation does nothing.
		h.mustStart(hd)
		h.mustStart(hd)
		h.awaitState("a1", deployproto.AllocCompleted)
		if n := len(h.startedSpecs()); n != 1 {
			t.Errorf("%d instances started, want 1", n)
		}
	})
}

func TestStartFailure(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		// The fake refuses a script it cannot parse: an invalid spec is
		// not restarted.
		spec := task("bogus-step")
		spec.Restart = ensemble.Restart{Policy: ensemble.Always, MaxRestarts: 3}
		hd := h.create(h.m, "a1", "r1", spec)
		h.mustStart(hd)
		r := h.awaitState("a1", deployproto.AllocFailed)
		if r.Restarts != 0 || !strings.Contains(r.Message, "could not start") || r.Result == nil || r.Result.Reason != executor.ReasonFailed {
			t.Errorf("final report = %+v", r)
		}
	})
}

// equalJSON compares two values by their JSON form.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return jsonText(t, a) == jsonText(t, b)
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
