package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// fakeTimeline is a DeploymentService holding one deployment, "d1", whose
// Get long-polls as the node's does: it answers when the version exceeds
// after, or when wait passes.
type fakeTimeline struct {
	DeploymentService // the methods the events endpoint does not use

	mu      sync.Mutex
	d       api.Deployment // guarded by mu
	changed chan struct{}  // closed and replaced on every change; guarded by mu
	waiters int            // Gets waiting; guarded by mu
}

func newFakeTimeline(state string, events ...api.DeploymentEvent) *fakeTimeline {
	return &fakeTimeline{d: api.Deployment{ID: "d1", State: state, Version: 1, Events: events}, changed: make(chan struct{})}
}

func (f *fakeTimeline) Get(ctx context.Context, id string, after uint64, wait time.Duration) (*api.Deployment, error) {
	if id != "d1" {
		return nil, &NotFound{Err: errNotFound(id)}
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		f.mu.Lock()
		d, ch := f.d, f.changed
		if wait == 0 || d.Version > after {
			f.mu.Unlock()
			d.Events = append([]api.DeploymentEvent(nil), d.Events...)
			return &d, nil
		}
		f.waiters++
		f.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			wait = 0
		case <-ctx.Done():
			wait = 0
		}
		f.mu.Lock()
		f.waiters--
		f.mu.Unlock()
	}
}

// change applies fn to the deployment and wakes the waiting Gets.
func (f *fakeTimeline) change(fn func(d *api.Deployment)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.d)
	f.d.Version++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTimeline) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiters
}

type errNotFound string

func (e errNotFound) Error() string { return "deployment " + string(e) + ": not found" }

func event(seq uint64, kind, msg string) api.DeploymentEvent {
	return api.DeploymentEvent{Seq: seq, Time: time.Date(2026, 12, 4, 12, 0, int(seq), 0, time.UTC), Kind: kind, Message: msg}
}

