package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/dmsnet/dms/api"
)

// ResultService serves the results of the deployments this node
// orchestrates: the files the allocations left in their out volumes.
type ResultService interface {
	Results(ctx context.Context, id string) ([]api.ResultVolume, error)
	ResultManifest(ctx context.Context, id, alloc, volume string) (*api.ResultManifest, error)
	ResultChunk(ctx context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error)
}

func (s *Server) routesResults() {
	ready := func(w http.ResponseWriter) bool {
		if s.cfg.Results == nil {
			unavailable(w, "results")
			return false
		}
		return true
	}
	s.handle("GET /api/v1/deployments/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		vs, err := s.cfg.Results.Results(r.Context(), r.PathValue("id"))
		if err != nil {
			s.fail(w, err)
			return
		}
		if vs == nil {
			vs = []api.ResultVolume{}
		}
		writeJSON(w, vs)
	})
	s.handle("GET /api/v1/deployments/{id}/results/{alloc}/{volume}/manifest", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		m, err := s.cfg.Results.ResultManifest(r.Context(), r.PathValue("id"), r.PathValue("alloc"), r.PathValue("volume"))
		if err != nil {
			s.fail(w, err)
			return
		}
		if m.Files == nil {
			m.Files = []api.ResultFile{}
		}
		writeJSON(w, m)
	})
	s.handle("GET /api/v1/deployments/{id}/results/{alloc}/{volume}/chunk", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		path, off, n, err := chunkQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
		b, err := s.cfg.Results.ResultChunk(r.Context(), r.PathValue("id"), r.PathValue("alloc"), r.PathValue("volume"), path, off, n)
		if err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
}

// chunkQuery reads path, offset and length of a chunk request.
func chunkQuery(r *http.Request) (path string, off int64, n int, err error) {
	q := r.URL.Query()
	path = q.Get("path")
	if path == "" {
		return "", 0, 0, fmt.Errorf("path: required (a file of the volume's manifest)")
	}
	off, err = strconv.ParseInt(q.Get("offset"), 10, 64)
	if err != nil || off < 0 {
		return "", 0, 0, fmt.Errorf("offset: %q is not a byte offset (0 or more)", q.Get("offset"))
	}
	n, err = strconv.Atoi(q.Get("length"))
	if err != nil || n < 1 || n > api.MaxResultChunk {
		return "", 0, 0, fmt.Errorf("length: %q is not a chunk length (1 to %d)", q.Get("length"), api.MaxResultChunk)
	}
	return path, off, n, nil
}
