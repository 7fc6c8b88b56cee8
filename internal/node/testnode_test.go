package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
)

// testNode is a node's network core (caps, libp2p on 127.0.0.1, actors,
// the root actor's behaviors) in the test process, with its owner's key.
type testNode struct {
	*Node
	user *identity.Key
}

func newTestNode(t testing.TB, mod func(*config.Config)) *testNode {
	t.Helper()
	key, user := mustKey(t), mustKey(t)
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	if mod != nil {
		mod(&cfg)
	}
	n := &Node{
		cfg:     Config{Config: cfg, Key: key, UserDID: user.DID(), Version: "test", Logger: slog.New(slog.DiscardHandler)},
		log:     slog.New(slog.DiscardHandler),
		started: time.Now(),
		wallet:  newWallet(),
	}
	if err := n.startCaps(); err != nil {
		t.Fatal(err)
	}
	stop, err := n.startNetwork(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	return &testNode{Node: n, user: user}
}

// connect dials other from n.
func (n *testNode) connect(t testing.TB, other *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.host.Connect(ctx, other.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
}

func mustKey(t testing.TB) *identity.Key {
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
