package allocation

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/identity"
)

// harness is a provider (actor system, allocation Manager with the fake
// executor) and an orchestrator on another host of an in-memory network.
// Tests run it inside a testing/synctest bubble, so time is virtual:
// backoffs, heartbeats and sleeping workloads take no real time.
type harness struct {
	t        testing.TB
	bubble   bool // in a synctest bubble (inBubble)
	net      *actor.MemNetwork
	provSys  *actor.System
	provKey  *identity.Key
	orch     *fakeOrch
	ex       *executortest.Executor
	store    *MemStore
	ledger   *fakeLedger
	wallet   *fakeWallet
	sealer   *identity.Sealer
	dataDir  string
	m        *Manager
	managers []*Manager

	specMu sync.Mutex
	specs  []executor.Spec // guarded by specMu: what the fake executor was asked to start

	subnets Subnets // given to the managers made from now on
}

// inBubble runs f with a fresh harness inside a synctest bubble.
func inBubble(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.bubble = true
		f(t, h)
	})
}

func newSystem(t testing.TB, net *actor.MemNetwork, key *identity.Key) *actor.System {
	t.Helper()
	host, err := key.DID().PeerID()
	if err != nil {
		t.Fatal(err)
	}
	sys, err := actor.NewSystem(actor.Config{Transport: net.Host(host), Auth: actor.AllowAll{}, Issuer: actor.AllowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	net := actor.NewMemNetwork()
	provKey, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := identity.NewSealer(provKey, "child-keys")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:       t,
		net:     net,
		provKey: provKey,
		provSys: newSystem(t, net, provKey),
		store:   NewMemStore(),
		ledger:  &fakeLedger{held: map[string]bool{}, calls: map[string]int{}},
		wallet:  &fakeWallet{},
		sealer:  sealer,
		dataDir: t.TempDir() + "/data/allocations",
	}
	h.orch = newFakeOrch(t, newSystem(t, net, mustKey(t)))
	// Open the link between the hosts before any allocation reports: when
	// both ends dial each other at once the actor runtime may serve one
	// link twice and deliver out of order (an internal/actor bug).
	root, err := h.provSys.Spawn(provKey, actor.RootInbox, actor.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root.AddBehavior("/public/ping", func(context.Context, *actor.Message) (any, error) { return struct{}{}, nil })
	if err := h.orch.act.Invoke(context.Background(), root.Handle(), "/public/ping", nil, nil); err != nil {
		t.Fatal(err)
	}
	h.ex = h.newExecutor()
	h.m = h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex, ensemble.Wasm: h.ex})
	t.Cleanup(func() {
		ctx := context.Background()
		for _, m := range h.managers {
			if err := m.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		h.provSys.Close(ctx)
		h.orch.sys.Close(ctx)
		// End what still runs, so the bubble's goroutines exit.
		ins, _ := h.ex.List(ctx, nil)
		for _, in := range ins {
			h.ex.Remove(ctx, in.ID)
		}
	})
	return h
}

func mustKey(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newExecutor returns a fake executor that records the specs it starts.
func (h *harness) newExecutor() *executortest.Executor {
	return executortest.New(executortest.Config{StartError: func(s executor.Spec) error {
		h.specMu.Lock()
		h.specs = append(h.specs, s)
		h.specMu.Unlock()
		return nil
	}})
}

func (h *harness) startedSpecs() []executor.Spec {
	h.specMu.Lock()
	defer h.specMu.Unlock()
	return append([]executor.Spec(nil), h.specs...)
}

// newManager makes a Manager on the harness's store, system and ledger
// (as a restarted daemon would); Cleanup closes it.
func (h *harness) newManager(executors map[ensemble.Executor]executor.Executor) *Manager {
	h.t.Helper()
	m, err := New(Config{
		System:    h.provSys,
		Executors: executors,
		Store:     h.store,
		Ledger:    h.ledger,
		Wallet:    h.wallet,
		Sealer:    h.sealer,
		DataDir:   h.dataDir,
		Heartbeat: time.Second,
		Logger:    testLogger(),
		Subnets:   h.subnets,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.managers = append(h.managers, m)
	return m
}

func testLogger() *slog.Logger {
	if os.Getenv("ALLOC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// task returns the spec of a docker task running the fake's script steps.
func task(steps ...string) deployproto.AllocationSpec {
	return deployproto.AllocationSpec{
		Name:     "job",
		Type:     ensemble.Task,
		Executor: ensemble.Docker,
		Execution: ensemble.Execution{
			Image:      "workload",
			Entrypoint: []string{"workload"},
			Cmd:        steps,
		},
		Restart: ensemble.Restart{Policy: ensemble.Never},
	}
}

// create makes allocation id of reservation res (held by the ledger).
func (h *harness) create(m *Manager, id, res string, spec deployproto.AllocationSpec) actor.Handle {
	h.t.Helper()
	h.ledger.hold(res)
	hd, err := m.Create(context.Background(), CreateRequest{
		ID: id, Reservation: res, Deployment: "dep1", Orchestrator: h.orch.act.Handle(), Spec: spec,
	})
	if err != nil {
		h.t.Fatalf("Create(%s): %v", id, err)
	}
	return hd
}

// chain returns the orchestrator's delegation of /dms/deployment to to.
func (h *harness) chain(to identity.DID) string {
	h.t.Helper()
	d, err := cap.Delegate(h.orch.key, cap.DelegationParams{Audience: to, Command: deployproto.CmdDeployment})
	if err != nil {
		h.t.Fatal(err)
	}
	text, err := cap.Chain{d}.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	return text
}

// start invokes BehaviorStart from the orchestrator, with a chain.
func (h *harness) start(hd actor.Handle) error {
	return h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStart,
		deployproto.StartRequest{Chain: h.chain(hd.DID)}, nil)
}

func (h *harness) mustStart(hd actor.Handle) {
	h.t.Helper()
	if err := h.start(hd); err != nil {
		h.t.Fatalf("start %s: %v", hd.Inbox, err)
	}
}

func (h *harness) status(hd actor.Handle) deployproto.Report {
	h.t.Helper()
	var r deployproto.Report
	if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStatus, nil, &r); err != nil {
		h.t.Fatalf("status %s: %v", hd.Inbox, err)
	}
	return r
}

func (h *harness) logs(hd actor.Handle, req deployproto.LogsRequest) (deployproto.LogsChunk, error) {
	var c deployproto.LogsChunk
	err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorLogs, req, &c)
	return c, err
}

// readLogs reads the whole log until EOF, returning stdout and stderr.
func (h *harness) readLogs(hd actor.Handle) (stdout, stderr string) {
	h.t.Helper()
	var out, errb strings.Builder
	var off int64
	for range 1000 {
		c, err := h.logs(hd, deployproto.LogsRequest{Offset: off, Wait: 10 * time.Second})
		if err != nil {
			h.t.Fatalf("logs: %v", err)
		}
		for _, e := range c.Entries {
			if e.Stream == "stderr" {
				errb.Write(e.Data)
			} else {
				out.Write(e.Data)
			}
		}
		off = c.Next
		if c.EOF {
			return out.String(), errb.String()
		}
	}
	h.t.Fatal("logs never reached EOF")
	return "", ""
}

// awaitState waits (in virtual time) for a report of allocation id in
// state and returns it.
func (h *harness) awaitState(id string, state deployproto.AllocationState) deployproto.Report {
	h.t.Helper()
	r, ok := h.orch.await(time.Hour, func(r deployproto.Report) bool { return r.ID == id && r.State == state })
	if !ok {
		h.t.Fatalf("no report of %s in state %s; reports: %s", id, state, h.orch.summary(id))
	}
	return r
}

// fakeOrch is an orchestrator actor: it serves artifacts and records
// reports.
type fakeOrch struct {
	sys *actor.System
	key *identity.Key
	act *actor.Actor

	mu        sync.Mutex
	reports   []deployproto.Report  // guarded by mu
	times     []time.Time           // guarded by mu: when each report arrived
	artifacts map[string][]byte     // guarded by mu: by digest
	requests  map[string]int        // guarded by mu: artifact requests by digest
	changed   chan struct{}         // guarded by mu: closed at every report
	refuse    bool                  // guarded by mu: answer reports with an error
	refused   int                   // guarded by mu
	ack       deployproto.ReportAck // guarded by mu: the answer to reports
	empty     bool                  // guarded by mu: answer reports with no payload
}

// setAck sets the answer to the reports from now on.
func (o *fakeOrch) setAck(ack deployproto.ReportAck) {
	o.mu.Lock()
	o.ack = ack
	o.mu.Unlock()
}

// setRefuse makes the orchestrator answer reports with an error (on), as
// one that is restarting or out of reach.
func (o *fakeOrch) setRefuse(on bool) {
	o.mu.Lock()
	o.refuse = on
	o.mu.Unlock()
}

func newFakeOrch(t testing.TB, sys *actor.System) *fakeOrch {
	t.Helper()
	key := mustKey(t)
	act, err := sys.Spawn(key, "orch/dep1", actor.SpawnOptions{Workers: 1}) // reports in order
	if err != nil {
		t.Fatal(err)
	}
	o := &fakeOrch{sys: sys, key: key, act: act, artifacts: map[string][]byte{}, requests: map[string]int{}, changed: make(chan struct{})}
	act.AddBehavior(deployproto.BehaviorReport, func(ctx context.Context, m *actor.Message) (any, error) {
		var r deployproto.Report
		if err := m.Decode(&r); err != nil {
			return nil, err
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.refuse {
			o.refused++
			return nil, errors.New("restarting")
		}
		o.reports = append(o.reports, r)
		o.times = append(o.times, time.Now())
		close(o.changed)
		o.changed = make(chan struct{})
		if o.empty {
			return nil, nil
		}
		return o.ack, nil
	})
	act.AddBehavior(deployproto.BehaviorArtifact, func(ctx context.Context, m *actor.Message) (any, error) {
		var req deployproto.ArtifactRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		o.requests[req.Digest]++
		b, ok := o.artifacts[req.Digest]
		if !ok {
			return nil, fmt.Errorf("no artifact %s", req.Digest)
		}
		if req.Offset < 0 || req.Offset > int64(len(b)) {
			return nil, fmt.Errorf("offset %d out of range", req.Offset)
		}
		end := min(int64(len(b)), req.Offset+deployproto.ArtifactChunkSize)
		return deployproto.ArtifactChunk{Data: b[req.Offset:end], Size: int64(len(b))}, nil
	})
	return o
}

// serve makes the orchestrator serve data under its digest, and returns
// the digest.
func (o *fakeOrch) serve(data []byte) string {
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	o.serveAs(d, data)
	return d
}

func (o *fakeOrch) serveAs(digest string, data []byte) {
	o.mu.Lock()
	o.artifacts[digest] = data
	o.mu.Unlock()
}

func (o *fakeOrch) artifactRequests(digest string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[digest]
}

// reportsOf returns the reports of allocation id in Seq order, as an
// orchestrator must read them, and when each arrived.
func (o *fakeOrch) reportsOf(id string) ([]deployproto.Report, []time.Time) {
	o.mu.Lock()
	var idx []int
	for i, r := range o.reports {
		if r.ID == id {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(o.reports[a].Seq, o.reports[b].Seq) })
	rs := make([]deployproto.Report, len(idx))
	ts := make([]time.Time, len(idx))
	for k, i := range idx {
		rs[k], ts[k] = o.reports[i], o.times[i]
	}
	o.mu.Unlock()
	return rs, ts
}

// await waits up to d (virtual time) for a report matching ok.
func (o *fakeOrch) await(d time.Duration, ok func(deployproto.Report) bool) (deployproto.Report, bool) {
	deadline := time.After(d)
	seen := 0
	for {
		o.mu.Lock()
		for _, r := range o.reports[seen:] {
			if ok(r) {
				o.mu.Unlock()
				return r, true
			}
		}
		seen = len(o.reports)
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return deployproto.Report{}, false
		}
	}
}

// summary lists the states reported for id, for failure messages.
func (o *fakeOrch) summary(id string) string {
	rs, _ := o.reportsOf(id)
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "[%d %s %q] ", r.Seq, r.State, r.Message)
	}
	return b.String()
}

// states returns the distinct successive states reported for id.
func (o *fakeOrch) states(id string) []deployproto.AllocationState {
	rs, _ := o.reportsOf(id)
	var out []deployproto.AllocationState
	for _, r := range rs {
		if len(out) == 0 || out[len(out)-1] != r.State {
			out = append(out, r.State)
		}
	}
	return out
}

// fakeLedger counts releases; releasing a reservation it does not hold is
// an error, as with the node's resource manager.
type fakeLedger struct {
	mu    sync.Mutex
	held  map[string]bool // guarded by mu
	calls map[string]int  // guarded by mu
}

var errNotHeld = errors.New("not found")

func (l *fakeLedger) hold(id string) {
	l.mu.Lock()
	l.held[id] = true
	l.mu.Unlock()
}

func (l *fakeLedger) Release(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[id]++
	if !l.held[id] {
		return fmt.Errorf("release %s: %w", id, errNotHeld)
	}
	delete(l.held, id)
	return nil
}

func (l *fakeLedger) releases(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[id]
}

// fakeWallet records the chains added.
type fakeWallet struct {
	mu     sync.Mutex
	chains []cap.Chain // guarded by mu
}

func (w *fakeWallet) Add(c cap.Chain) {
	w.mu.Lock()
	w.chains = append(w.chains, c)
	w.mu.Unlock()
}

func (w *fakeWallet) holders() []identity.DID {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []identity.DID
	for _, c := range w.chains {
		out = append(out, c.Holder())
	}
	return out
}
