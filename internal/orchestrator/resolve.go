package orchestrator

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// MinIDPrefix is the shortest deployment ID prefix Resolve accepts. Every
// ID starts with "d", so "d" and "da" say almost nothing: a one-letter
// guess or a typo must not shut down the only deployment there is. Three
// random characters after the "d" (32³ = 32768 values) keep typing short
// while a collision among a node's deployments stays rare; a collision is
// an ambiguity error listing the candidates, never a guess.
const MinIDPrefix = 4

// maxCandidates bounds how many candidates an AmbiguousError names.
const maxCandidates = 10

// ErrAmbiguous is matched (errors.Is) by an *AmbiguousError.
var ErrAmbiguous = errors.New("ambiguous")

// ErrPrefixTooShort is returned by Resolve for a prefix shorter than
// MinIDPrefix that matches a deployment but not exactly.
var ErrPrefixTooShort = errors.New("prefix too short")

// AmbiguousError says that a prefix names several deployments or
// allocations; Candidates are all of them, sorted.
type AmbiguousError struct {
	What       string // "deployment ID" or "allocation"
	Prefix     string
	Candidates []string
}

func (e *AmbiguousError) Error() string {
	names := e.Candidates
	more := ""
	if len(names) > maxCandidates {
		more = fmt.Sprintf(" and %d more", len(names)-maxCandidates)
		names = names[:maxCandidates]
	}
	return fmt.Sprintf("%s prefix %q matches %d: %s%s (give more characters)", e.What, e.Prefix, len(e.Candidates), strings.Join(names, ", "), more)
}

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// resolvePrefix returns the name in names that prefix designates: the one
// equal to it, else the only one it begins. min is the shortest prefix
// accepted when the match is not exact (0: any non-empty one). It returns
// ErrNotFound when nothing matches, ErrPrefixTooShort or an *AmbiguousError.
func resolvePrefix(what, prefix string, names []string, min int) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty %s: %w", what, ErrNotFound)
	}
	var matches []string
	for _, n := range names {
		if n == prefix {
			return n, nil
		}
		if strings.HasPrefix(n, prefix) {
			matches = append(matches, n)
		}
	}
	switch {
	case len(matches) == 0:
		return "", fmt.Errorf("%s %s: %w", what, prefix, ErrNotFound)
	case len(prefix) < min:
		return "", fmt.Errorf("%s prefix %q: %w (give at least %d characters)", what, prefix, ErrPrefixTooShort, min)
	case len(matches) > 1:
		sort.Strings(matches)
		return "", &AmbiguousError{What: what, Prefix: prefix, Candidates: matches}
	}
	return matches[0], nil
}

// Resolve returns the ID of the deployment that prefix designates: the
// deployment with that ID, else the only one whose ID begins with it (at
// least MinIDPrefix characters). Errors: ErrNotFound, ErrPrefixTooShort,
// *AmbiguousError.
func (s *Service) Resolve(prefix string) (string, error) {
	s.mu.Lock()
	if _, ok := s.deps[prefix]; ok {
		s.mu.Unlock()
		return prefix, nil
	}
	var ids []string // only those that can match: no copy of every ID
	for id := range s.deps {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	return resolvePrefix("deployment", prefix, ids, MinIDPrefix)
}

// ResolveAllocation returns the name of the allocation of deployment id
// (a full ID) that prefix designates: the allocation of that name, else
// the only one whose name begins with it. Allocation names are the
// user's, often short ("db", "web"), so there is no minimum length.
// Errors: ErrNotFound, *AmbiguousError.
func (s *Service) ResolveAllocation(id, prefix string) (string, error) {
	r, err := s.get(id)
	if err != nil {
		return "", err
	}
	name, err := resolvePrefix("allocation", prefix, allocNames(r.specOf(r.snapshot())), 0)
	if errors.Is(err, ErrNotFound) && prefix != "" {
		return "", fmt.Errorf("deployment %s has no allocation %s: %w", id, prefix, ErrNotFound)
	}
	return name, err
}
