package ensemble

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// CycleError is returned by Levels when dependencies form a cycle.
type CycleError struct {
	Cycle []string // a -> b -> ... -> a, starting at the smallest name
}

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Cycle, " -> ")
}

// Levels orders the allocations of deps (name -> names it depends on) in
// start order: every allocation of level i depends only on allocations of
// levels before i, so the allocations of one level may start in parallel.
// Names within a level are sorted. It fails with a *CycleError on a cycle,
// and with an error naming the first dependency that is not a key of deps.
func Levels(deps map[string][]string) ([][]string, error) {
	names := mapkeys.Sorted(deps)
	for _, n := range names {
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				return nil, fmt.Errorf("%s depends on unknown %q", n, d)
			}
		}
	}
	if c := findCycle(deps); c != nil {
		return nil, &CycleError{Cycle: c}
	}
	level := map[string]int{}
	var depth func(string) int
	depth = func(n string) int {
		if l, ok := level[n]; ok {
			return l
		}
		l := 0
		for _, d := range deps[n] {
			l = max(l, depth(d)+1)
		}
		level[n] = l
		return l
	}
	var out [][]string
	for _, n := range names {
		l := depth(n)
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], n)
	}
	return out, nil
}

// Levels returns the spec's allocations in dependency order (see the
// function Levels).
func (s *Spec) Levels() ([][]string, error) {
	deps := make(map[string][]string, len(s.Allocations))
	for name, a := range s.Allocations {
		deps[name] = a.DependsOn
	}
	return Levels(deps)
}

// findCycle returns a dependency cycle, rotated to start at its smallest
// name and closed (a -> b -> a), or nil. Of several cycles it returns the
// one found first from the smallest name.
func findCycle(deps map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		for _, d := range ds {
			switch color[d] {
			case grey:
				i := len(stack) - 1
				for stack[i] != d {
					i--
				}
				found = append([]string(nil), stack[i:]...)
				return true
			case white:
				if _, ok := deps[d]; ok && visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range mapkeys.Sorted(deps) {
		if color[n] == white && visit(n) {
			break
		}
	}
	if found == nil {
		return nil
	}
	start := 0
	for i, n := range found {
		if n < found[start] {
			start = i
		}
	}
	cycle := append(append([]string(nil), found[start:]...), found[:start]...)
	return append(cycle, cycle[0])
}
