package node

import (
	"testing"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/deployproto"
)

// TestCommandPrefixes: the command prefixes users delegate (api, for the
// CLI) are the ones the deployment protocol checks, and a new home trusts
// its user for the root of both.
func TestCommandPrefixes(t *testing.T) {
	for _, tt := range []struct{ name, api, internal string }{
		{"deployment", api.CmdDeployment, deployproto.CmdDeployment},
		{"allocation", api.CmdAllocation, deployproto.CmdAllocation},
		{"plan", api.CmdPlan, deployproto.BehaviorPlan},
		{"default trust", api.CmdRoot, capstore.DefaultPrefix},
		{"issued tokens", api.SourceIssued, capstore.SourceIssued},
		{"health-check user agent", api.HealthCheckUserAgent, deployproto.HealthCheckUserAgent},
	} {
		if tt.api != tt.internal {
			t.Errorf("%s: api says %q, the node %q", tt.name, tt.api, tt.internal)
		}
	}
}
