package notary

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// The cost of the contract runtime: TestCostOf1000Contracts runs a
// provider notary in the test process and a requester notary in a child
// process (TestCostRequesterChild, the same test binary), talking over
// two pipes, with DMS_NOTARY_COST_CONTRACTS contracts (1000) at one note
// per 10 s each. After the contracts are placed (spread over one
// interval) and one more interval, it measures each process's CPU time
// over DMS_NOTARY_COST_WINDOW (30 s) and reports it as a share of one
// core. The acceptance bound is 2 % per node. Both sides settle as
// Config.SettleEvery says (5 min), so no settlement falls in the window;
// DMS_NOTARY_COST_SETTLE_EVERY (seconds) sets it shorter to measure what
// settlements add. Run:
//
//	DMS_NOTARY_COST=1 go test -run 'TestCostOf1000Contracts' -v ./internal/contract/notary/
const (
	costEnv      = "DMS_NOTARY_COST"
	costChildEnv = "DMS_NOTARY_COST_CHILD" // the requester's store directory
	costBound    = 2.0                     // % of one core, per node
)

// rpcRequest and rpcReply are the pipe protocol between the two
// processes, in binary frames (costwire_test.go).
type rpcRequest struct {
	ID    uint64               `json:"id"`
	Op    string               `json:"op"` // propose, agree, note
	Terms *contract.Terms      `json:"terms,omitempty"`
	Key   string               `json:"key,omitempty"` // agree: contract ID
	Sig   []byte               `json:"sig,omitempty"`
	From  identity.DID         `json:"from,omitempty"`
	Note  *contract.SignedNote `json:"note,omitempty"`
}

type rpcReply struct {
	ID       uint64               `json:"id"`
	Contract *contract.Contract   `json:"contract,omitempty"`
	Note     *contract.SignedNote `json:"note,omitempty"`
	Code     actor.Code           `json:"code,omitempty"`
	Err      string               `json:"err,omitempty"`
}

// rpc is the provider's end of the pipes.
type rpc struct {
	mu      sync.Mutex
	w       *bufio.Writer // guarded by mu
	buf     []byte        // guarded by mu: the frame being written
	next    uint64
	waiting map[uint64]chan rpcReply
	ok      atomic.Int64 // notes countersigned
}

func newRPC(w *os.File, r *os.File) *rpc {
	c := &rpc{w: bufio.NewWriter(w), waiting: map[uint64]chan rpcReply{}}
	go func() {
		br := bufio.NewReader(r)
		var buf []byte
		for {
			b, err := readFrame(br, buf)
			if err != nil {
				return
			}
			buf = b
			rep, err := decodeReply(b)
			if err != nil {
				return
			}
			c.mu.Lock()
			ch := c.waiting[rep.ID]
			delete(c.waiting, rep.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- rep
			}
		}
	}()
	return c
}

func (c *rpc) call(ctx context.Context, req rpcRequest) (rpcReply, error) {
	ch := make(chan rpcReply, 1)
	c.mu.Lock()
	c.next++
	req.ID = c.next
	c.waiting[req.ID] = ch
	b, err := appendRequest(c.buf[:0], req)
	if err == nil {
		c.buf = b
		_, err = c.w.Write(b)
	}
	if err == nil {
		err = c.w.Flush()
	}
	c.mu.Unlock()
	if err != nil {
		return rpcReply{}, err
	}
	select {
	case rep := <-ch:
		switch {
		case rep.Code != "":
			return rep, &actor.Error{Code: rep.Code, Msg: rep.Err}
		case rep.Err != "":
			return rep, errors.New(rep.Err)
		}
		return rep, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, req.ID)
		c.mu.Unlock()
		return rpcReply{}, ctx.Err()
	}
}

func (c *rpc) send(ctx context.Context, from identity.DID, _ *contract.Contract, n *contract.SignedNote) (*contract.SignedNote, error) {
	rep, err := c.call(ctx, rpcRequest{Op: "note", From: from, Note: n})
	if err != nil {
		return nil, err
	}
	c.ok.Add(1)
	return rep.Note, nil
}

// cpuOf is the user+system CPU time of a process from /proc (clock
// ticks of 10 ms).
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// costSettleEvery is $DMS_NOTARY_COST_SETTLE_EVERY seconds (0, the
// default, without it).
func costSettleEvery() time.Duration {
	return time.Duration(envOr("DMS_NOTARY_COST_SETTLE_EVERY", 0)) * time.Second
}

