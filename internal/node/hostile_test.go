package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/p2p"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/store"
)

// Fixtures of the hostile-peer tests: an attacker that is a bare libp2p
// host speaking the wire protocol directly, and a provider node with
// onboarded resources that bids for deployments.

// attacker is a bare libp2p host with its own key. It collects the
// replies that reach it (on links it dialed or that peers dialed to answer
// its broadcasts) and the frames published on the topics it subscribed.
type attacker struct {
	host    *p2p.Host
	key     *identity.Key
	replies chan *actor.Reply
	frames  chan []byte
}

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	key := mustKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, err := p2p.New(ctx, p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	m := &attacker{host: host, key: key, replies: make(chan *actor.Reply, 64), frames: make(chan []byte, 64)}
	host.SetLinkHandler(func(l actor.Link) { go m.read(l) })
	return m
}

// read collects the replies arriving on l until it closes.
func (m *attacker) read(l actor.Link) {
	m.readUntil(l, nil)
}

// readUntil is read, closing done (if not nil) when l is closed.
func (m *attacker) readUntil(l actor.Link, done chan struct{}) {
	if done != nil {
		defer close(done)
	}
	for {
		f, err := l.Recv()
		if err != nil {
			return
		}
		_, replies, _ := actor.DecodeFrame(f)
		for _, r := range replies {
			select {
			case m.replies <- r:
			default:
			}
		}
	}
}

func (m *attacker) connect(t *testing.T, nodes ...*testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if _, err := m.host.Connect(ctx, n.host.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
}

// subscribe captures the frames published on topic.
func (m *attacker) subscribe(t *testing.T, topic string) {
	t.Helper()
	cancel, err := m.host.Subscribe(topic, func(_ string, frame []byte) {
		select {
		case m.frames <- frame:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
}

// link opens a link to n and reads its replies; closed is closed when the
// link is.
func (m *attacker) link(t *testing.T, n *testNode) (l actor.Link, closed <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := m.host.Link(ctx, n.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go m.readUntil(l, done)
	return l, done
}

// reply waits for the next reply.
func (m *attacker) reply(t *testing.T) *actor.Reply {
	t.Helper()
	select {
	case r := <-m.replies:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no reply within 20s")
		return nil
	}
}

// frame waits for the next captured frame.
func (m *attacker) frame(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-m.frames:
		return f
	case <-time.After(20 * time.Second):
		t.Fatal("nothing captured within 20s")
		return nil
	}
}

// publish publishes env on its topic, as the attacker's host.
func (m *attacker) publish(t *testing.T, env *actor.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.host.Publish(ctx, env.Topic, actor.EncodeEnvelope(env)); err != nil {
		t.Fatal(err)
	}
}

// newProvider returns a node with 1 CPU, 256 MiB and 512 MiB of disk
// onboarded that bids for deployments (allocation.Provider on its root
// actor), and trusts its user for /dms.
func newProvider(t *testing.T) *testNode {
	t.Helper()
	p := newTestNode(t, nil)
	t.Cleanup(withResources(t, p.Node, t.TempDir()))
	cpu, ram, disk := api.Amount("1"), api.Amount("256MiB"), api.Amount("512MiB")
	if _, err := (resourceService{p.Node}).Onboard(context.Background(), api.OnboardRequest{CPU: &cpu, RAM: &ram, Disk: &disk}); err != nil {
		t.Fatal(err)
	}
	prov := allocation.NewProvider(allocation.ProviderConfig{Node: p.root, Key: p.cfg.Key, Ledger: p.resources, ReservationTTL: time.Minute})
	if err := prov.Register(); err != nil {
		t.Fatal(err)
	}
	return p
}

// spawnOrchestrator starts an orchestrator actor on n whose authority for
// /dms/deployment is a delegation from root (the user who deploys).
func spawnOrchestrator(t *testing.T, n *testNode, root *identity.Key, inbox string) *actor.Actor {
	t.Helper()
	key := mustKey(t)
	d, err := cap.Delegate(root, cap.DelegationParams{Audience: key.DID(), Command: deployproto.CmdDeployment, Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	n.wallet.Add(cap.Chain{d})
	a, err := n.sys.Spawn(key, inbox, actor.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bidRequest asks for one node of the given size.
func bidRequest(deployment string, orch actor.Handle, want match.Resources) deployproto.BidRequest {
	return deployproto.BidRequest{Deployment: deployment, Orchestrator: orch, Round: 1,
		Nodes: []deployproto.NodeRequest{{Name: "n1", Request: match.Request{Resources: want}}}}
}

// wantRefused checks that r refuses with code (and, if given, the cap
// rule).
func wantRefused(t *testing.T, r *actor.Reply, code actor.Code, rule cap.Rule) {
	t.Helper()
	if r.Err == nil || r.Err.Code != code || rule != "" && !hasRule(r.Err.Msg, rule) {
		t.Fatalf("reply = %+v (payload %s), want refused %s %s", r.Err, r.Payload, code, rule)
	}
}

// wantFree checks that the provider's free resources are still want.
func wantFree(t *testing.T, p *testNode, want match.Resources) {
	t.Helper()
	if got := p.resources.Free(); !reflect.DeepEqual(got, want) {
		t.Fatalf("provider free = %+v, want %+v (a reservation was made)", got, want)
	}
}

// storedNode is a test node on a home with a store (capability state and
// everything else the node keeps there), so that it can be restarted.
type storedNode struct {
	*testNode
	home string
}

// startStored starts a node with key and user on home's store; stop stops
// it as the daemon does: network first, store last.
func startStored(t testing.TB, home string, key, user *identity.Key, mod ...func(*config.Config)) (n *storedNode, stop func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(home, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	for _, m := range mod {
		m(&cfg)
	}
	node := &Node{
		cfg:     Config{Home: home, Config: cfg, Key: key, UserDID: user.DID(), Version: "test", Logger: slog.New(slog.DiscardHandler)},
		log:     slog.New(slog.DiscardHandler),
		started: time.Now(),
		wallet:  newWallet(),
	}
	db, err := store.Open(filepath.Join(home, StoreFile), store.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	node.db = db
	if err := node.startCaps(); err != nil {
		db.Close()
		t.Fatal(err)
	}
	stopNet, err := node.startNetwork(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		if err := stopNet(); err != nil {
			t.Errorf("stop network: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(stop)
	return &storedNode{testNode: &testNode{Node: node, user: user}, home: home}, stop
}

// eventually is poll.Eventually with the tests' deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Eventually(t, 20*time.Second, what, cond)
}
