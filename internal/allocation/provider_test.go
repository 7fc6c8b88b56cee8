package allocation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/executortest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/storage"
)

// clock is a settable clock for reservation expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// provWorld is one provider (a real Ledger onboarded with 8 cores and
// 16 GiB, a Manager, the Provider on its root actor) and orchestrators on
// other hosts of an in-memory network.
type provWorld struct {
	t      *testing.T
	net    *actor.MemNetwork
	clock  *clock
	ledger *resource.Ledger
	prov   *Provider
	root   actor.Handle
	store  *MemStore
	key    *identity.Key // the provider node's
}

const provTTL = 30 * time.Second

func newProvWorld(t *testing.T, opts ...func(*ProviderConfig)) *provWorld {
	t.Helper()
	w := &provWorld{t: t, net: actor.NewMemNetwork(), clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, store: NewMemStore()}
	key := mustKey(t)
	sys := newSystem(t, w.net, key)
	root, err := sys.Spawn(key, actor.RootInbox, actor.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.root = root.Handle()
	mach := resource.Machine{Executors: []string{"docker"}}
	mach.CPU.Threads = 8
	mach.RAM.Total = 16 << 30
	mach.Disk.Free = 16 << 30
	w.ledger, err = resource.NewLedger(resource.LedgerConfig{Machine: mach, Now: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cpu, ram, disk := match.MilliCPU(8000), match.Bytes(16<<30), match.Bytes(10<<30)
	if _, err := w.ledger.Onboard(resource.OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk}); err != nil {
		t.Fatal(err)
	}
	sealer, err := identity.NewSealer(key, "child-keys")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{
		System: sys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Docker: executortest.New(executortest.Config{})},
		Store: w.store, Ledger: w.ledger, Wallet: &fakeWallet{}, Sealer: sealer, DataDir: t.TempDir() + "/allocations",
	})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := ProviderConfig{Node: root, Key: key, Ledger: w.ledger, Allocations: m, ReservationTTL: provTTL, Now: w.clock.Now}
	for _, o := range opts {
		o(&pcfg)
	}
	w.key = key
	w.prov = NewProvider(pcfg)
	if err := w.prov.Register(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close(context.Background())
		sys.Close(context.Background())
	})
	return w
}

// orchestrator returns an orchestrator's actor on a host of its own.
func (w *provWorld) orchestrator() *actor.Actor {
	w.t.Helper()
	key := mustKey(w.t)
	a, err := newSystem(w.t, w.net, key).Spawn(key, actor.RootInbox, actor.SpawnOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

// bid sends o's bid request for one node of deployment dep wanting want.
func (w *provWorld) bid(o *actor.Actor, dep string, want match.Resources) deployproto.BidReply {
	w.t.Helper()
	req := deployproto.BidRequest{Deployment: dep, Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
		Name: "job", Request: match.Request{Resources: want, Executors: []string{"docker"}},
	}}}
	var reply deployproto.BidReply
	if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorRequest, req, &reply); err != nil {
		w.t.Fatalf("bid request %s: %v", dep, err)
	}
	return reply
}

func cores(n float64) match.Resources {
	return match.Resources{CPU: match.MilliCPU(n * 1000), RAM: 64 << 20}
}

// kinds summarizes replies: "bid" or the NoBid kinds.
func kinds(rs []deployproto.BidReply) []string {
	var out []string
	for _, r := range rs {
		switch {
		case r.Bid != nil:
			out = append(out, "bid")
		case len(r.NoBids) > 0:
			out = append(out, r.NoBids[0].Kind)
		default:
			out = append(out, "none")
		}
	}
	return out
}

