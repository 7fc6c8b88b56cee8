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
