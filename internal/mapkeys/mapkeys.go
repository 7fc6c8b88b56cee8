// Package mapkeys lists a map's keys in order: records, messages and
// tables that must not depend on Go's map iteration order are written from
// it.
package mapkeys

import (
	"cmp"
	"slices"
)

// Sorted returns m's keys in ascending order, in one allocation and none
// for an empty map, whose keys are an empty slice, not nil
// (slices.Sorted(maps.Keys(m)) makes its iterators, grows its slice as it
// goes and returns nil).
func Sorted[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
