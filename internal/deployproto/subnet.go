package deployproto

import "github.com/dmsnet/dms/internal/subnet"

// BehaviorSubnet carries a deployment's routing table to a provider node:
// SubnetUpdate → struct{}. The orchestrator sends it to every provider of
// a deployment that has a subnet before it starts the allocations, and
// again whenever the table changes (a redeploy moves an allocation).
const BehaviorSubnet = "/dms/deployment/subnet"

// SubnetUpdate is a deployment's routing table, signed by its
// orchestrator. A provider takes it only from the orchestrator that
// committed the deployment's allocations to it, and keeps the highest
// version it has seen.
type SubnetUpdate struct {
	Deployment string             `json:"deployment"`
	Table      subnet.SignedTable `json:"table"`
}
