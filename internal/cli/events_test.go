package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
)

// fakeTimeline is the deployments side of a node, in memory: one
// deployment, "dtimeline1234", whose Get long-polls as the node's does.
// Each Get that waits takes the next step of script, if any, before it
// looks again: the deployment changes while a follower waits.
type fakeTimeline struct {
	apiserver.DeploymentService // the methods these tests do not use

	mu     sync.Mutex
	d      api.Deployment            // guarded by mu
	script []func(d *api.Deployment) // guarded by mu
}

const timelineID = "dtimeline1234"

func (f *fakeTimeline) Get(_ context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	if !strings.HasPrefix(timelineID, id) || len(id) < 4 {
		return nil, &apiserver.NotFound{Err: errors.New("deployment " + id + ": not found")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if wait > 0 && f.d.Version <= after && len(f.script) > 0 {
		f.script[0](&f.d)
		f.script = f.script[1:]
		f.d.Version++
	}
	d := f.d
	d.Events = append([]api.DeploymentEvent(nil), f.d.Events...)
	return &d, nil
}

func (f *fakeTimeline) Resolve(_ context.Context, prefix string) (string, error) {
	if len(prefix) >= 4 && strings.HasPrefix(timelineID, prefix) {
		return timelineID, nil
	}
	return "", &apiserver.NotFound{Err: errors.New("deployment " + prefix + ": not found")}
}

func (f *fakeTimeline) ResolveAllocation(_ context.Context, _, prefix string) (string, error) {
	return prefix, nil
}

// serveTimeline runs a real API server with f behind it and writes a home
// that points at it.
func serveTimeline(t *testing.T, f *fakeTimeline) string {
	t.Helper()
	return serveAPI(t, apiserver.Config{Deployments: f})
}

func timelineEvent(seq uint64, kind, alloc, node, msg string) api.DeploymentEvent {
	return api.DeploymentEvent{Seq: seq, Time: time.Now(), Kind: kind, Allocation: alloc, Node: node, Message: msg}
}

func TestDeploymentEventsCommand(t *testing.T) {
	evs := []api.DeploymentEvent{
		timelineEvent(1, "placed", "", "web", "placed node web on 12D3KooWa"),
		timelineEvent(2, "lost", "web", "web", "no heartbeat for 3s from 12D3KooWa"),
	}
	more := []func(d *api.Deployment){
		func(d *api.Deployment) { d.Message = "redeploying" }, // a change without an event
		func(d *api.Deployment) {
			d.Events = append(d.Events, timelineEvent(3, "redeployed", "", "web", "redeployed node web from 12D3KooWa to 12D3KooWb"))
		},
		func(d *api.Deployment) { d.State = "stopped" },
	}
	tests := []struct {
		name     string
		args     []string
		state    string
		wantCode int
		want     []string // lines of stdout, each as a prefix after the time column
		check    func(t *testing.T, stdout string)
	}{
		{
			name: "table", args: []string{"deployment", "events", "dtim"}, state: "running",
			want: []string{
				"TIME          KIND           ALLOCATION    MESSAGE",
				"placed         node web      placed node web on 12D3KooWa",
				"lost           web           no heartbeat for 3s from 12D3KooWa",
			},
		},
		{
			name: "follow until the end", args: []string{"deployment", "events", "dtim", "-f"}, state: "running",
			want: []string{
				"TIME          KIND           ALLOCATION    MESSAGE",
				"placed         node web      placed node web on 12D3KooWa",
				"lost           web           no heartbeat for 3s from 12D3KooWa",
				"redeployed     node web      redeployed node web from 12D3KooWa to 12D3KooWb",
			},
		},
		{
			name: "json array", args: []string{"-o", "json", "deployment", "events", "dtim"}, state: "running",
			check: func(t *testing.T, stdout string) {
				var got []api.DeploymentEvent
				if err := json.Unmarshal([]byte(stdout), &got); err != nil || len(got) != 2 || got[1].Kind != "lost" {
					t.Fatalf("stdout = %q (%v), want a JSON array of 2 events", stdout, err)
				}
			},
		},
		{
			name: "json lines with -f", args: []string{"-o", "json", "deployment", "events", "dtim", "-f"}, state: "running",
			check: func(t *testing.T, stdout string) {
				lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
				if len(lines) != 3 {
					t.Fatalf("stdout = %q, want 3 lines", stdout)
				}
				for i, l := range lines {
					var e api.DeploymentEvent
					if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq != uint64(i+1) {
						t.Fatalf("line %d = %q (%v), want event %d", i, l, err, i+1)
					}
				}
			},
		},
		{
			name: "ended: -f prints and exits", args: []string{"deployment", "events", "dtim", "-f"}, state: "failed",
			want: []string{
				"TIME          KIND           ALLOCATION    MESSAGE",
				"placed         node web      placed node web on 12D3KooWa",
				"lost           web           no heartbeat for 3s from 12D3KooWa",
			},
		},
		{name: "unknown deployment", args: []string{"deployment", "events", "dzzzz"}, state: "running", wantCode: exitFailure},
		{name: "no ID", args: []string{"deployment", "events"}, state: "running", wantCode: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTimeline{d: api.Deployment{ID: timelineID, State: tc.state, Version: 1, Events: evs}, script: more}
			home := serveTimeline(t, f)
			code, stdout, stderr := run(t, append([]string{"--home", home}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("dms %v = exit %d, stderr %q; want exit %d", tc.args, code, stderr, tc.wantCode)
			}
			if tc.check != nil {
				tc.check(t, stdout)
			}
			if tc.want == nil {
				return
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("stdout =\n%s\nwant %d lines", stdout, len(tc.want))
			}
			for i, l := range lines {
				if i > 0 {
					l = l[14:] // the time column: hh:mm:ss.mmm and two spaces
				}
				if strings.TrimRight(l, " ") != tc.want[i] {
					t.Errorf("line %d = %q, want %q", i, l, tc.want[i])
				}
			}
		})
	}
}

func TestEventTime(t *testing.T) {
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.Local)
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"today", time.Date(2026, 12, 4, 9, 5, 7, 123e6, time.Local), "09:05:07.123"},
		{"yesterday", time.Date(2026, 12, 3, 23, 59, 59, 0, time.Local), "2026-12-03 23:59:59.000"},
		{"a year ago", time.Date(2025, 12, 4, 9, 0, 0, 0, time.Local), "2025-12-04 09:00:00.000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := eventTime(tc.t, now); got != tc.want {
				t.Errorf("eventTime(%v) = %q, want %q", tc.t, got, tc.want)
			}
		})
	}
}