func envOr(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestCostOf1000Contracts(t *testing.T) {
	if os.Getenv(costEnv) == "" {
		t.Skipf("a measurement of about a minute: set %s=1", costEnv)
	}
	contracts := envOr("DMS_NOTARY_COST_CONTRACTS", 1000)
	window := time.Duration(envOr("DMS_NOTARY_COST_WINDOW", 30)) * time.Second
	const iv = 10 * time.Second

	// The requester: this test binary again, on pipes 3 (requests) and
	// 4 (replies).
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestCostRequesterChild$", "-test.v")
	child.Env = append(os.Environ(), costChildEnv+"="+t.TempDir())
	child.ExtraFiles = []*os.File{reqR, repW}
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	reqR.Close()
	repW.Close()
	defer func() {
		reqW.Close() // the child ends at EOF
		if err := child.Wait(); err != nil {
			t.Errorf("requester process: %v", err)
		}
	}()
	r := newRPC(reqW, repR)

	// The provider, here.
	var usage sync.Map // reservation → *atomic.Uint64 (calls)
	meter := func(_ context.Context, res string) (contract.Usage, bool, error) {
		v, _ := usage.LoadOrStore(res, new(atomic.Uint64))
		k := v.(*atomic.Uint64).Add(1)
		return contract.Usage{CPUMicros: k * 250_000, MemoryByteSeconds: k * 10 << 30, WallMillis: k * 10_000}, false, nil
	}
	provKey, reqKey := seedKey(t, "provider"), seedKey(t, "requester")
	db, err := store.Open(filepath.Join(t.TempDir(), "provider.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := ledger.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	var stops atomic.Int64
	n, err := Open(Config{DB: db, Key: provKey, Ledger: l, Meter: meter, SettleEvery: costSettleEvery(),
		Send: func(ctx context.Context, c *contract.Contract, sn *contract.SignedNote) (*contract.SignedNote, error) {
			return r.send(ctx, provKey.DID(), c, sn)
		},
		Stop: func(context.Context, string, string) error { stops.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Place the contracts over one interval, as deployments would come.
	created := time.Now().UTC()
	var placing sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range contracts {
		time.Sleep(time.Until(created.Add(time.Duration(i) * iv / time.Duration(contracts))))
		sem <- struct{}{}
		placing.Go(func() {
			defer func() { <-sem }()
			tm := contract.Terms{
				Version: 1, Deployment: fmt.Sprintf("dep-%d", i/4), Node: "worker", Reservation: fmt.Sprintf("res-%d", i),
				Allocations: []string{"worker-0"}, Requester: reqKey.DID(), Provider: provKey.DID(),
				Price: match.Price{CPU: 3_600_000, RAM: 100_000}, Reserved: match.Resources{CPU: 1000, RAM: 1 << 30},
				Interval: iv, Settlement: contract.SettleLocal, Created: created,
			}
			rep, err := r.call(ctx, rpcRequest{Op: "propose", Terms: &tm})
			if err != nil {
				t.Errorf("propose %d: %v", i, err)
				return
			}
			sig, err := n.Sign(rep.Contract, Expect{Deployment: tm.Deployment, Reservation: tm.Reservation, Requester: reqKey.DID()})
			if err != nil {
				t.Errorf("sign %d: %v", i, err)
				return
			}
			if _, err := r.call(ctx, rpcRequest{Op: "agree", Key: rep.Contract.ID, Sig: sig}); err != nil {
				t.Errorf("agree %d: %v", i, err)
			}
		})
	}
	placing.Wait()
	if t.Failed() {
		return
	}
	time.Sleep(iv) // every contract has had a note

	// The anchor: a side's two signature operations per note (the
	// provider signs a note and verifies its countersignature, the
	// requester verifies it and countersigns), at the same rate.
	anchor := func() float64 {
		msg := []byte("dms-note|" + strings.Repeat("ab", 32))
		const k = 2000
		c0 := selfCPU()
		for range k {
			if !identity.Verify(provKey.DID(), msg, provKey.Sign(msg)) {
				t.Fatal("signature does not verify")
			}
		}
		per := float64(selfCPU()-c0) / k
		return 100 * per * float64(contracts) / float64(iv)
	}()

	stopProfile := profile(t, "provider")
	if _, err := r.call(ctx, rpcRequest{Op: "profile"}); err != nil {
		t.Fatal(err)
	}
	pc0, pw0 := n.commits.Load(), n.writes.Load()
	p0, c0, ok0 := selfCPU(), must(cpuOf(child.Process.Pid)), r.ok.Load()
	start := time.Now()
	time.Sleep(window)
	p1, c1, ok1 := selfCPU(), must(cpuOf(child.Process.Pid)), r.ok.Load()
	pc1, pw1 := n.commits.Load(), n.writes.Load()
	stopProfile()
	if _, err := r.call(ctx, rpcRequest{Op: "profile"}); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)

	prov := 100 * float64(p1-p0) / float64(el)
	req := 100 * float64(c1-c0) / float64(el)
	rate := float64(ok1-ok0) / el.Seconds()
	t.Logf("%d contracts, one note per %v each, window %v: %.0f notes countersigned/s (want %.0f)", contracts, iv, el.Round(time.Millisecond), rate, float64(contracts)/iv.Seconds())
	t.Logf("provider process: %v CPU = %.2f %% of one core; requester process: %v CPU = %.2f %% of one core (bound %.0f %% each)",
		(p1 - p0).Round(time.Millisecond), prov, (c1 - c0).Round(time.Millisecond), req, costBound)
	t.Logf("provider: %d store commits of %d contract states in the window", pc1-pc0, pw1-pw0)
	t.Logf("anchor: one ed25519 sign and one verify per note at this rate = %.2f %% of one core", anchor)
	if s := stops.Load(); s != 0 {
		t.Errorf("%d contracts stopped", s)
	}
	if rate < 0.9*float64(contracts)/iv.Seconds() {
		t.Errorf("%.0f notes/s countersigned, want about %.0f", rate, float64(contracts)/iv.Seconds())
	}
	if prov > costBound || req > costBound {
		t.Errorf("cost above %.0f %% of one core", costBound)
	}
}

// profile writes a CPU profile to $DMS_NOTARY_COST_PROFILE/name.prof
// until the returned function is called (nothing without the variable),
// at $DMS_NOTARY_COST_PROFILE_HZ samples a second when set.
func profile(t *testing.T, name string) func() {
	dir := os.Getenv("DMS_NOTARY_COST_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	if err != nil {
		t.Fatal(err)
	}
	if hz := envOr("DMS_NOTARY_COST_PROFILE_HZ", 0); hz > 0 {
		// A finer profile than pprof's 100 Hz (the runtime then warns
		// that the rate is already set; the rate holds).
		runtime.SetCPUProfileRate(hz)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCostRequesterChild is the requester process of
// TestCostOf1000Contracts.
func TestCostRequesterChild(t *testing.T) {
	dir := os.Getenv(costChildEnv)
	if dir == "" {
		t.Skip("the requester process of TestCostOf1000Contracts")
	}
	in, out := os.NewFile(3, "requests"), os.NewFile(4, "replies")
	db, err := store.Open(filepath.Join(dir, "requester.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := ledger.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{DB: db, Key: seedKey(t, "requester"), Ledger: l, SettleEvery: costSettleEvery()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	var buf []byte
	reply := func(rep rpcReply) {
		mu.Lock()
		defer mu.Unlock()
		b, err := appendReply(buf[:0], rep)
		if err == nil {
			buf = b
			_, err = w.Write(b)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			t.Errorf("reply: %v", err)
		}
	}
	fail := func(id uint64, err error) rpcReply {
		rep := rpcReply{ID: id, Err: err.Error()}
		var ae *actor.Error
		if errors.As(err, &ae) {
			rep.Code, rep.Err = ae.Code, ae.Msg
		}
		return rep
	}
	var stopProfile func()
	var c0, w0, b0, s0 int64
	// Notes are handled by at most DMS_NOTARY_COST_ACTOR_WORKERS (32)
	// goroutines at once, as by the workers of the node's root actor
	// that serves deployproto.BehaviorNote (internal/node spawns it with
	// actor.SpawnOptions{Workers: 32}): the requester's commits gather at
	// most that many notes.
	// Like the actor's, the workers are long-lived goroutines (a
	// goroutine per note would add its creation and stack growth).
	noteReqs := make(chan rpcRequest)
	var workers sync.WaitGroup
	for range envOr("DMS_NOTARY_COST_ACTOR_WORKERS", 32) {
		workers.Go(func() {
			for req := range noteReqs {
				cs, err := n.HandleNote(context.Background(), req.From, *req.Note)
				if err != nil {
					reply(fail(req.ID, err))
					continue
				}
				reply(rpcReply{ID: req.ID, Note: &cs})
			}
		})
	}
	defer workers.Wait()
	defer close(noteReqs)
	var wg sync.WaitGroup
	br := bufio.NewReader(in)
	var rbuf []byte
	for {
		b, err := readFrame(br, rbuf)
		if err != nil {
			break
		}
		rbuf = b
		req, err := decodeRequest(b)
		if err != nil {
			t.Errorf("request: %v", err)
			break
		}
		switch req.Op {
		case "propose":
			wg.Go(func() {
				c, err := n.Propose(*req.Terms)
				if err != nil {
					reply(fail(req.ID, err))
					return
				}
				reply(rpcReply{ID: req.ID, Contract: c})
			})
		case "agree":
			wg.Go(func() {
				if err := n.Agree(req.Key, req.Sig); err != nil {
					reply(fail(req.ID, err))
					return
				}
				reply(rpcReply{ID: req.ID})
			})
		case "profile": // the measurement's window starts or ends
			if stopProfile == nil {
				stopProfile = profile(t, "requester")
				c0, w0 = n.commits.Load(), n.writes.Load()
				b0, s0 = n.sigs.batches.Load(), n.sigs.sigs.Load()
			} else {
				stopProfile()
				t.Logf("requester: %d store commits of %d writes in the window; %d batches of %d providers' signatures verified",
					n.commits.Load()-c0, n.writes.Load()-w0, n.sigs.batches.Load()-b0, n.sigs.sigs.Load()-s0)
			}
			reply(rpcReply{ID: req.ID})
		case "note":
			noteReqs <- req
		}
	}
	wg.Wait()
}
