package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
	"github.com/dmsnet/dms/internal/subnet"
)

// The subnet of a deployment (ensemble network.subnet): at submit, a
// block from the node's pool (Config.Pool) and an address per allocation,
// kept in the record (Deployment.Subnet, Deployment.Addresses), so that
// they survive a restart and reach the standbys with the rest of it. Each
// allocation's commit carries its address (AllocationSpec.Subnet). Once
// every node is committed, and before the first start, the routing table
// (allocation → address → provider peer), signed with the orchestrator's
// key, goes to every provider (deployproto.BehaviorSubnet); on every
// redeploy a new version of it goes to every current provider before the
// replacement starts. The block goes back to the pool when the
// deployment ends.

// subnetPool is the node's pool of subnet blocks, shared by its
// deployments. Its state is the blocks of the deployments this node
// orchestrates that have not ended: Resume and takeovers mark theirs.
type subnetPool struct {
	mu   sync.Mutex
	pool *subnet.Pool // guarded by mu
}

// assign gives deployment a block for n allocations.
func (p *subnetPool) assign(deployment string, n int) (netip.Prefix, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.pool.Assign(deployment, n)
	if err != nil {
		what := fmt.Sprintf("%d allocations", n)
		if n == 1 {
			what = "1 allocation"
		}
		return netip.Prefix{}, fmt.Errorf("network.subnet: no /%d for the deployment (%s) from the address pool %s (configuration subnet.pool, subnet.bits): %w",
			p.pool.Bits, what, p.pool.Prefix, err)
	}
	return b, nil
}

// mark records that deployment holds block (a deployment resumed or taken
// over); it is a no-op when it holds one already.
func (p *subnetPool) mark(deployment string, block netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pool.Allocated[deployment]; ok {
		return
	}
	if p.pool.Allocated == nil {
		p.pool.Allocated = map[string]netip.Prefix{}
	}
	p.pool.Allocated[deployment] = block
}

func (p *subnetPool) release(deployment string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pool.Release(deployment)
}

// Blocks returns the subnet blocks in use by the deployments this node
// orchestrates, by deployment ID.
func (s *Service) Blocks() map[string]netip.Prefix {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	out := make(map[string]netip.Prefix, len(s.pool.pool.Allocated))
	for k, v := range s.pool.pool.Allocated {
		out[k] = v
	}
	return out
}

// planSubnet gives a new deployment with a subnet its block and addresses.
func (s *Service) planSubnet(d *Deployment, names []string) error {
	block, err := s.pool.assign(d.ID, len(names))
	if err != nil {
		return err
	}
	addrs, err := subnet.Addresses(block, names, nil)
	if err != nil {
		s.pool.release(d.ID)
		return fmt.Errorf("network.subnet: %w", err)
	}
	d.Subnet, d.Addresses = block, addrs
	return nil
}

// subnetOf returns the address of allocation name with its block's
// length (10.77.0.2/24), or the zero prefix when the deployment has no
// subnet.
func subnetOf(d *Deployment, name string) netip.Prefix {
	a, ok := d.Addresses[name]
	if !d.Subnet.IsValid() || !ok {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, d.Subnet.Bits())
}

// subnetTimeout bounds the wait for the providers' acknowledgements of a
// routing table.
func (r *run) subnetTimeout() time.Duration { return min(r.s.cfg.CommitTimeout, 5*time.Second) }

// table builds the routing table of d with placement placed (by node) at
// version.
func (r *run) table(d *Deployment, placed map[string]Placement, version uint64) subnet.Table {
	hostOf := r.layout().hostOf
	t := subnet.Table{Deployment: d.ID, Version: version, Subnet: d.Subnet}
	for _, name := range r.layout().allocs {
		pl, ok := placed[hostOf[name]]
		if !ok {
			continue
		}
		t.Routes = append(t.Routes, subnet.Route{Allocation: name, Addr: d.Addresses[name], Peer: pl.Provider.Host})
	}
	return t
}

