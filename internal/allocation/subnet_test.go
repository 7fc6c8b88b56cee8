package allocation

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// fakeSubnets records what the allocations ask of the node's subnets.
type fakeSubnets struct {
	mu     sync.Mutex
	events []string
}

func (f *fakeSubnets) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

func (f *fakeSubnets) Join(dep, alloc string, addr netip.Prefix, kind ensemble.Executor) (*executor.Subnet, error) {
	if kind != ensemble.Docker {
		return nil, fmt.Errorf("the %s executor cannot join a subnet", kind)
	}
	return &executor.Subnet{Addr: addr, DNS: netip.MustParseAddr("10.77.0.1"), AttachNetns: func(ctx context.Context, ns string) error {
		f.record("attach %s/%s %s", dep, alloc, ns)
		return nil
	}}, nil
}

func (f *fakeSubnets) Leave(dep, alloc string) { f.record("leave %s/%s", dep, alloc) }
func (f *fakeSubnets) Drop(dep string)         { f.record("drop %s", dep) }

func (f *fakeSubnets) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// has reports whether event was recorded, n times when n > 0.
func (f *fakeSubnets) count(event string) int {
	n := 0
	for _, e := range f.seen() {
		if e == event {
			n++
		}
	}
	return n
}

// netnsExecutor is the fake executor with docker's subnet behaviour: it
// calls AttachNetns at every start, and again when asked to after a
// re-attach (SubnetAttacher).
type netnsExecutor struct {
	*executortest.Executor
}

func (e netnsExecutor) Start(ctx context.Context, spec executor.Spec) (string, error) {
	id, err := e.Executor.Start(ctx, spec)
	if err == nil && spec.Subnet != nil {
		err = spec.Subnet.AttachNetns(ctx, "/proc/"+id+"/ns/net")
	}
	return id, err
}

func (e netnsExecutor) AttachSubnet(ctx context.Context, id string, s *executor.Subnet) error {
	return s.AttachNetns(ctx, "/proc/"+id+"/ns/net")
}

var _ executor.SubnetAttacher = netnsExecutor{}

func onSubnet(s deployproto.AllocationSpec, name, addr string) deployproto.AllocationSpec {
	s.Name = name
	s.Subnet = netip.MustParsePrefix(addr)
	return s
}

func TestSubnetAllocations(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		subs := &fakeSubnets{}
		h.subnets = subs
		ex := netnsExecutor{h.ex}
		m := h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Docker: ex, ensemble.Wasm: h.ex})
		short := h.create(m, "r1.db", "r1", onSubnet(task("sleep=1s", "exit=0"), "db", "10.77.0.2/24"))
		long := h.create(m, "r2.web", "r2", onSubnet(task("sleep=1h"), "web", "10.77.0.3/24"))
		h.mustStart(short)
		h.mustStart(long)
		h.awaitState("r2.web", deployproto.AllocRunning)
		var spec executor.Spec
		for _, s := range h.startedSpecs() {
			if s.Labels[executor.LabelAllocation] == "r2.web" {
				spec = s
			}
		}
		if spec.Subnet == nil || spec.Subnet.Addr != netip.MustParsePrefix("10.77.0.3/24") || spec.Subnet.DNS != netip.MustParseAddr("10.77.0.1") {
			t.Fatalf("the executor's spec has the subnet %+v, want 10.77.0.3/24 with DNS 10.77.0.1", spec.Subnet)
		}
		if got := m.Orchestrators("dep1"); !slices.Equal(got, []identity.DID{h.orch.act.Handle().DID}) {
			t.Errorf("Orchestrators(dep1) = %v, want the orchestrator", got)
		}
		h.awaitState("r1.db", deployproto.AllocCompleted)
		synctestWait()
		if subs.count("leave dep1/db") == 0 || subs.count("drop dep1") != 0 {
			t.Fatalf("after db completed, web running: %v; want db left, the subnet kept", subs.seen())
		}
		if err := m.Revert(context.Background(), "r2"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"leave dep1/web", "drop dep1"} {
			if subs.count(want) == 0 {
				t.Errorf("after the revert: %v, want %q", subs.seen(), want)
			}
		}
		if got := m.Orchestrators("dep1"); len(got) != 0 {
			t.Errorf("Orchestrators(dep1) = %v after every allocation ended, want none", got)
		}
		var attaches int
		for _, e := range subs.seen() {
			if strings.HasPrefix(e, "attach dep1/") {
				attaches++
			}
		}
		if attaches != 2 {
			t.Errorf("attaches: %v, want one per start", subs.seen())
		}
	})
}

