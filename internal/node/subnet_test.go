package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
	"github.com/dmsnet/dms/internal/subnet"
)

// fakePath is a dataPath that records what the node asks of it, with the
// router's rules for versions and attachments.
type fakePath struct {
	mu       sync.Mutex
	tables   map[string]*subnet.Table
	attached map[string]subnet.Device // "deployment/allocation"
	removed  []string
	closed   bool
}

func newFakePath() *fakePath {
	return &fakePath{tables: map[string]*subnet.Table{}, attached: map[string]subnet.Device{}}
}

func (p *fakePath) SetTable(t *subnet.Table) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.tables[t.Deployment]; cur != nil && cur.Version >= t.Version {
		return false
	}
	p.tables[t.Deployment] = t
	return true
}

func (p *fakePath) Attach(dep, alloc string, dev subnet.Device) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tables[dep]
	if t == nil {
		return errors.New("no table")
	}
	if _, ok := t.Names()[alloc]; !ok {
		return errors.New("no route")
	}
	if old := p.attached[dep+"/"+alloc]; old != nil {
		old.Close()
	}
	p.attached[dep+"/"+alloc] = dev
	return nil
}

func (p *fakePath) Detach(dep, alloc string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.attached[dep+"/"+alloc]; d != nil {
		d.Close()
		delete(p.attached, dep+"/"+alloc)
	}
}

func (p *fakePath) Remove(dep string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tables, dep)
	for k, d := range p.attached {
		if strings.HasPrefix(k, dep+"/") {
			d.Close()
			delete(p.attached, k)
		}
	}
	p.removed = append(p.removed, dep)
}

func (p *fakePath) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

func (p *fakePath) version(dep string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tables[dep]; t != nil {
		return t.Version
	}
	return 0
}

// fakeDev is a subnet.Device that only knows whether it was closed.
type fakeDev struct {
	mu     sync.Mutex
	closed bool
}

func (d *fakeDev) Read([][]byte, []int, int) (int, error) { return 0, errors.New("fake") }
func (d *fakeDev) Write(b [][]byte, _ int) (int, error)   { return len(b), nil }
func (d *fakeDev) BatchSize() int                         { return 1 }
func (d *fakeDev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeDev) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

type subnetWorld struct {
	s     *subnets
	path  *fakePath
	db    *store.DB
	orch  *identity.Key
	peers []string
	devs  []*fakeDev
	// allocs: deployment → orchestrators of its allocations here.
	allocs map[string][]identity.DID
}

func newSubnetWorld(t *testing.T) *subnetWorld {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &subnetWorld{path: newFakePath(), db: db, orch: mustKey(t), allocs: map[string][]identity.DID{}}
	for range 2 {
		id, err := mustKey(t).DID().PeerID()
		if err != nil {
			t.Fatal(err)
		}
		w.peers = append(w.peers, id)
	}
	open := func(netns, name string, addr netip.Prefix) (subnet.Device, error) {
		if netns == "/proc/0/ns/net" {
			return nil, errors.New("no such namespace")
		}
		d := &fakeDev{}
		w.devs = append(w.devs, d)
		return d, nil
	}
	w.s = newSubnets(slog.New(slog.DiscardHandler), db, w.path, nil, open)
	w.s.orchestrators = func(dep string) []identity.DID { return w.allocs[dep] }
	return w
}

// table signs a table of deployment dep at version with key.
func (w *subnetWorld) table(t *testing.T, key *identity.Key, dep string, version uint64) subnet.SignedTable {
	t.Helper()
	tb := subnet.Table{Deployment: dep, Version: version, Subnet: netip.MustParsePrefix("10.77.0.0/24"), Routes: []subnet.Route{
		{Allocation: "db", Addr: netip.MustParseAddr("10.77.0.2"), Peer: w.peers[0]},
		{Allocation: "web", Addr: netip.MustParseAddr("10.77.0.3"), Peer: w.peers[1]},
	}}
	s, err := tb.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *subnetWorld) send(from *identity.Key, dep string, st subnet.SignedTable) error {
	payload, _ := json.Marshal(deployproto.SubnetUpdate{Deployment: dep, Table: st})
	m := &actor.Message{From: actor.Handle{DID: from.DID()}, Behavior: deployproto.BehaviorSubnet, Payload: payload}
	_, err := w.s.update(context.Background(), m)
	return err
}

