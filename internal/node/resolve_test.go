package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/orchestrator"
)

func TestResolveError(t *testing.T) {
	amb := &orchestrator.AmbiguousError{What: "deployment", Prefix: "dabc", Candidates: []string{"dabc1", "dabc2"}}
	tests := []struct {
		name string
		err  error
		want any // a pointer to the apiserver type the error must be, or nil
	}{
		{"none", nil, nil},
		{"ambiguous", amb, new(*apiserver.Ambiguous)},
		{"not found", fmt.Errorf("deployment dzzz: %w", orchestrator.ErrNotFound), new(*apiserver.NotFound)},
		{"too short", fmt.Errorf("deployment prefix %q: %w", "d", orchestrator.ErrPrefixTooShort), new(*apiserver.BadRequest)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolveError(tt.err)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("resolveError(nil) = %v", got)
				}
				return
			}
			if !errors.As(got, tt.want) {
				t.Fatalf("resolveError(%v) = %T, want %T", tt.err, got, tt.want)
			}
		})
	}
	var a *apiserver.Ambiguous
	if errors.As(resolveError(amb), &a); fmt.Sprint(a.Candidates) != "[dabc1 dabc2]" {
		t.Fatalf("the candidates are lost: %v", a.Candidates)
	}
	other := errors.New("disk on fire")
	if got := resolveError(other); got != other {
		t.Fatalf("resolveError(other) = %v, want it unchanged", got)
	}
}
