package allocation

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
)

// Subnets is the node's side of the deployments' private subnets (the
// node wires it to package subnet/router and subnet/link), as the
// allocations use it. An allocation whose spec has a subnet address
// (AllocationSpec.Subnet) joins its deployment's subnet at every start,
// leaves it when a run ends, and the deployment's subnet is dropped when
// its last allocation on this node is removed.
type Subnets interface {
	// Join returns the executor hooks that put instance of allocation
	// (its name in the ensemble) on the deployment's subnet at addr (the
	// allocation's address with the block's length), or why it cannot.
	Join(deployment, allocation string, addr netip.Prefix, kind ensemble.Executor) (*executor.Subnet, error)
	// Leave takes the allocation off the subnet (its interface closes).
	Leave(deployment, allocation string)
	// Drop forgets the deployment's subnet on this node: its routing
	// table, stored and in use, and every interface left.
	Drop(deployment string)
}

// subnetOf returns the allocation's subnet address, if it has one.
func subnetOf(s *deployproto.AllocationSpec) (netip.Prefix, bool) {
	p := s.Subnet
	return p, p.IsValid()
}

// checkSubnet checks a spec's subnet address: an IPv4 host address of a
// block of /30 or larger, for an executor that can join a subnet, on a
// node that runs subnets.
func (m *Manager) checkSubnet(s *deployproto.AllocationSpec) error {
	p, ok := subnetOf(s)
	if !ok {
		return nil
	}
	switch {
	case !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30:
		return fmt.Errorf("subnet: %s is not an IPv4 address of a /8 to /30 block", p)
	case p.Addr() == p.Masked().Addr():
		return fmt.Errorf("subnet: %s is the block's network address, not a host's", p)
	case s.Executor == ensemble.Wasm:
		return fmt.Errorf("subnet: wasm allocations cannot join a subnet (WASI preview 1 has no sockets)")
	case m.cfg.Subnets == nil:
		return fmt.Errorf("subnet: this node runs no subnets")
	}
	return nil
}

// joinSubnet sets spec's subnet hooks when the allocation has a subnet.
func (a *alloc) joinSubnet(rec *Record, spec *executor.Spec) error {
	p, ok := subnetOf(&rec.Spec)
	if !ok {
		return nil
	}
	if a.m.cfg.Subnets == nil {
		return fmt.Errorf("subnet: this node runs no subnets")
	}
	sub, err := a.m.cfg.Subnets.Join(rec.Deployment, rec.Name, p, rec.Spec.Executor)
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	spec.Subnet = sub
	return nil
}

// leaveSubnet takes the allocation off its subnet, if it has one.
func (a *alloc) leaveSubnet() {
	rec := a.record()
	if _, ok := subnetOf(&rec.Spec); ok && a.m.cfg.Subnets != nil {
		a.m.cfg.Subnets.Leave(rec.Deployment, rec.Name)
	}
}

// reattachSubnet puts instance id, found again after a node restart, back
// on the allocation's subnet. It returns an error only when the instance
// cannot be on the subnet any more.
func (a *alloc) reattachSubnet(ctx context.Context, id string) error {
	rec := a.record()
	if _, ok := subnetOf(&rec.Spec); !ok {
		return nil
	}
	var spec executor.Spec
	if err := a.joinSubnet(&rec, &spec); err != nil {
		return err
	}
	at, ok := a.ex.(executor.SubnetAttacher)
	if !ok {
		return fmt.Errorf("subnet: the %s executor cannot attach a running instance to its subnet again", rec.Spec.Executor)
	}
	if err := at.AttachSubnet(ctx, id, spec.Subnet); err != nil {
		return fmt.Errorf("subnet: re-attach %s: %w", id, err)
	}
	return nil
}

// dropSubnetIfDone drops the deployment's subnet when no allocation of it
// on this node may run any more: all removed or ended (a shutdown stops
// them and keeps their records, a revert or a stale copy's stop removes
// them). Called after an allocation of a subnet was removed or ended.
func (m *Manager) dropSubnetIfDone(deployment string) {
	if m.cfg.Subnets == nil || len(m.Orchestrators(deployment)) > 0 {
		return
	}
	m.cfg.Subnets.Drop(deployment)
}

// Orchestrators returns the orchestrators (their actors' DIDs) of the
// deployment's allocations on this node that have not ended: none when it
// has none here.
func (m *Manager) Orchestrators(deployment string) []identity.DID {
	m.mu.Lock()
	all := make([]*alloc, 0, len(m.allocs))
	for _, a := range m.allocs {
		if a.rec.Deployment == deployment { // Deployment never changes
			all = append(all, a)
		}
	}
	m.mu.Unlock()
	seen := map[identity.DID]bool{}
	var out []identity.DID
	for _, a := range all {
		rec := a.record()
		if rec.State.Terminal() {
			continue
		}
		if d := rec.Orchestrator.DID; !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