// pushSubnet signs the routing table with the deployment's placement
// placed at the next version and sends it to every provider of placed, in
// parallel, waiting at most subnetTimeout. It returns the providers
// that did not take it, as the reasons a commit refusal would give (by
// node). A deployment without a subnet sends nothing.
func (r *run) pushSubnet(ctx context.Context, placed map[string]Placement) []placement.Reason {
	d := r.view()
	if !d.Subnet.IsValid() || len(placed) == 0 {
		return nil
	}
	var version uint64
	r.update(true, func(d *Deployment) {
		d.SubnetVersion = nextVersion(d.SubnetVersion, d.Epoch)
		version = d.SubnetVersion
	})
	signed, err := r.table(d, placed, version).Sign(r.key)
	if err != nil { // a bug: the table is built from a valid record
		r.s.log.Error("routing table", "deployment_id", d.ID, "err", err)
		var out []placement.Reason
		for node, pl := range placed {
			out = append(out, placement.Reason{Peer: pl.Provider.Host, Node: node, Kind: deployproto.KindRefused, Reasons: []string{"routing table not sent: " + err.Error()}})
		}
		return out
	}
	up := deployproto.SubnetUpdate{Deployment: d.ID, Table: signed}
	type result struct {
		node string
		err  error
	}
	// A provider that hosts several nodes gets the table once.
	byHost := map[string][]string{}
	for node, pl := range placed {
		byHost[pl.Provider.Host] = append(byHost[pl.Provider.Host], node)
	}
	results := make(chan result, len(byHost))
	for host, nodes := range byHost {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, r.subnetTimeout())
			defer cancel()
			h, err := actor.NodeHandle(host)
			if err == nil {
				err = r.actor.Invoke(ctx, h, deployproto.BehaviorSubnet, up, nil)
			}
			results <- result{node: nodes[0], err: err}
		}()
	}
	var refused []placement.Reason
	for range byHost {
		res := <-results
		if res.err == nil {
			continue
		}
		pl := placed[res.node]
		r.s.log.Warn("routing table refused", "deployment_id", d.ID, "node", res.node, "peer_id", pl.Provider.Host, "version", version, "err", res.err)
		refused = append(refused, placement.Reason{Peer: pl.Provider.Host, Node: res.node, Kind: deployproto.KindRefused,
			Reasons: []string{fmt.Sprintf("routing table (subnet %s, version %d): %v", d.Subnet, version, res.err)}})
	}
	return refused
}

// nextVersion is the version of a routing table after last at fencing
// epoch: one more, and at least epoch<<32, so that a table issued at a
// higher epoch (a redeploy, a standby's takeover whose record missed the
// last version its predecessor sent) supersedes every table of the epochs
// before, as providers keep the highest version.
func nextVersion(last, epoch uint64) uint64 { return max(last+1, epoch<<32) }

// refusedBy says whether a provider of refused is host.
func refusedBy(refused []placement.Reason, host string) error {
	for _, x := range refused {
		if x.Peer == host {
			return errors.New(x.Reasons[0])
		}
	}
	return nil
}

// resendSubnet sends the table again, at a new version signed with this
// orchestrator's key, to the providers of a deployment placed before this
// run began (a restart of the node, or a standby's takeover: the
// providers learn the new signer). Best effort: a provider that misses it
// keeps the table it has.
func (r *run) resendSubnet(ctx context.Context) {
	d := r.snapshot()
	if !d.Subnet.IsValid() || d.State.Terminal() || d.State != Provisioning && d.State != Running || len(d.Placement) == 0 {
		return
	}
	if refused := r.pushSubnet(ctx, d.Placement); refused != nil {
		r.s.log.Warn("routing table not taken after a restart", "deployment_id", d.ID, "providers", len(refused), "first", identity.ShortPeerID(refused[0].Peer))
	}
}