// TestReservationsBoundedPerPeer: one trusted orchestrator sending many
// bid requests (each a new deployment) cannot hold all of a provider's
// free resources with reservations; another orchestrator still gets a bid.
// (Defect 1 of issue 12: every request was reserved until the resources
// ran out.)
func TestReservationsBoundedPerPeer(t *testing.T) {
	tests := []struct {
		name     string
		each     match.Resources // what each of the greedy orchestrator's requests asks
		requests int
		wantBids int             // of the greedy orchestrator's requests
		refusal  string          // the kind of the refusals; default peer-limit
		wantWhy  string          // in the refusals
		other    match.Resources // what the second orchestrator asks afterwards
	}{
		{name: "share of the cpu", each: cores(1), requests: 8, wantBids: 4, wantWhy: "50% of the onboarded cpu", other: cores(4)},
		{name: "number of reservations", each: cores(0.1), requests: 12, wantBids: 8, wantWhy: "holds 8 live reservations", other: cores(7)},
		{name: "one large job may take all", each: cores(8), requests: 3, wantBids: 1, refusal: deployproto.KindResource, wantWhy: "cpu: need 8, have 0 free"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newProvWorld(t)
			greedy := w.orchestrator()
			var replies []deployproto.BidReply
			for i := range tc.requests {
				replies = append(replies, w.bid(greedy, fmt.Sprintf("d%d", i), tc.each))
			}
			got := kinds(replies)
			refusal := cmp.Or(tc.refusal, deployproto.KindPeerLimit)
			bids := 0
			for i, k := range got {
				switch {
				case k == "bid":
					bids++
				case k != refusal:
					t.Errorf("request %d: no-bid of kind %q (%v), want %q", i, k, replies[i].NoBids, refusal)
				case !strings.Contains(strings.Join(replies[i].NoBids[0].Reasons, "; "), tc.wantWhy):
					t.Errorf("request %d: reasons %q, want them to say %q", i, replies[i].NoBids[0].Reasons, tc.wantWhy)
				}
			}
			if bids != tc.wantBids {
				t.Fatalf("greedy orchestrator got %d bids of %d requests (%v), want %d", bids, tc.requests, got, tc.wantBids)
			}
			if tc.other.CPU == 0 {
				return
			}
			if r := w.bid(w.orchestrator(), "other", tc.other); r.Bid == nil {
				t.Errorf("second orchestrator asking %s cpu: no bid (%v); free %s", tc.other.CPU, r.NoBids, w.ledger.Free().CPU)
			}
		})
	}
}

// TestReservationBookkeepingForgets: a reservation stops counting against
// its peer once it expires, is committed or is reverted, and the
// provider's notes of reservations do not grow past the live ones.
func TestReservationBookkeepingForgets(t *testing.T) {
	tests := []struct {
		name string
		end  func(w *provWorld, o *actor.Actor, dep, reservation string) error
	}{
		{name: "expired", end: func(w *provWorld, o *actor.Actor, dep, res string) error {
			w.clock.advance(provTTL)
			return nil
		}},
		{name: "reverted", end: func(w *provWorld, o *actor.Actor, dep, res string) error {
			return o.Invoke(context.Background(), w.root, deployproto.BehaviorRevert, deployproto.RevertRequest{Deployment: dep, Reservation: res}, nil)
		}},
		{name: "committed", end: func(w *provWorld, o *actor.Actor, dep, res string) error {
			spec := task("print=x")
			spec.Resources = cores(1)
			return o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
				Deployment: dep, Node: "job", Reservation: res, Orchestrator: o.Handle(),
				Allocations: []deployproto.AllocationSpec{spec}}, &deployproto.CommitReply{})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newProvWorld(t)
			o := w.orchestrator()
			for i := range 4 {
				if r := w.bid(o, fmt.Sprintf("d%d", i), cores(1)); r.Bid == nil {
					t.Fatalf("bid %d: %v", i, r.NoBids)
				}
			}
			if r := w.bid(o, "d4", cores(1)); r.Bid != nil {
				t.Fatal("a fifth reservation of 1 core of 8 was granted over the 50% share")
			}
			if err := tc.end(w, o, "d0", "d0.1"); err != nil {
				t.Fatal(err)
			}
			if r := w.bid(o, "d5", cores(1)); r.Bid == nil {
				t.Fatalf("after d0.1 %s: no bid (%v), want one", tc.name, r.NoBids)
			}
			w.prov.mu.Lock()
			n := len(w.prov.live)
			w.prov.mu.Unlock()
			want := 4
			if tc.name == "expired" {
				want = 1 // all four expired together
			}
			if n != want {
				t.Errorf("provider notes %d reservations, want %d live", n, want)
			}
		})
	}
}

// TestCommitNamesItsSender: a commit that names another actor as the
// orchestrator is refused (its allocations would report to, and be owned
// by, someone else).
func TestCommitNamesItsSender(t *testing.T) {
	w := newProvWorld(t)
	o, other := w.orchestrator(), w.orchestrator()
	if r := w.bid(o, "d0", cores(1)); r.Bid == nil {
		t.Fatalf("bid: %v", r.NoBids)
	}
	spec := task("print=x")
	spec.Resources = cores(1)
	err := o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
		Deployment: "d0", Node: "job", Reservation: "d0.1", Orchestrator: other.Handle(),
		Allocations: []deployproto.AllocationSpec{spec}}, &deployproto.CommitReply{})
	var ae *actor.Error
	if !errors.As(err, &ae) || ae.Code != actor.CodeDenied {
		t.Fatalf("commit naming another orchestrator = %v, want denied", err)
	}
}

