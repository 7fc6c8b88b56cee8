package orchestrator

import (
	"maps"
	"slices"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/orchestrator/placement"
)

// TestLayout: a run's layout is made once and is what placement.Nodes and
// the spec give, for a spec with nodes and one without.
func TestLayout(t *testing.T) {
	alloc := func() ensemble.Allocation {
		return ensemble.Allocation{Executor: ensemble.Docker, Execution: ensemble.Execution{Image: "x"}}
	}
	specs := map[string]struct {
		spec       *ensemble.Spec
		nodes      []string
		nodeAllocs map[string][]string
	}{
		"no nodes": {
			spec:       &ensemble.Spec{Allocations: map[string]ensemble.Allocation{"b": alloc(), "a": alloc()}},
			nodes:      []string{"a", "b"},
			nodeAllocs: map[string][]string{"a": {"a"}, "b": {"b"}},
		},
		"nodes": {
			spec: &ensemble.Spec{
				Allocations: map[string]ensemble.Allocation{"web": alloc(), "db": alloc(), "cache": alloc()},
				Nodes:       map[string]ensemble.Node{"n2": {Allocations: []string{"web", "cache"}}, "n1": {Allocations: []string{"db"}}},
			},
			nodes:      []string{"n1", "n2"},
			nodeAllocs: map[string][]string{"n1": {"db"}, "n2": {"cache", "web"}},
		},
	}
	for name, tt := range specs {
		t.Run(name, func(t *testing.T) {
			r := &run{spec: tt.spec}
			l := r.layout()
			if r.layout() != l {
				t.Error("the layout was made again")
			}
			nodes, hostOf := placement.Nodes(tt.spec)
			if !slices.Equal(l.nodes, tt.nodes) || !slices.Equal(l.nodes, nodes) {
				t.Errorf("nodes = %v, want %v", l.nodes, tt.nodes)
			}
			if !maps.Equal(l.hostOf, hostOf) {
				t.Errorf("hostOf = %v, want %v", l.hostOf, hostOf)
			}
			if !maps.EqualFunc(l.nodeAllocs, tt.nodeAllocs, slices.Equal) {
				t.Errorf("nodeAllocs = %v, want %v", l.nodeAllocs, tt.nodeAllocs)
			}
			if !slices.Equal(l.allocs, allocNames(tt.spec)) {
				t.Errorf("allocs = %v, want %v", l.allocs, allocNames(tt.spec))
			}
			for node, want := range tt.nodeAllocs {
				if got := r.nodeAllocs(node); !slices.Equal(got, want) {
					t.Errorf("nodeAllocs(%s) = %v, want %v", node, got, want)
				}
			}
		})
	}
}