// TestPrintDeploymentSupervision: status shows the reason of a failure,
// the orchestrators, the attempt of redeployed allocations and the last
// events.
func TestPrintDeploymentSupervision(t *testing.T) {
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.Local)
	d := &api.Deployment{
		ID: "d1", State: "failed", Reason: "reschedule-budget-spent", Message: "node web: 3 redeploys within 1h",
		Orchestrator: "12D3KooWorch", Standbys: []string{"12D3KooWstandby"},
		Allocations: []api.DeploymentAlloc{
			{Name: "db", Node: "db", State: "running", Attempt: 1},
			{Name: "web", Node: "web", State: "failed", Attempt: 4, Restarts: 5},
		},
	}
	for i := range 7 {
		d.Events = append(d.Events, api.DeploymentEvent{Seq: uint64(i + 1), Time: now.Add(time.Duration(i-10) * time.Second), Kind: "lost", Node: "web", Message: "event " + strconv.Itoa(i+1)})
	}
	var b strings.Builder
	if err := printDeployment(&b, d, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"reason    reschedule-budget-spent\n",
		"orchestrator 12D3KooWorch\n",
		"standbys  12D3KooWstandby\n",
		"ALLOCATION  NODE  STATE    ATTEMPT  RESTARTS  EXIT  PORTS  MESSAGE",
		"db          db    running  1        0         -     -",
		"web         web   failed   4        5         -     -",
		"\nEvents:\n  (2 earlier: dms deployment events d1)\n  TIME          KIND",
		"  14:59:52.000  lost           node web      event 3\n",
		"  14:59:56.000  lost           node web      event 7\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printDeployment lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "event 2\n") {
		t.Errorf("printDeployment shows more than the last %d events:\n%s", statusEvents, out)
	}

	// Without redeploys, events or a failure, none of it shows.
	b.Reset()
	if err := printDeployment(&b, &api.Deployment{ID: "d2", State: "running", Allocations: []api.DeploymentAlloc{{Name: "web", Node: "web", State: "running", Attempt: 1}}}, now); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"reason", "ATTEMPT", "Events:", "standbys", "orchestrator"} {
		if strings.Contains(b.String(), absent) {
			t.Errorf("printDeployment shows %q:\n%s", absent, b.String())
		}
	}
}
