package allocation

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
)

// restart simulates a daemon restart: the manager closes (its workloads
// keep running in the executor) and a new one on the same store resumes.
func (h *harness) restart(executors map[ensemble.Executor]executor.Executor) *Manager {
	h.t.Helper()
	if err := h.m.Close(context.Background()); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.m = h.newManager(executors)
	if err := h.m.Resume(context.Background()); err != nil {
		h.t.Fatalf("Resume: %v", err)
	}
	return h.m
}

func docker(ex executor.Executor) map[ensemble.Executor]executor.Executor {
	return map[ensemble.Executor]executor.Executor{ensemble.Docker: ex}
}

func TestResumeReattaches(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("tick=4x1s", "eprint=end"))
		h.mustStart(hd)
		// Read until tick 2, then restart while the workload runs on.
		var off int64
		var out strings.Builder
		for !strings.Contains(out.String(), "tick 2") {
			c, err := h.logs(hd, deployproto.LogsRequest{Offset: off, Wait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range c.Entries {
				out.Write(e.Data)
			}
			off = c.Next
		}
		before, _ := h.orch.reportsOf("a1")
		lastSeq := before[len(before)-1].Seq
		if err := h.m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // down while tick 3 is printed
		if recs, _ := h.store.List(); len(recs) != 1 || recs[0].State != deployproto.AllocRunning {
			t.Fatalf("records after close = %+v, want one running", recs)
		}
		h.m = h.newManager(docker(h.ex))
		if err := h.m.Resume(context.Background()); err != nil {
			t.Fatalf("Resume: %v", err)
		}

		final := h.awaitState("a1", deployproto.AllocCompleted)
		if final.Seq <= lastSeq {
			t.Errorf("Seq after the restart %d, not above %d before it", final.Seq, lastSeq)
		}
		rs, _ := h.orch.reportsOf("a1")
		for i := 1; i < len(rs); i++ {
			if rs[i].Seq <= rs[i-1].Seq {
				t.Errorf("Seq went from %d to %d", rs[i-1].Seq, rs[i].Seq)
			}
		}
		if !strings.Contains(h.orch.summary("a1"), "re-attached") {
			t.Errorf("no report says it re-attached: %s", h.orch.summary("a1"))
		}
		// The same handle works, and the log has everything exactly once.
		stdout, stderr := h.readLogs(hd)
		if stdout != "tick 1\ntick 2\ntick 3\ntick 4\n" || stderr != "end\n" {
			t.Errorf("logs after resume = %q / %q", stdout, stderr)
		}
		if n := len(h.startedSpecs()); n != 1 {
			t.Errorf("%d instances started, want 1 (re-attached, not restarted)", n)
		}
		eventually(t, func() bool { return h.ledger.releases("r1") == 1 })
	})
}

// noLister hides the fake's List, like the wasm executor.
type noLister struct{ executor.Executor }

