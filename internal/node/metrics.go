package node

import (
	"net/http"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/telemetry/metrics"
)

// The node's Prometheus metrics (package telemetry/metrics), when
// telemetry.metrics is on: the registry is made before the store, so that
// the store's commits, the actor runtime's messages and the executors'
// starts are recorded from the first; the sources read at scrape time are
// wired once the orchestration runs (watchMetrics). /metrics is served on
// the API listener, behind the API token.

// newMetrics returns the node's metrics, nil when they are off.
func newMetrics(on bool) *metrics.Metrics {
	if !on {
		return nil
	}
	return metrics.New()
}

// actorObserver is the actor runtime's observer: nil (none) without
// metrics.
func (n *Node) actorObserver() actor.Observer {
	if n.metrics == nil {
		return nil
	}
	return n.metrics.Observer()
}

// metricsHandler serves /metrics; nil without metrics (the route answers
// 404).
func (n *Node) metricsHandler() http.Handler {
	if n.metrics == nil {
		return nil
	}
	return n.metrics.Handler()
}

// allocationBehaviors are the behaviors of allocation actors: they get a
// label of their own before any allocation runs here.
var allocationBehaviors = []string{
	deployproto.BehaviorStart, deployproto.BehaviorStop, deployproto.BehaviorLogs, deployproto.BehaviorStatus,
	deployproto.BehaviorDependency, deployproto.BehaviorAdopt, deployproto.BehaviorExec,
	deployproto.BehaviorExecInput, deployproto.BehaviorExecOutput,
	deployproto.BehaviorReport, deployproto.BehaviorArtifact, deployproto.BehaviorShutdown,
}

// watchMetrics gives the node's behaviors their labels and registers the
// sources read at scrape time. It runs once the orchestration started.
func (n *Node) watchMetrics() error {
	if n.metrics == nil {
		return nil
	}
	n.metrics.Observer().Known(n.root.Behaviors()...)
	n.metrics.Observer().Known(allocationBehaviors...)
	src := metrics.Sources{
		Actors:  n.sys.Stats,
		Peers:   func() int { return len(n.connectedPeers()) },
		Traffic: n.host.Traffic,
		Deployments: func() map[string]int {
			out := map[string]int{}
			for _, d := range n.deploys.List() {
				out[string(d.State)]++
			}
			return out
		},
		Orchestration: func() metrics.Orchestration {
			st := n.deploys.Stats()
			return metrics.Orchestration{Rounds: st.Rounds, Placements: st.Placements}
		},
		Allocations: func() map[string]int {
			out := map[string]int{}
			for _, r := range n.allocs.List() {
				out[string(r.State)]++
			}
			return out
		},
		Tracing: func() map[string]uint64 {
			if n.tracing == nil {
				return nil
			}
			return n.tracing.Stats()
		},
		Usage: func() []metrics.Usage {
			ms := n.allocs.Meters()
			out := make([]metrics.Usage, 0, len(ms))
			for _, m := range ms {
				out = append(out, metrics.Usage{Deployment: m.Deployment, Allocation: m.ID, CPUSeconds: float64(m.CPUMicros) / 1e6, MemoryBytes: m.Memory})
			}
			return out
		},
	}
	if n.provider != nil {
		src.Bids = func() metrics.Bids {
			st := n.provider.Stats()
			return metrics.Bids{Made: st.Bids, Won: st.Won, NoBids: st.NoBids}
		}
	}
	if n.notary != nil {
		src.Contracts = n.contractMetrics
	}
	if sn := n.subnetsRunning(); sn != nil && sn.stats != nil {
		src.Subnet = func() metrics.Subnet {
			st := sn.stats()
			return metrics.Subnet{Forwarded: st.Forwarded, Delivered: st.Delivered, Datagrams: st.Datagrams,
				Sessions: st.Sessions, Fallbacks: st.Fallbacks, ReadErrors: st.ReadErrors, Dropped: st.Dropped,
				DNSLocal: st.DNS.Local, DNSForwarded: st.DNS.Forwarded, DNSFailed: st.DNS.Failed, DNSDropped: st.DNS.Dropped}
		}
	}
	return n.metrics.Watch(src)
}

// contractMetrics counts this node's contracts by role and state, and the
// notes it signed (notary.Stats: the contracts' small state rows, nothing
// decoded or verified).
func (n *Node) contractMetrics() metrics.Contracts {
	st, err := n.notary.Stats()
	out := metrics.Contracts{ByState: map[[2]string]int{}, Issued: st.Issued, Countersigned: st.Countersigned}
	if err != nil {
		n.log.Debug("contract metrics", "err", err)
	}
	for role, byState := range st.Contracts {
		for state, count := range byState {
			out.ByState[[2]string{string(role), string(state)}] = count
		}
	}
	return out
}