func (w *subnetWorld) stored(t *testing.T) []string {
	t.Helper()
	var recs []subnetRecord
	if err := w.db.View(func(tx *store.Tx) (err error) {
		recs, err = subnetKind.List(tx, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Deployment)
	}
	return out
}

func TestSubnetUpdate(t *testing.T) {
	stranger := mustKey(t)
	tests := []struct {
		name    string
		setup   func(w *subnetWorld)
		from    func(w *subnetWorld) *identity.Key
		signer  func(w *subnetWorld) *identity.Key
		dep     string
		tableOf string // the deployment the table names (default dep)
		version uint64
		wantErr string
		want    uint64 // the version installed afterwards
	}{
		{name: "from the committing orchestrator", dep: "d1", version: 1, want: 1},
		{name: "a newer version replaces", dep: "d1", version: 3,
			setup: func(w *subnetWorld) { w.path.SetTable(&subnet.Table{Deployment: "d1", Version: 2}) }, want: 3},
		{name: "an older version changes nothing", dep: "d1", version: 1,
			setup: func(w *subnetWorld) { w.path.SetTable(&subnet.Table{Deployment: "d1", Version: 2}) }, want: 2},
		{name: "no allocation here", dep: "d2", version: 1, wantErr: "no allocation of the deployment on this node"},
		{name: "sent by another actor", dep: "d1", version: 1, from: func(*subnetWorld) *identity.Key { return stranger },
			wantErr: "only its orchestrator may send it"},
		{name: "signed by another key", dep: "d1", version: 1, signer: func(*subnetWorld) *identity.Key { return stranger },
			wantErr: "not the deployment's orchestrator"},
		{name: "a table of another deployment", dep: "d1", tableOf: "d3", version: 1, wantErr: "names deployment d3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSubnetWorld(t)
			w.allocs["d1"] = []identity.DID{w.orch.DID()}
			if tt.setup != nil {
				tt.setup(w)
			}
			from, signer := w.orch, w.orch
			if tt.from != nil {
				from = tt.from(w)
			}
			if tt.signer != nil {
				signer = tt.signer(w)
			}
			of := tt.dep
			if tt.tableOf != "" {
				of = tt.tableOf
			}
			err := w.send(from, tt.dep, w.table(t, signer, of, tt.version))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("update = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("update = %v, want an error saying %q", err, tt.wantErr)
			}
			if got := w.path.version(tt.dep); got != tt.want {
				t.Errorf("installed version = %d, want %d", got, tt.want)
			}
			if stored := w.stored(t); (tt.wantErr == "" && tt.want == tt.version) != slices.Contains(stored, tt.dep) {
				t.Errorf("stored tables = %v after %q", stored, tt.name)
			}
		})
	}
}

func TestSubnetRestore(t *testing.T) {
	w := newSubnetWorld(t)
	w.allocs["d1"] = []identity.DID{w.orch.DID()}
	w.allocs["d2"] = []identity.DID{w.orch.DID()}
	for _, dep := range []string{"d1", "d2"} {
		if err := w.send(w.orch, dep, w.table(t, w.orch, dep, 4)); err != nil {
			t.Fatal(err)
		}
	}
	// A restart: a new data path, the store kept. d1 still has its
	// allocation; d2's ended; d3 has one, but its orchestrator changed
	// (the stored table no longer verifies).
	other := mustKey(t)
	if err := w.db.Update(func(tx *store.Tx) error {
		return subnetKind.Put(tx, subnetRecord{Deployment: "d3", Table: w.table(t, other, "d3", 1)})
	}); err != nil {
		t.Fatal(err)
	}
	restarted := newFakePath()
	s := newSubnets(slog.New(slog.DiscardHandler), w.db, restarted, nil, nil)
	if err := s.load(map[string][]identity.DID{"d1": {w.orch.DID()}, "d3": {w.orch.DID()}}); err != nil {
		t.Fatal(err)
	}
	if v := restarted.version("d1"); v != 4 {
		t.Errorf("d1's table after the restart: version %d, want 4", v)
	}
	for _, dep := range []string{"d2", "d3"} {
		if v := restarted.version(dep); v != 0 {
			t.Errorf("%s's table installed after the restart (version %d), want none", dep, v)
		}
	}
	if got := w.stored(t); !slices.Equal(got, []string{"d1"}) {
		t.Errorf("stored tables after the restart = %v, want [d1]", got)
	}
	if st := s.status(); st.Deployments != 1 {
		t.Errorf("status: %d deployments, want 1", st.Deployments)
	}
}

