package node

import (
	"context"
	"errors"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// resultService serves dms deployment results from the orchestrator.
type resultService struct{ n *Node }

var _ apiserver.ResultService = resultService{}

// resultError maps the orchestrator's errors to the API's.
func resultError(err error) error {
	switch {
	case errors.Is(err, orchestrator.ErrNotFound):
		return &apiserver.NotFound{Err: err}
	case errors.Is(err, orchestrator.ErrNotReady), errors.Is(err, orchestrator.ErrBadChunk):
		return &apiserver.BadRequest{Err: err}
	}
	return err
}

func (s resultService) Results(ctx context.Context, id string) ([]api.ResultVolume, error) {
	vols, err := s.n.deploys.Results(ctx, id)
	if err != nil {
		return nil, resultError(err)
	}
	out := make([]api.ResultVolume, len(vols))
	for i, v := range vols {
		out[i] = api.ResultVolume{
			Allocation: v.Allocation, Volume: v.Volume, Kind: string(v.Kind), Mode: string(v.Mode),
			Provider: v.Provider, Bucket: v.Bucket, Endpoint: v.Endpoint, Prefix: v.Prefix,
			Ready: v.Ready, Reason: v.Reason,
		}
	}
	return out, nil
}

func (s resultService) ResultManifest(ctx context.Context, id, alloc, volume string) (*api.ResultManifest, error) {
	m, err := s.n.deploys.ResultManifest(ctx, id, alloc, volume)
	if err != nil {
		return nil, resultError(err)
	}
	out := &api.ResultManifest{Files: make([]api.ResultFile, len(m.Files)), Bytes: m.Bytes}
	for i, f := range m.Files {
		out.Files[i] = api.ResultFile{Path: f.Path, Size: f.Size, SHA256: f.SHA256}
	}
	return out, nil
}

func (s resultService) ResultChunk(ctx context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error) {
	b, err := s.n.deploys.ResultChunk(ctx, id, alloc, volume, path, off, n)
	return b, resultError(err)
}
