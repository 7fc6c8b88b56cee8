//go:build integration && linux

package node

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/store"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// Two nodes with the real data path (router, DNS, TUNs in network
// namespaces this test makes): a routing table from the orchestrator,
// an allocation's namespace on each, ping across; then one node's data
// path restarts, restores the stored table and re-attaches.

// withSubnets gives a test node a store and its data path.
func withSubnets(t *testing.T, n *testNode, db *store.DB, orch identity.DID) {
	t.Helper()
	n.db = db
	n.subnets, n.noSubnet = nil, ""
	stop := n.startSubnets()
	if n.subnets == nil {
		t.Fatalf("no subnets: %s", n.noSubnet)
	}
	n.subnets.orchestrators = func(string) []identity.DID { return []identity.DID{orch} }
	t.Cleanup(stop)
}

func pingFrom(t *testing.T, ns string, to netip.Addr) {
	t.Helper()
	var out []byte
	err := poll.Until(context.Background(), 20*time.Second, "a ping across the subnet", func(ctx context.Context) (bool, error) {
		var err error
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(ns), "ping", "-n", "-c", "1", "-W", "1", to.String()).CombinedOutput()
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
}

func TestSubnetTwoNodes(t *testing.T) {
	if why := subnetSupport(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("no ping")
	}
	for _, datagrams := range []bool{false, true} {
		t.Run(map[bool]string{false: "streams", true: "datagrams"}[datagrams], func(t *testing.T) {
			twoNodes(t, datagrams)
		})
	}
}

// twoNodes: a and b on two nodes ping each other across their subnet,
// over streams or (subnet.datagrams) UDP datagrams.
func twoNodes(t *testing.T, datagrams bool) {
	A, B := newTestNode(t, nil), newTestNode(t, nil)
	A.connect(t, B)
	A.cfg.Config.Subnet.Datagrams, B.cfg.Config.Subnet.Datagrams = datagrams, datagrams
	orch := mustKey(t)
	dbs := map[*testNode]*store.DB{}
	for _, n := range []*testNode{A, B} {
		db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[n] = db
		withSubnets(t, n, db, orch.DID())
	}
	block := netip.MustParsePrefix("10.77.0.0/24")
	a, b := netip.MustParsePrefix("10.77.0.2/24"), netip.MustParsePrefix("10.77.0.3/24")
	signed, err := subnet.Table{Deployment: "dep", Version: 1, Subnet: block, Routes: []subnet.Route{
		{Allocation: "a", Addr: a.Addr(), Peer: A.host.ID()},
		{Allocation: "b", Addr: b.Addr(), Peer: B.host.ID()},
	}}.Sign(orch)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{A, B} {
		w := &subnetWorld{s: n.subnets}
		if err := w.send(orch, "dep", signed); err != nil {
			t.Fatalf("table to %s: %v", n.host.ID(), err)
		}
	}
	nsA, nsB := subnettest.NewNetns(t), subnettest.NewNetns(t)
	attach := func(n *testNode, ns, alloc string, addr netip.Prefix) {
		t.Helper()
		sub, err := n.subnets.Join("dep", alloc, addr, ensemble.Docker)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.AttachNetns(context.Background(), ns); err != nil {
			t.Fatal(err)
		}
	}
	attach(A, nsA, "a", a)
	attach(B, nsB, "b", b)
	pingFrom(t, nsA, b.Addr())
	if datagrams {
		// The first packets take the stream while the datagram session
		// is set up in the background; then the pings go as datagrams.
		if err := poll.Until(t.Context(), 20*time.Second, "pings as datagrams", func(ctx context.Context) (bool, error) {
			pingFrom(t, nsA, b.Addr())
			return A.status().Subnet.Datagrams > 0, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if st := A.status().Subnet; st == nil || st.Forwarded == 0 || st.Attached != 1 || st.Deployments != 1 {
		t.Errorf("A's status after the ping: %+v, want packets forwarded, one attached, one deployment", st)
	} else if (st.Datagrams > 0) != datagrams {
		t.Errorf("A's status after the ping: %d of %d packets as datagrams, want datagrams %v", st.Datagrams, st.Forwarded, datagrams)
	}
	// B's data path restarts (the node restarted): the table comes back
	// from the store, b is attached again, the ping goes through again.
	// With datagrams, A's session points at a socket that is gone: A's
	// probes go unanswered, its packets take the stream, and a fresh
	// session is set up.
	if err := B.subnets.close(); err != nil {
		t.Fatal(err)
	}
	withSubnets(t, B, dbs[B], orch.DID())
	// As at a start with b's allocation in the store.
	if err := B.subnets.load(map[string][]identity.DID{"dep": {orch.DID()}}); err != nil {
		t.Fatal(err)
	}
	if st := B.subnets.status(); st.Deployments != 1 {
		t.Fatalf("B's table was not restored from the store: %+v", st)
	}
	attach(B, nsB, "b", b)
	pingFrom(t, nsA, b.Addr())
	if datagrams {
		// then a ping is answered with its request sent as a datagram
		if err := poll.Until(t.Context(), 20*time.Second, "a ping as a datagram after the restart", func(ctx context.Context) (bool, error) {
			before := A.status().Subnet.Datagrams
			err := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(nsA), "ping", "-n", "-c", "1", "-W", "1", b.Addr().String()).Run()
			return err == nil && A.status().Subnet.Datagrams > before, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