// TestCommitGivesEpochAndStopAfter: the commit's fencing epoch and
// StopAfter reach the allocations it creates.
func TestCommitGivesEpochAndStopAfter(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	if r := w.bid(o, "d0", cores(1)); r.Bid == nil {
		t.Fatalf("bid: %v", r.NoBids)
	}
	spec := task("print=x")
	spec.Resources = cores(1)
	var reply deployproto.CommitReply
	if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, deployproto.CommitRequest{
		Deployment: "d0", Node: "job", Reservation: "d0.1", Orchestrator: o.Handle(),
		Allocations: []deployproto.AllocationSpec{spec}, Epoch: 3, StopAfter: 40 * time.Second}, &reply); err != nil {
		t.Fatal(err)
	}
	var st deployproto.Report
	if err := o.Invoke(context.Background(), reply.Allocations["job"], deployproto.BehaviorStatus, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 3 {
		t.Errorf("reported epoch %d, want 3", st.Epoch)
	}
	recs, err := w.store.List()
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v, %v", recs, err)
	}
	if recs[0].Epoch != 3 || recs[0].StopAfter != 40*time.Second {
		t.Errorf("record: epoch %d, StopAfter %s; want 3, 40s", recs[0].Epoch, recs[0].StopAfter)
	}
}

// A bid request that reaches the provider twice (a pinned node's round
// sends it by broadcast and to the pinned peer directly) gets the same
// bid twice: one reservation, not a peer-limit refusal whose reply could
// win the race and leave the reservation unreverted until it expires.
func TestRepeatedBidRequestIsIdempotent(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	first := w.bid(o, "d1", cores(3)) // over half the cpu: a second reservation would be over the share
	again := w.bid(o, "d1", cores(3))
	if k := kinds([]deployproto.BidReply{first, again}); k[0] != "bid" || k[1] != "bid" {
		t.Fatalf("replies %v (%v), want two bids", k, again.NoBids)
	}
	b1, err := first.Bid.Open()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := again.Bid.Open()
	if err != nil {
		t.Fatal(err)
	}
	if b1.Reservation != b2.Reservation || !b1.Expires.Equal(b2.Expires) {
		t.Fatalf("reservations %s (until %s) and %s (until %s), want the same", b1.Reservation, b1.Expires, b2.Reservation, b2.Expires)
	}
	// Another deployment is still bounded by the share.
	if k := kinds([]deployproto.BidReply{w.bid(o, "d2", cores(3))}); k[0] != deployproto.KindPeerLimit {
		t.Fatalf("a second deployment got %v, want %s", k, deployproto.KindPeerLimit)
	}
}

// TestNoBidWithoutOperatorCredentials: a node whose volumes name operator
// credentials gets a bid only from a provider that has them all.
func TestNoBidWithoutOperatorCredentials(t *testing.T) {
	w := newProvWorld(t)
	w.prov.cfg.Allocations.cfg.Credentials = map[string]storage.Credentials{"lab": {AccessKeyID: "a", SecretAccessKey: "s"}}
	o := w.orchestrator()
	cases := []struct {
		name  string
		creds []string
		want  string
	}{
		{"none asked", nil, "bid"},
		{"has it", []string{"lab"}, "bid"},
		{"lacks one", []string{"lab", "scratch"}, deployproto.KindStorage},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := deployproto.BidRequest{Deployment: fmt.Sprintf("dc%d", i), Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
				Name: "job", Request: match.Request{Resources: cores(0.5), Executors: []string{"docker"}}, Credentials: tc.creds,
			}}}
			var reply deployproto.BidReply
			if err := o.Invoke(context.Background(), w.root, deployproto.BehaviorRequest, req, &reply); err != nil {
				t.Fatal(err)
			}
			if k := kinds([]deployproto.BidReply{reply}); k[0] != tc.want {
				t.Fatalf("reply %v (%v), want %s", k, reply.NoBids, tc.want)
			}
			if tc.want == deployproto.KindStorage && !strings.Contains(reply.NoBids[0].Reasons[0], `"scratch"`) {
				t.Fatalf("reason %q does not name the missing credentials", reply.NoBids[0].Reasons[0])
			}
		})
	}
}
