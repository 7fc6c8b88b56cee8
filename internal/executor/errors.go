package executor

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound: the executor knows no instance with that ID (never
	// started, removed, or not created by dms).
	ErrNotFound = errors.New("no such instance")
	// ErrInvalidSpec: the spec was refused before anything started. The
	// error is a *ValidationError listing every problem.
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrImage: the image or module could not be obtained (not present
	// and no registry could supply it, or it does not load).
	ErrImage = errors.New("image unavailable")
	// ErrUnavailable: the backend itself is missing or broken (no Docker
	// daemon, no QEMU binary), or the executor was closed.
	ErrUnavailable = errors.New("executor unavailable")
)

// ValidationError lists every problem found in a Spec. It matches
// ErrInvalidSpec with errors.Is.
type ValidationError struct {
	Problems []Problem
}

// Problem is one thing wrong with a Spec.
type Problem struct {
	// Field is the field's path in the spec, as in its JSON: "image",
	// "resources.memory", "mounts[1].target".
	Field   string
	Message string
}

func (p Problem) String() string { return p.Field + ": " + p.Message }

// Add records a problem with field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Include adds the problems of err when it is a *ValidationError, and err
// itself as a problem otherwise; nil adds nothing.
func (e *ValidationError) Include(err error) {
	if err == nil {
		return
	}
	var v *ValidationError
	if errors.As(err, &v) {
		e.Problems = append(e.Problems, v.Problems...)
		return
	}
	e.Add("spec", "%v", err)
}

// Err returns e when it holds problems, nil otherwise.
func (e *ValidationError) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Error reads "invalid spec: image: missing ...; command: empty ...".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrInvalidSpec.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalidSpec) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidSpec }
