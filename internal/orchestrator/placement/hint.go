package placement

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dmsnet/dms/internal/deployproto"
)

// ExecutorHint says how to get an executor that the round's nodes need and
// that no provider that answered offers: "no provider offers executor
// docker (on a devnet: dms devnet up --executor wasm,docker)", the devnet
// flag listing the executors offered and the missing ones. It is "" when
// every executor needed is offered somewhere, or when no provider answered
// with an offer (nothing is known then). Nodes that have not onboarded
// resources do not count, whatever executors they list. Executor features (vm/kernel: a
// default kernel; subnet) are left out: no flag turns them on; a round
// whose requests need subnets that no provider offers says so. The orchestrator adds it to the
// message of a queued deployment, so that `dms deploy --follow` and `dms
// deployment status` show it.
func ExecutorHint(r Round) string {
	offered := map[string]bool{}
	subnets := false // a provider offers deployproto.FeatureSubnet
	answered := false
	for _, a := range r.Replies {
		if a.Offer == nil || slices.ContainsFunc(a.NoBids, func(nb deployproto.NoBid) bool { return nb.Kind == deployproto.KindOnboarding }) {
			continue // not a provider: a node lists its executors before it onboards
		}
		answered = true
		for _, e := range a.Offer.Executors {
			if !deployproto.IsFeature(e) {
				offered[e] = true
			}
			subnets = subnets || e == deployproto.FeatureSubnet
		}
	}
	if !answered {
		return ""
	}
	var missing []string
	noSubnets := ""
	for _, nr := range r.Requests {
		for _, e := range nr.Request.Executors {
			if e == deployproto.FeatureSubnet && !subnets {
				noSubnets = "no provider offers subnets (network.subnet)"
			}
			// Features (vm/kernel) are not what the devnet flag turns on.
			if !offered[e] && !deployproto.IsFeature(e) && !slices.Contains(missing, e) {
				missing = append(missing, e)
			}
		}
	}
	if len(missing) == 0 {
		return noSubnets
	}
	if noSubnets != "" {
		noSubnets = "; " + noSubnets
	}
	slices.Sort(missing)
	have := make([]string, 0, len(offered))
	for e := range offered {
		have = append(have, e)
	}
	slices.Sort(have)
	what := "executor " + missing[0]
	if len(missing) > 1 {
		what = "executors " + strings.Join(missing, ", ")
	}
	return fmt.Sprintf("no provider offers %s (on a devnet: dms devnet up --executor %s)%s", what, strings.Join(append(have, missing...), ","), noSubnets)
}
