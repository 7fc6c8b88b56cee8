package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
	"github.com/dmsnet/dms/internal/subnet"
)

// The provider side of the deployments' private subnets (issue 16): the
// data path (subnet/router) runs on the node's libp2p host; each
// deployment's routing table comes from its orchestrator
// (deployproto.BehaviorSubnet), is checked against the orchestrator that
// committed the deployment's allocations here, installed and kept in the
// store, so that a restarted node installs it again before it re-attaches
// to the running containers; each docker allocation with a subnet address
// gets a TUN in its network namespace (subnet/link) joined to the data
// path.

// subnetKind keeps the latest routing table of each deployment with
// allocations here, signed by its orchestrator.
var subnetKind = store.NewKind("subnet-tables", func(r subnetRecord) string { return r.Deployment })

type subnetRecord struct {
	Deployment string             `json:"deployment"`
	Table      subnet.SignedTable `json:"table"`
}

// dataPath is what the node needs of the subnet data path
// (*router.Router).
type dataPath interface {
	SetTable(t *subnet.Table) bool
	Attach(deployment, allocation string, dev subnet.Device) error
	Detach(deployment, allocation string)
	Remove(deployment string)
	Close() error
}

// pathStats are the data path's counters (router.Stats).
type pathStats struct {
	Forwarded, Datagrams, Delivered uint64
	Sessions, Fallbacks, ReadErrors uint64
	Dropped                         map[string]uint64
	// DNS are the subnet resolver's counters (dns.Stats).
	DNS struct{ Local, Forwarded, Failed, Dropped uint64 }
}

// subnets is the node's side of the subnets: allocation.Subnets for the
// allocations, the BehaviorSubnet handler, the stored tables.
type subnets struct {
	log   *slog.Logger
	db    *store.DB
	path  dataPath
	stats func() pathStats
	// openTUN creates the allocation's interface in a network namespace
	// (link.OpenTUN).
	openTUN func(netns, name string, addr netip.Prefix) (subnet.Device, error)
	// openGuest makes a VM guest's link: the file QEMU's virtio-net
	// device uses and the device the data path reads (link.GuestPair);
	// nil when this node cannot.
	openGuest func(addr netip.Prefix, gateway netip.Addr) (*os.File, subnet.Device, error)
	// orchestrators returns the orchestrators of the deployment's
	// allocations here (allocation.Manager.Orchestrators).
	orchestrators func(deployment string) []identity.DID

	mu       sync.Mutex
	versions map[string]uint64 // guarded by mu: the version of each deployment's table installed
	attached map[string]bool   // guarded by mu: "deployment/allocation" attached
}

var _ allocation.Subnets = (*subnets)(nil)

func newSubnets(log *slog.Logger, db *store.DB, path dataPath, stats func() pathStats,
	openTUN func(string, string, netip.Prefix) (subnet.Device, error)) *subnets {
	return &subnets{log: log.With("component", "subnet"), db: db, path: path, stats: stats, openTUN: openTUN,
		versions: map[string]uint64{}, attached: map[string]bool{}}
}

// Join implements allocation.Subnets: a docker container gets a TUN in
// its namespace, a vm guest a socket to its virtio-net device, each
// joined to the data path.
func (s *subnets) Join(deployment, alloc string, addr netip.Prefix, kind ensemble.Executor) (*executor.Subnet, error) {
	sub := &executor.Subnet{Addr: addr, DNS: subnet.Gateway(addr.Masked())}
	switch kind {
	case ensemble.Docker:
		sub.AttachNetns = func(ctx context.Context, netns string) error {
			return s.attach(deployment, alloc, netns, addr)
		}
	case ensemble.VM:
		if s.openGuest == nil {
			return nil, errors.New("vm guests cannot join a subnet on this node")
		}
		sub.OpenGuest = func(ctx context.Context) (*os.File, error) {
			return s.attachGuest(deployment, alloc, addr)
		}
	default:
		return nil, fmt.Errorf("the %s executor cannot join a subnet", kind)
	}
	return sub, nil
}

// attach creates the allocation's interface in netns and joins it to the
// data path.
func (s *subnets) attach(deployment, alloc, netns string, addr netip.Prefix) error {
	dev, err := s.openTUN(netns, executor.SubnetInterface, addr)
	if err != nil {
		return fmt.Errorf("subnet interface of %s: %w", alloc, err)
	}
	return s.join(deployment, alloc, addr, dev)
}

