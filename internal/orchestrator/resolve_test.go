package orchestrator

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

func TestResolvePrefix(t *testing.T) {
	ids := []string{"dabcdefghijkl", "dabcxyzxyzxyz", "dqrstuvwxyz23", "dq2345234523a"}
	tests := []struct {
		name   string
		prefix string
		min    int
		want   string
		err    error    // errors.Is target; nil for success
		cands  []string // for ErrAmbiguous
	}{
		{"exact", "dqrstuvwxyz23", MinIDPrefix, "dqrstuvwxyz23", nil, nil},
		{"unique prefix", "dqrs", MinIDPrefix, "dqrstuvwxyz23", nil, nil},
		{"longer unique prefix", "dabcd", MinIDPrefix, "dabcdefghijkl", nil, nil},
		{"ambiguous", "dabc", MinIDPrefix, "", ErrAmbiguous, []string{"dabcdefghijkl", "dabcxyzxyzxyz"}},
		{"none", "dzzz", MinIDPrefix, "", ErrNotFound, nil},
		{"none longer than an id", "dabcdefghijklm", MinIDPrefix, "", ErrNotFound, nil},
		{"too short though unique", "dqr", MinIDPrefix, "", ErrPrefixTooShort, nil},
		{"too short and ambiguous", "d", MinIDPrefix, "", ErrPrefixTooShort, nil},
		{"too short and unknown is not found", "x", MinIDPrefix, "", ErrNotFound, nil},
		{"empty", "", MinIDPrefix, "", ErrNotFound, nil},
		{"no minimum", "dq2", 0, "dq2345234523a", nil, nil},
		{"no minimum ambiguous", "dq", 0, "", ErrAmbiguous, []string{"dq2345234523a", "dqrstuvwxyz23"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolvePrefix("deployment", tt.prefix, ids, tt.min)
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("resolvePrefix(%q) = %q, %v, want %q", tt.prefix, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("resolvePrefix(%q) = %q, %v, want error %v", tt.prefix, got, err, tt.err)
			}
			var ae *AmbiguousError
			if errors.As(err, &ae) && fmt.Sprint(ae.Candidates) != fmt.Sprint(tt.cands) {
				t.Fatalf("resolvePrefix(%q) candidates = %v, want %v", tt.prefix, ae.Candidates, tt.cands)
			}
		})
	}
}

func TestAmbiguousErrorMessage(t *testing.T) {
	var cands []string
	for i := range 12 {
		cands = append(cands, fmt.Sprintf("dabc%09d", i))
	}
	msg := (&AmbiguousError{What: "deployment", Prefix: "dabc", Candidates: cands}).Error()
	for _, want := range []string{`deployment prefix "dabc" matches 12: `, "dabc000000000, dabc000000001", "and 2 more", "give more characters"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "dabc000000011") {
		t.Errorf("message %q names more than %d candidates", msg, maxCandidates)
	}
}

func TestServiceResolve(t *testing.T) {
	spec := &ensemble.Spec{Allocations: map[string]ensemble.Allocation{"web": {}, "web-admin": {}, "db": {}, "dbmigrate": {}}}
	r := &run{d: &Deployment{ID: "dabcdefghijkl"}, spec: spec}
	s := &Service{deps: map[string]*run{"dabcdefghijkl": r, "dabcxyzxyzxyz": {d: &Deployment{}}, "dqrstuvwxyz23": {d: &Deployment{}}}}

	ids := []struct {
		prefix, want string
		err          error
	}{
		{"dabcdefghijkl", "dabcdefghijkl", nil},
		{"dabcd", "dabcdefghijkl", nil},
		{"dqrs", "dqrstuvwxyz23", nil},
		{"dabc", "", ErrAmbiguous},
		{"dab", "", ErrPrefixTooShort},
		{"dzzz", "", ErrNotFound},
	}
	for _, tt := range ids {
		got, err := s.Resolve(tt.prefix)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("Resolve(%q) = %q, %v, want %q, %v", tt.prefix, got, err, tt.want, tt.err)
		}
	}

	allocs := []struct {
		id, prefix, want string
		err              error
	}{
		{"dabcdefghijkl", "web", "web", nil}, // exact, though it begins web-admin
		{"dabcdefghijkl", "web-", "web-admin", nil},
		{"dabcdefghijkl", "dbm", "dbmigrate", nil},
		{"dabcdefghijkl", "db", "db", nil},
		{"dabcdefghijkl", "x", "", ErrNotFound},
		{"dzzzzzzzzzzzz", "web", "", ErrNotFound},
	}
	for _, tt := range allocs {
		got, err := s.ResolveAllocation(tt.id, tt.prefix)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ResolveAllocation(%q, %q) = %q, %v, want %q, %v", tt.id, tt.prefix, got, err, tt.want, tt.err)
		}
	}
	if _, err := s.ResolveAllocation("dabcdefghijkl", "w"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf(`ResolveAllocation(dabc…, "w") = %v, want ambiguous`, err)
	}
}

// FuzzResolvePrefix: a resolved name is the prefix itself or the only name
// it begins; a failure is one of the documented errors.
func FuzzResolvePrefix(f *testing.F) {
	f.Add("dabc", "dabcdefghijkl dabcxyzxyzxyz dq", 4)
	f.Add("d", "d dd", 0)
	f.Add("", "", 0)
	f.Fuzz(func(t *testing.T, prefix, list string, min int) {
		names := strings.Fields(list)
		got, err := resolvePrefix("x", prefix, names, min)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrAmbiguous) && !errors.Is(err, ErrPrefixTooShort) {
				t.Fatalf("resolvePrefix(%q, %q) = %v, an undocumented error", prefix, names, err)
			}
			return
		}
		if got == prefix {
			return
		}
		n := 0
		for _, name := range names {
			if strings.HasPrefix(name, prefix) {
				n++
			}
		}
		if !strings.HasPrefix(got, prefix) || n != 1 || len(prefix) < min {
			t.Fatalf("resolvePrefix(%q, %q, %d) = %q with %d matches", prefix, names, min, got, n)
		}
	})
}

// BenchmarkResolve resolves a prefix among 10000 deployments (every REST
// call under /deployments/{id} does it once), and, as its anchor, the
// exact ID (a map lookup).
func BenchmarkResolve(b *testing.B) {
	s := &Service{deps: map[string]*run{}}
	var last string
	for range 10000 {
		last = newID()
		s.deps[last] = &run{d: &Deployment{ID: last}}
	}
	b.Run("exact", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Resolve(last); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prefix", func(b *testing.B) {
		for b.Loop() {
			s.Resolve(last[:8])
		}
	})
}