func TestResumeLostInstance(t *testing.T) {
	tests := []struct {
		name         string
		restart      ensemble.Restart
		executors    func(h *harness) map[ensemble.Executor]executor.Executor
		wantState    deployproto.AllocationState
		wantRestarts int
		wantMsg      string
	}{
		{
			name:    "gone from a listing executor",
			restart: ensemble.Restart{Policy: ensemble.Never},
			executors: func(h *harness) map[ensemble.Executor]executor.Executor {
				return docker(executortest.New(executortest.Config{}))
			},
			wantState: deployproto.AllocFailed,
			wantMsg:   "is gone after the node restarted",
		},
		{
			name:    "gone from an in-process executor",
			restart: ensemble.Restart{Policy: ensemble.Never},
			executors: func(h *harness) map[ensemble.Executor]executor.Executor {
				return docker(noLister{executortest.New(executortest.Config{})})
			},
			wantState: deployproto.AllocFailed,
			wantMsg:   "docker instances do not survive a restart",
		},
		{
			name:         "gone, and restarted by the policy",
			restart:      ensemble.Restart{Policy: ensemble.OnFailure, MaxRestarts: 2, Backoff: time.Second},
			executors:    func(h *harness) map[ensemble.Executor]executor.Executor { return docker(h.newExecutor()) },
			wantState:    deployproto.AllocCompleted,
			wantRestarts: 1,
		},
		{
			name:      "executor no longer on this node",
			restart:   ensemble.Restart{Policy: ensemble.Always},
			executors: func(h *harness) map[ensemble.Executor]executor.Executor { return nil },
			wantState: deployproto.AllocFailed,
			wantMsg:   `executor "docker" is no longer available`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				spec := task("sleep=10s")
				spec.Restart = tc.restart
				hd := h.create(h.m, "a1", "r1", spec)
				h.mustStart(hd)
				h.awaitState("a1", deployproto.AllocRunning)
				h.restart(tc.executors(h))
				r := h.awaitState("a1", tc.wantState)
				if r.Restarts != tc.wantRestarts {
					t.Errorf("restarts = %d, want %d (%s)", r.Restarts, tc.wantRestarts, h.orch.summary("a1"))
				}
				msg := r.Message
				if r.Result != nil {
					msg += " / " + r.Result.Error
				}
				if tc.wantState == deployproto.AllocFailed && (!strings.Contains(msg, tc.wantMsg) || r.Result == nil || r.Result.Reason != executor.ReasonFailed) {
					t.Errorf("final report %q, result %+v; want failed saying %q", msg, r.Result, tc.wantMsg)
				}
				eventually(t, func() bool { return h.ledger.releases("r1") == 1 })
			})
		})
	}
}

func TestResumeStates(t *testing.T) {
	t.Run("pending stays pending and starts", func(t *testing.T) {
		inBubble(t, func(t *testing.T, h *harness) {
			hd := h.create(h.m, "a1", "r1", task("print=late"))
			h.restart(docker(h.ex))
			if st := h.status(hd); st.State != deployproto.AllocPending {
				t.Fatalf("state after resume = %s, want pending", st.State)
			}
			h.mustStart(hd)
			h.awaitState("a1", deployproto.AllocCompleted)
		})
	})
	t.Run("closed while starting starts again", func(t *testing.T) {
		inBubble(t, func(t *testing.T, h *harness) {
			slow := executortest.New(executortest.Config{StartDelay: time.Minute})
			h.m.Close(context.Background())
			h.m = h.newManager(docker(slow))
			hd := h.create(h.m, "a1", "r1", task("print=ok"))
			h.mustStart(hd)
			h.awaitState("a1", deployproto.AllocStarting)
			h.restart(docker(h.ex))
			h.awaitState("a1", deployproto.AllocCompleted)
			if ins, _ := slow.List(context.Background(), nil); len(ins) != 0 {
				t.Errorf("the cut-short start left %d instances", len(ins))
			}
		})
	})
	t.Run("ended stays readable and is not released again", func(t *testing.T) {
		inBubble(t, func(t *testing.T, h *harness) {
			hd := h.create(h.m, "a1", "r1", task("print=done"))
			h.mustStart(hd)
			h.awaitState("a1", deployproto.AllocCompleted)
			eventually(t, func() bool {
				recs, _ := h.store.List()
				return h.ledger.releases("r1") == 1 && recs[0].Reported
			})
			n, _ := h.orch.reportsOf("a1")
			h.restart(docker(h.ex))
			if st := h.status(hd); st.State != deployproto.AllocCompleted || st.Result == nil {
				t.Errorf("status after resume = %+v", st)
			}
			if out, _ := h.readLogs(hd); out != "done\n" {
				t.Errorf("logs after resume = %q", out)
			}
			time.Sleep(5 * time.Second)
			if m, _ := h.orch.reportsOf("a1"); len(m) != len(n) {
				t.Errorf("%d reports after resuming an ended allocation, want none", len(m)-len(n))
			}
			if got := h.ledger.releases("r1"); got != 1 {
				t.Errorf("released %d times, want 1", got)
			}
			if err := h.m.Revert(context.Background(), "r1"); err != nil {
				t.Errorf("Revert: %v", err)
			}
			if got := h.ledger.releases("r1"); got != 1 {
				t.Errorf("released %d times after revert, want 1", got)
			}
		})
	})
	t.Run("wrong sealer key is an error, others resume", func(t *testing.T) {
		inBubble(t, func(t *testing.T, h *harness) {
			h.create(h.m, "a1", "r1", task("print=x"))
			recs, _ := h.store.List()
			bad := recs[0]
			bad.ID, bad.SealedKey = "a2", []byte("garbage")
			h.store.Put(bad)
			h.m.Close(context.Background())
			h.m = h.newManager(docker(h.ex))
			err := h.m.Resume(context.Background())
			if err == nil || !strings.Contains(err.Error(), "a2") {
				t.Errorf("Resume = %v, want an error about a2", err)
			}
			if got := h.m.List(); len(got) != 1 || got[0].ID != "a1" {
				t.Errorf("List = %v, want a1", got)
			}
		})
	})
}

