package node

import (
	"context"
	"errors"

	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/orchestrator"
)

var _ apiserver.Resolver = deploymentService{}

// Resolve implements apiserver.Resolver: a unique prefix of a deployment
// ID names it in every REST call.
func (s deploymentService) Resolve(_ context.Context, prefix string) (string, error) {
	id, err := s.n.deploys.Resolve(prefix)
	return id, resolveError(err)
}

// ResolveAllocation implements apiserver.Resolver.
func (s deploymentService) ResolveAllocation(_ context.Context, id, prefix string) (string, error) {
	name, err := s.n.deploys.ResolveAllocation(id, prefix)
	return name, resolveError(err)
}

// resolveError classifies the orchestrator's resolution errors for the API.
func resolveError(err error) error {
	var amb *orchestrator.AmbiguousError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &amb):
		return &apiserver.Ambiguous{Err: err, Candidates: amb.Candidates}
	case errors.Is(err, orchestrator.ErrNotFound):
		return &apiserver.NotFound{Err: err}
	case errors.Is(err, orchestrator.ErrPrefixTooShort):
		return &apiserver.BadRequest{Err: err}
	}
	return err
}