func TestDeploymentEvents(t *testing.T) {
	evs := []api.DeploymentEvent{event(1, "placed", "placed web"), event(2, "lost", "no heartbeat"), event(3, "redeployed", "redeployed web")}
	tests := []struct {
		name   string
		state  string
		path   string
		status int
		code   string
		want   api.DeploymentEvents
	}{
		{"all", "running", "/api/v1/deployments/d1/events", 200, "", api.DeploymentEvents{Events: evs, Next: 3, State: "running"}},
		{"after", "running", "/api/v1/deployments/d1/events?after=1", 200, "", api.DeploymentEvents{Events: evs[1:], Next: 3, State: "running"}},
		{"after the last, no wait", "running", "/api/v1/deployments/d1/events?after=3", 200, "", api.DeploymentEvents{Events: []api.DeploymentEvent{}, Next: 3, State: "running"}},
		{"after the last, wait passes", "running", "/api/v1/deployments/d1/events?after=3&wait=1ms", 200, "", api.DeploymentEvents{Events: []api.DeploymentEvent{}, Next: 3, State: "running"}},
		{"ended answers at once", "failed", "/api/v1/deployments/d1/events?after=3&wait=60s", 200, "", api.DeploymentEvents{Events: []api.DeploymentEvent{}, Next: 3, State: "failed", Ended: true}},
		{"wait is bounded", "completed", "/api/v1/deployments/d1/events?wait=1000h", 200, "", api.DeploymentEvents{Events: evs, Next: 3, State: "completed", Ended: true}},
		{"unknown deployment", "running", "/api/v1/deployments/nope/events", 404, api.CodeNotFound, api.DeploymentEvents{}},
		{"bad after", "running", "/api/v1/deployments/d1/events?after=-1", 400, api.CodeBadRequest, api.DeploymentEvents{}},
		{"after not a number", "running", "/api/v1/deployments/d1/events?after=last", 400, api.CodeBadRequest, api.DeploymentEvents{}},
		{"bad wait", "running", "/api/v1/deployments/d1/events?wait=soon", 400, api.CodeBadRequest, api.DeploymentEvents{}},
		{"negative wait", "running", "/api/v1/deployments/d1/events?wait=-1s", 400, api.CodeBadRequest, api.DeploymentEvents{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: newFakeTimeline(tt.state, evs...)})
			if err != nil {
				t.Fatal(err)
			}
			w := do(s, "GET", tt.path, "", "127.0.0.1:5000", token)
			if w.Code != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, w.Code, w.Body, tt.status)
			}
			if tt.status != http.StatusOK {
				var body api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tt.code {
					t.Fatalf("GET %s body = %s, want code %s", tt.path, w.Body, tt.code)
				}
				return
			}
			var got api.DeploymentEvents
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !equalEvents(got, tt.want) {
				t.Fatalf("GET %s = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func equalEvents(a, b api.DeploymentEvents) bool {
	if a.Next != b.Next || a.State != b.State || a.Ended != b.Ended || len(a.Events) != len(b.Events) || a.Events == nil {
		return false
	}
	for i := range a.Events {
		if a.Events[i].Seq != b.Events[i].Seq || !a.Events[i].Time.Equal(b.Events[i].Time) || a.Events[i].Kind != b.Events[i].Kind || a.Events[i].Message != b.Events[i].Message {
			return false
		}
	}
	return true
}

// TestDeploymentEventsLongPoll: a poll after the last event answers with
// the next event, and one waiting on a deployment that ends answers with
// its end; changes that add no event do not end the poll. Through the
// client.
func TestDeploymentEventsLongPoll(t *testing.T) {
	fake := newFakeTimeline("running", event(1, "placed", "placed web"))
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: fake})
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, s)
	ctx := context.Background()

	// waitFor polls until a Get is waiting (with a deadline).
	waitFor := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for fake.waiting() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no Get waits for the deployment")
			}
			time.Sleep(time.Millisecond)
		}
	}

	type answer struct {
		evs *api.DeploymentEvents
		err error
	}
	poll := func(after uint64) chan answer {
		ch := make(chan answer, 1)
		go func() {
			evs, err := c.DeploymentEvents(ctx, "d1", after, 50*time.Second)
			ch <- answer{evs, err}
		}()
		return ch
	}

	ch := poll(1)
	waitFor()
	fake.change(func(d *api.Deployment) { d.Message = "no event" }) // a change without an event
	waitFor()
	fake.change(func(d *api.Deployment) { d.Events = append(d.Events, event(2, "lost", "no heartbeat for 3s")) })
	a := <-ch
	if a.err != nil || len(a.evs.Events) != 1 || a.evs.Events[0].Seq != 2 || a.evs.Next != 2 || a.evs.Ended {
		t.Fatalf("DeploymentEvents(after 1) = %+v, %v, want event 2", a.evs, a.err)
	}

	ch = poll(2)
	waitFor()
	fake.change(func(d *api.Deployment) { d.State = "stopped" })
	a = <-ch
	if a.err != nil || len(a.evs.Events) != 0 || a.evs.Next != 2 || !a.evs.Ended || a.evs.State != "stopped" {
		t.Fatalf("DeploymentEvents(after 2) = %+v, %v, want the end", a.evs, a.err)
	}

	var apiErr *api.Error
	if _, err := c.DeploymentEvents(ctx, "nope", 0, 0); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("DeploymentEvents(unknown) = %v, want not found", err)
	}
}

// serve runs s until the test ends and returns a client of it.
func serve(t *testing.T, s *Server) *api.Client {
	t.Helper()
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	c, err := api.NewClient(api.ClientConfig{Addr: addr.String(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzPollQuery: any query gives an error or an after and a wait within
// bounds, never a panic.
func FuzzPollQuery(f *testing.F) {
	for _, q := range []string{"", "after=3&wait=30s", "after=-1", "wait=-1s", "wait=1000h", "after=18446744073709551616", "wait=1e9h"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		_, wait, err := pollQuery(q, "a number")
		if err == nil && (wait < 0 || wait > maxWait) {
			t.Fatalf("pollQuery(%q) wait = %s, want 0 to %s", raw, wait, maxWait)
		}
	})
}
