package mapkeys

import (
	"slices"
	"testing"
)

func TestSorted(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    map[string]int
		want []string
	}{
		{"nil", nil, []string{}},
		{"empty", map[string]int{}, []string{}},
		{"one", map[string]int{"a": 1}, []string{"a"}},
		{"several", map[string]int{"b": 1, "c": 2, "a": 3, "": 4}, []string{"", "a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sorted(tc.m); got == nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Sorted = %q, want %q", got, tc.want)
			}
		})
	}
	if n := testing.AllocsPerRun(10, func() { Sorted(map[string]int{}) }); n != 0 {
		t.Fatalf("an empty map: %v allocations, want 0", n)
	}
	m := map[int]bool{3: true, 1: true, 2: true}
	if n := testing.AllocsPerRun(10, func() { Sorted(m) }); n != 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}