// attachGuest makes a VM guest's link and joins it to the data path; it
// returns QEMU's end.
func (s *subnets) attachGuest(deployment, alloc string, addr netip.Prefix) (*os.File, error) {
	f, dev, err := s.openGuest(addr, subnet.Gateway(addr.Masked()))
	if err != nil {
		return nil, fmt.Errorf("subnet link of %s: %w", alloc, err)
	}
	if err := s.join(deployment, alloc, addr, dev); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// join joins the allocation's device to the data path, or closes it.
func (s *subnets) join(deployment, alloc string, addr netip.Prefix, dev subnet.Device) error {
	if err := s.path.Attach(deployment, alloc, dev); err != nil {
		dev.Close()
		return fmt.Errorf("subnet of %s: %w", alloc, err)
	}
	s.mu.Lock()
	s.attached[deployment+"/"+alloc] = true
	s.mu.Unlock()
	s.log.Info("allocation joined its subnet", "deployment_id", deployment, "allocation", alloc, "addr", addr.String())
	return nil
}

// Leave implements allocation.Subnets.
func (s *subnets) Leave(deployment, alloc string) {
	s.mu.Lock()
	was := s.attached[deployment+"/"+alloc]
	delete(s.attached, deployment+"/"+alloc)
	s.mu.Unlock()
	s.path.Detach(deployment, alloc)
	if was {
		s.log.Info("allocation left its subnet", "deployment_id", deployment, "allocation", alloc)
	}
}

// Drop implements allocation.Subnets: the deployment has no allocation
// here any more.
func (s *subnets) Drop(deployment string) {
	s.path.Remove(deployment)
	s.mu.Lock()
	_, had := s.versions[deployment]
	delete(s.versions, deployment)
	for k := range s.attached {
		if d, _, _ := cutLast(k); d == deployment {
			delete(s.attached, k)
		}
	}
	s.mu.Unlock()
	err := s.db.Update(func(tx *store.Tx) error { return subnetKind.Delete(tx, deployment) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("forget the routing table", "deployment_id", deployment, "err", err)
	}
	if had {
		s.log.Info("subnet removed", "deployment_id", deployment)
	}
}

func cutLast(k string) (string, string, bool) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// ErrNoAllocation is why a routing table is refused for a deployment
// with no allocation on this node.
var ErrNoAllocation = errors.New("no allocation of the deployment on this node")

// update answers deployproto.BehaviorSubnet: the table must come from,
// and be signed by, the orchestrator of the deployment's allocations
// here. A newer table is installed and stored; an older one or the same
// again changes nothing.
func (s *subnets) update(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.SubnetUpdate
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if err := deployproto.CheckName("deployment", req.Deployment); err != nil {
		return nil, err
	}
	orchs := s.orchestrators(req.Deployment)
	if len(orchs) == 0 {
		return nil, fmt.Errorf("routing table of deployment %s: %w", req.Deployment, ErrNoAllocation)
	}
	if !slices.Contains(orchs, m.From.DID) {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: fmt.Sprintf("routing table of deployment %s: only its orchestrator may send it", req.Deployment)}
	}
	t, err := req.Table.Open(m.From.DID)
	if err != nil {
		return nil, fmt.Errorf("routing table of deployment %s: %w", req.Deployment, err)
	}
	if t.Deployment != req.Deployment {
		return nil, fmt.Errorf("routing table of deployment %s: %w: it names deployment %s", req.Deployment, subnet.ErrBadTable, t.Deployment)
	}
	if err := s.install(t, req.Table); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// install puts t in the data path and, when it is newer than the one
// there, stores it (signed).
func (s *subnets) install(t *subnet.Table, signed subnet.SignedTable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.path.SetTable(t) {
		return nil // not newer
	}
	s.versions[t.Deployment] = t.Version
	if err := s.db.Update(func(tx *store.Tx) error {
		return subnetKind.Put(tx, subnetRecord{Deployment: t.Deployment, Table: signed})
	}); err != nil {
		return fmt.Errorf("store the routing table of %s: %w", t.Deployment, err)
	}
	s.log.Info("routing table installed", "deployment_id", t.Deployment, "version", t.Version, "routes", len(t.Routes))
	return nil
}

// load installs the tables stored by an earlier run, checked again
// against the orchestrators of the allocations found in the store
// (orchestrators: by deployment); a table of a deployment with no
// allocation left, or that does not verify, is deleted. Call it before
// the allocations resume: a re-attached container needs its table.
func (s *subnets) load(orchestrators map[string][]identity.DID) error {
	var recs []subnetRecord
	if err := s.db.View(func(tx *store.Tx) (err error) {
		recs, err = subnetKind.List(tx, "")
		return err
	}); err != nil {
		return fmt.Errorf("load routing tables: %w", err)
	}
	for _, r := range recs {
		var t *subnet.Table
		var err error = ErrNoAllocation
		for _, o := range orchestrators[r.Deployment] {
			if t, err = r.Table.Open(o); err == nil {
				break
			}
		}
		if err == nil && t.Deployment != r.Deployment {
			err = fmt.Errorf("the table names deployment %s", t.Deployment)
		}
		if err != nil {
			s.log.Warn("stored routing table dropped", "deployment_id", r.Deployment, "err", err)
			if derr := s.db.Update(func(tx *store.Tx) error { return subnetKind.Delete(tx, r.Deployment) }); derr != nil {
				s.log.Warn("forget the routing table", "deployment_id", r.Deployment, "err", derr)
			}
			continue
		}
		s.mu.Lock()
		s.path.SetTable(t)
		s.versions[t.Deployment] = t.Version
		s.mu.Unlock()
		s.log.Info("routing table restored", "deployment_id", t.Deployment, "version", t.Version)
	}
	return nil
}

// status is the subnets' part of the node's status.
func (s *subnets) status() *api.SubnetStatus {
	s.mu.Lock()
	out := &api.SubnetStatus{Deployments: len(s.versions), Attached: len(s.attached)}
	s.mu.Unlock()
	if s.stats != nil {
		st := s.stats()
		out.Forwarded, out.Datagrams, out.Delivered = st.Forwarded, st.Datagrams, st.Delivered
		out.Sessions, out.Fallbacks, out.ReadErrors = st.Sessions, st.Fallbacks, st.ReadErrors
		if len(st.Dropped) > 0 {
			out.Dropped = maps.Clone(st.Dropped)
		}
	}
	return out
}

// close stops the data path: the interfaces close (the containers keep
// running, and get new ones when the node re-attaches to them).
func (s *subnets) close() error { return s.path.Close() }

// subnetsRunning returns the node's subnets, nil when it runs none.
func (n *Node) subnetsRunning() *subnets { return n.subnets }

// startSubnets starts the subnet data path when this machine can run it;
// else n.noSubnet says why, and the node does not offer
// deployproto.FeatureSubnet. The returned function stops it.
func (n *Node) startSubnets() (stop func()) {
	stop = func() {}
	if why := subnetSupport(); why != "" {
		n.noSubnet = why
		n.log.Info("no subnets on this node", "reason", why)
		return stop
	}
	s, err := n.newDataPath()
	if err != nil {
		n.noSubnet = err.Error()
		n.log.Warn("no subnets on this node", "err", err)
		return stop
	}
	n.subnets = s
	n.log.Info("subnet data path running")
	return func() {
		if err := s.close(); err != nil {
			n.log.Warn("close the subnet data path", "err", err)
		}
	}
}

// addSubnetBehavior registers deployproto.BehaviorSubnet on the node
// actor; a node without subnets refuses every table, saying why.
func (n *Node) addSubnetBehavior() {
	if n.subnets == nil {
		why := n.noSubnet
		n.root.AddBehavior(deployproto.BehaviorSubnet, func(ctx context.Context, m *actor.Message) (any, error) {
			return nil, fmt.Errorf("this node runs no subnets: %s", why)
		})
		return
	}
	n.subnets.orchestrators = n.allocs.Orchestrators
	n.root.AddBehavior(deployproto.BehaviorSubnet, n.subnets.update)
}

// loadSubnets installs the routing tables an earlier run stored, checked
// against the orchestrators of the allocations in the store (before they
// resume).
func (n *Node) loadSubnets() error {
	if n.subnets == nil {
		return nil
	}
	recs, err := allocStore{n.db}.List()
	if err != nil {
		return err
	}
	orchs := map[string][]identity.DID{}
	for _, r := range recs {
		if r.State.Terminal() {
			continue // ended: its deployment's subnet is of no use here
		}
		if !slices.Contains(orchs[r.Deployment], r.Orchestrator.DID) {
			orchs[r.Deployment] = append(orchs[r.Deployment], r.Orchestrator.DID)
		}
	}
	return n.subnets.load(orchs)
}