// synctestWait lets the bubble's goroutines run until they block.
func synctestWait() { time.Sleep(time.Millisecond) }

func TestSubnetRefused(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		wasm := deployproto.AllocationSpec{Name: "w", Type: ensemble.Task, Executor: ensemble.Wasm,
			Execution: ensemble.Execution{Module: "sha256:" + strings.Repeat("0", 64)}, Subnet: netip.MustParsePrefix("10.77.0.2/24")}
		tests := []struct {
			name    string
			subnets Subnets
			spec    deployproto.AllocationSpec
			want    string
		}{
			{"a node without subnets", nil, onSubnet(task("exit=0"), "db", "10.77.0.2/24"), "this node runs no subnets"},
			{"wasm", &fakeSubnets{}, wasm, "wasm allocations cannot join a subnet"},
			{"the network's address", &fakeSubnets{}, onSubnet(task("exit=0"), "db", "10.77.0.0/24"), "network address"},
			{"IPv6", &fakeSubnets{}, onSubnet(task("exit=0"), "db", "fd00::2/64"), "not an IPv4 address"},
		}
		for i, tt := range tests {
			h.subnets = tt.subnets
			m := h.newManager(map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex, ensemble.Wasm: h.ex})
			_, err := m.Create(context.Background(), CreateRequest{ID: fmt.Sprintf("x%d", i), Reservation: "rx", Deployment: "dep1",
				Orchestrator: h.orch.act.Handle(), Spec: tt.spec})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: Create = %v, want an error saying %q", tt.name, err, tt.want)
			}
		}
	})
}

func TestSubnetReattach(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		subs := &fakeSubnets{}
		h.subnets = subs
		ex := netnsExecutor{h.ex}
		execs := map[ensemble.Executor]executor.Executor{ensemble.Docker: ex}
		h.m = h.newManager(execs)
		hd := h.create(h.m, "r1.web", "r1", onSubnet(task("sleep=1h"), "web", "10.77.0.3/24"))
		h.mustStart(hd)
		h.awaitState("r1.web", deployproto.AllocRunning)
		// The running state can be seen before the record with the
		// instance's ID is stored: wait for the ID.
		var id string
		for deadline := time.Now().Add(time.Minute); id == "" && time.Now().Before(deadline); {
			recs, _ := h.store.List()
			for _, r := range recs {
				if r.ID == "r1.web" {
					id = r.InstanceID
				}
			}
			if id == "" {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if id == "" {
			t.Fatal("r1.web's record holds no instance ID after a minute")
		}
		h.restart(execs)
		want := "attach dep1/web /proc/" + id + "/ns/net"
		deadline := time.Now().Add(time.Minute)
		for subs.count(want) < 2 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if n := subs.count(want); n != 2 {
			t.Fatalf("events %v: want %q twice (the start, the re-attach)", subs.seen(), want)
		}
		if subs.count("drop dep1") != 0 {
			t.Errorf("the subnet was dropped by a restart: %v", subs.seen())
		}
	})
}

// TestNoBidWithoutSubnets: a provider that runs no subnets says why to a
// request that needs one; one that runs them bids (its offer lists the
// feature).
func TestNoBidWithoutSubnets(t *testing.T) {
	cases := []struct {
		name     string
		noSubnet string
		offered  []string
		want     string
	}{
		{"runs subnets", "", []string{"docker", deployproto.FeatureSubnet}, "bid"},
		{"runs none", "no /dev/net/tun", []string{"docker"}, deployproto.KindExecutor},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newProvWorld(t)
			w.prov.cfg.NoSubnet = tc.noSubnet
			m := w.ledger.Machine()
			m.Executors = tc.offered
			w.ledger.SetMachine(m)
			o := w.orchestrator()
			req := deployproto.BidRequest{Deployment: fmt.Sprintf("ds%d", i), Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
				Name: "job", Request: match.Request{Resources: cores(0.5), Executors: []string{"docker", deployproto.FeatureSubnet}},
			}}}
			var reply deployproto.BidReply
			if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorRequest, req, &reply); err != nil {
				t.Fatal(err)
			}
			if k := kinds([]deployproto.BidReply{reply}); k[0] != tc.want {
				t.Fatalf("reply %v (%v), want %s", k, reply.NoBids, tc.want)
			}
			if tc.noSubnet != "" && !strings.Contains(reply.NoBids[0].Reasons[0], "no subnet here: no /dev/net/tun") {
				t.Fatalf("reason %q does not say why", reply.NoBids[0].Reasons[0])
			}
		})
	}
}