func TestSeqSurvivesRestart(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		hd := h.create(h.m, "a1", "r1", task("sleep=1h"))
		h.mustStart(hd)
		// More heartbeats than the persisted Seq block.
		time.Sleep(time.Duration(seqBlock+200) * time.Second)
		synctest.Wait() // every heartbeat sent so far has arrived
		rs, _ := h.orch.reportsOf("a1")
		last := rs[len(rs)-1].Seq
		h.restart(docker(h.ex))
		eventually(t, func() bool { after, _ := h.orch.reportsOf("a1"); return len(after) > len(rs) })
		after, _ := h.orch.reportsOf("a1")
		if r := after[len(rs)]; r.Seq <= last {
			t.Fatalf("first report after the restart has Seq %d, want above %d", r.Seq, last)
		}
		h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop, deployproto.StopRequest{}, nil)
	})
}

// The requester's delegation of the note behavior, brought by the commit,
// is kept with the allocation and put back in the wallet at a resume: a
// provider restarted after a crash can still send the contract's notes.
func TestResumeKeepsNoteChain(t *testing.T) {
	tests := []struct {
		name      string
		noteChain func(t *testing.T, h *harness) string
		want      int // note chains in the wallet after the resume
	}{
		{name: "kept", noteChain: func(t *testing.T, h *harness) string { return noteChain(t, h.orch.key.DID(), deployproto.BehaviorNote) }, want: 1},
		{name: "none", noteChain: func(*testing.T, *harness) string { return "" }, want: 0},
		{name: "does not decode", noteChain: func(*testing.T, *harness) string { return "not a chain" }, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				text := tc.noteChain(t, h)
				h.ledger.hold("r1")
				if _, err := h.m.Create(context.Background(), CreateRequest{
					ID: "a1", Reservation: "r1", Deployment: "dep1", Orchestrator: h.orch.act.Handle(),
					Spec: task("sleep=1h"), Contract: "c1", NoteChain: text,
				}); err != nil {
					t.Fatalf("Create: %v", err)
				}
				if recs, _ := h.store.List(); len(recs) != 1 || recs[0].NoteChain != text {
					t.Fatalf("records %+v, want one keeping the note chain %q", recs, text)
				}
				// A restarted node's wallet starts empty.
				h.wallet.mu.Lock()
				h.wallet.chains = nil
				h.wallet.mu.Unlock()
				h.restart(docker(h.ex))
				got := 0
				for _, holder := range h.wallet.holders() {
					if holder == h.orch.key.DID() {
						got++
					}
				}
				if got != tc.want {
					t.Fatalf("%d note chains in the wallet after the resume (holders %v), want %d", got, h.wallet.holders(), tc.want)
				}
			})
		})
	}
}
