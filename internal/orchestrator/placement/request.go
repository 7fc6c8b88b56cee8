package placement

import (
	"slices"
	"sort"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Nodes returns the nodes of a spec, sorted, and which node hosts each
// allocation. Parse gives every allocation a node of its own name when the
// spec has none; a spec built without Parse gets the same here.
func Nodes(spec *ensemble.Spec) (nodes []string, hostOf map[string]string) {
	hostOf = map[string]string{}
	for name, n := range spec.Nodes {
		nodes = append(nodes, name)
		for _, a := range n.Allocations {
			hostOf[a] = name
		}
	}
	if len(nodes) == 0 {
		for a := range spec.Allocations {
			nodes = append(nodes, a)
			hostOf[a] = a
		}
	}
	sort.Strings(nodes)
	return nodes, hostOf
}

// Requests builds what each node of spec asks of a provider for work that
// starts at now: the sum of its allocations' resources, the executors they
// use (and deployproto.FeatureVMKernel for a vm allocation that brings no
// kernel, deployproto.FeatureSubnet when the ensemble has network.subnet), where it may be (ensemble.Location.Rule), the peer it is
// pinned to, as a peer ID, the operator credentials its volumes name, and
// the highest price per hour it pays (contract.max_price).
func Requests(spec *ensemble.Spec, now time.Time) []deployproto.NodeRequest {
	nodes, _ := Nodes(spec)
	out := make([]deployproto.NodeRequest, 0, len(nodes))
	for _, name := range nodes {
		n, ok := spec.Nodes[name]
		if !ok {
			n = ensemble.Node{Allocations: []string{name}}
		}
		req := match.Request{Window: match.Window{Start: now}, MaxPrice: spec.Contract.MaxPrice}
		execs := map[string]bool{}
		var creds []string
		for _, an := range n.Allocations {
			a := spec.Allocations[an]
			for _, v := range a.Volumes {
				if v.S3 != nil && v.S3.Credentials != nil && v.S3.Credentials.Provider != "" {
					creds = append(creds, v.S3.Credentials.Provider)
				}
			}
			req.Resources, _ = req.Resources.Add(a.Resources.Match())
			execs[string(a.Executor)] = true
			if a.Executor == ensemble.VM && a.Execution.Kernel == "" {
				execs[deployproto.FeatureVMKernel] = true
			}
		}
		if spec.Network.Subnet {
			execs[deployproto.FeatureSubnet] = true
		}
		for e := range execs {
			req.Executors = append(req.Executors, e)
		}
		sort.Strings(req.Executors)
		req.Location = n.Location.Rule()
		peer := n.Peer
		if identity.DID(peer).Valid() {
			peer, _ = identity.DID(peer).PeerID()
		}
		sort.Strings(creds)
		out = append(out, deployproto.NodeRequest{Name: name, Request: req, Peer: peer, Credentials: slices.Compact(creds)})
	}
	return out
}

// Edge bounds the round trip between the providers of two nodes.
type Edge struct {
	A, B string
	RTT  time.Duration
}

// other returns the end of e that is not node.
func (e Edge) other(node string) string {
	if e.A == node {
		return e.B
	}
	return e.A
}

// Edges returns the ensemble's rtt constraints. Bandwidth constraints are
// not measured by this release (ensemble.Spec.Unsupported refuses them).
func Edges(spec *ensemble.Spec) []Edge {
	var out []Edge
	for _, e := range spec.Edges {
		if e.RTT > 0 && len(e.Between) == 2 {
			out = append(out, Edge{A: e.Between[0], B: e.Between[1], RTT: e.RTT})
		}
	}
	return out
}