func TestSubnetJoinLeaveDrop(t *testing.T) {
	w := newSubnetWorld(t)
	w.allocs["d1"] = []identity.DID{w.orch.DID()}
	if err := w.send(w.orch, "d1", w.table(t, w.orch, "d1", 1)); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParsePrefix("10.77.0.2/24")
	sub, err := w.s.Join("d1", "db", addr, ensemble.Docker)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Addr != addr || sub.DNS != netip.MustParseAddr("10.77.0.1") || sub.AttachNetns == nil || sub.OpenGuest != nil {
		t.Fatalf("Join = %+v, want the address, the gateway as DNS and AttachNetns only", sub)
	}
	if err := sub.AttachNetns(context.Background(), "/proc/0/ns/net"); err == nil {
		t.Fatal("AttachNetns in a namespace that does not exist succeeded")
	}
	if err := sub.AttachNetns(context.Background(), "/proc/1/ns/net"); err != nil {
		t.Fatal(err)
	}
	if st := w.s.status(); st.Attached != 1 || st.Deployments != 1 {
		t.Errorf("status after the attach: %+v", st)
	}
	// An allocation without a route: the interface is closed again.
	other, err := w.s.Join("d1", "cache", netip.MustParsePrefix("10.77.0.9/24"), ensemble.Docker)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.AttachNetns(context.Background(), "/proc/1/ns/net"); err == nil || !w.devs[len(w.devs)-1].isClosed() {
		t.Fatalf("attach without a route = %v (device closed: %v), want an error and the device closed", err, w.devs[len(w.devs)-1].isClosed())
	}
	w.s.Leave("d1", "db")
	if !w.devs[0].isClosed() {
		t.Error("the interface is open after Leave")
	}
	if _, err := w.s.Join("d1", "vm1", addr, ensemble.VM); err == nil || !strings.Contains(err.Error(), "vm guests cannot join a subnet on this node") {
		t.Errorf("Join of a vm without guest links = %v, want a refusal", err)
	}
	// A vm guest: QEMU gets one end, the data path the device.
	w.s.openGuest = func(a netip.Prefix, gw netip.Addr) (*os.File, subnet.Device, error) {
		if a != addr || gw != netip.MustParseAddr("10.77.0.1") {
			return nil, nil, fmt.Errorf("openGuest(%s, %s)", a, gw)
		}
		d := &fakeDev{}
		w.devs = append(w.devs, d)
		f, err := os.Open(os.DevNull) // QEMU's end
		return f, d, err
	}
	vm, err := w.s.Join("d1", "db", addr, ensemble.VM)
	if err != nil || vm.OpenGuest == nil || vm.AttachNetns != nil {
		t.Fatalf("Join of a vm = %+v, %v; want OpenGuest only", vm, err)
	}
	f, err := vm.OpenGuest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st := w.s.status(); st.Attached != 1 {
		t.Errorf("status after the guest joined: %+v", st)
	}
	w.s.Leave("d1", "db")
	if !w.devs[len(w.devs)-1].isClosed() {
		t.Error("the guest's device is open after Leave")
	}
	if _, err := w.s.Join("d1", "w", addr, ensemble.Wasm); err == nil {
		t.Error("Join of a wasm allocation succeeded")
	}
	w.s.Drop("d1")
	if !slices.Equal(w.path.removed, []string{"d1"}) || len(w.stored(t)) != 0 {
		t.Errorf("after Drop: removed %v, stored %v; want [d1] and nothing", w.path.removed, w.stored(t))
	}
	if st := w.s.status(); st.Deployments != 0 || st.Attached != 0 {
		t.Errorf("status after Drop: %+v", st)
	}
}
