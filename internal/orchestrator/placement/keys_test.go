package placement

import (
	"slices"
	"testing"
)

func TestNotAnswered(t *testing.T) {
	for name, tt := range map[string]struct {
		asked    []string
		answered map[string]bool
		want     []string
	}{
		"none asked":       {want: nil},
		"all answered":     {asked: []string{"b", "a"}, answered: map[string]bool{"a": true, "b": true}, want: nil},
		"sorted, no twice": {asked: []string{"c", "a", "b", "c", "a"}, answered: map[string]bool{"b": true}, want: []string{"a", "c"}},
		"answered false":   {asked: []string{"a"}, answered: map[string]bool{"a": false}, want: []string{"a"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := (Round{Asked: tt.asked, Answered: tt.answered}).NotAnswered(); !slices.Equal(got, tt.want) {
				t.Errorf("NotAnswered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSortedKeys(t *testing.T) {
	if got := sortedKeys(map[string]int{}); got != nil {
		t.Errorf("sortedKeys(empty) = %v, want nil", got)
	}
	if got := sortedKeys(map[string]int{"b": 1, "c": 2, "a": 3}); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("sortedKeys = %v", got)
	}
	m := map[string]int{}
	if n := testing.AllocsPerRun(10, func() { sortedKeys(m) }); n != 0 {
		t.Errorf("sortedKeys(empty) allocates %v times", n)
	}
}
