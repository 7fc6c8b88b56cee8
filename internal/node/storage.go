package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"

	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/storage"
	"github.com/dmsnet/dms/internal/storage/local"
	"github.com/dmsnet/dms/internal/storage/s3"
	"github.com/dmsnet/dms/internal/storage/transfer"
	"github.com/dmsnet/dms/internal/storage/web"
)

// loadCredentials reads the S3 keys the operator offers to jobs
// (storage.credentials: name → file). A missing, unreadable or bad file is
// an error naming the name and the file (never a key); all are reported
// at once.
func loadCredentials(files map[string]string) (map[string]storage.Credentials, error) {
	out := map[string]storage.Credentials{}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := files[name]
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("storage.credentials.%s: %w", name, err))
			continue
		}
		c, err := storage.ParseCredentials(b)
		clear(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("storage.credentials.%s: %s: %w", name, path, err))
			continue
		}
		out[name] = c
	}
	return out, errors.Join(errs...)
}

// storageConfig makes the node's S3 transfers (n.s3: the allocations'
// volumes and dms deployment results share them) and fills the volume part
// of the allocation manager's config: the local, s3 and web storage and
// the operator's credentials.
func (n *Node) storageConfig(c config.Storage, cfg *allocation.Config) error {
	creds, err := loadCredentials(c.Credentials)
	if err != nil {
		return err
	}
	cfg.Credentials = creds
	cfg.NodeKey = n.cfg.Key
	cfg.Mounter = localMounter{}
	n.s3 = s3.New(s3.Options{PartSize: int64(c.PartSize), Concurrency: c.Concurrency})
	cfg.ObjectStore = s3Store{n.s3}
	cfg.Fetcher = webFetcher{client: &http.Client{}}
	cfg.Results = resultReader{}
	cfg.ResultsRetention = c.ResultsRetention.D()
	return nil
}

// webFetcher is storage/web.
type webFetcher struct{ client *http.Client }

var _ allocation.Fetcher = webFetcher{}

func (w webFetcher) Fetch(ctx context.Context, rawURL, sha256hex, dir, file string, maxSize int64, p storage.ProgressFunc) error {
	return web.Fetch(ctx, w.client, rawURL, sha256hex, dir, file, maxSize, p)
}

// resultReader is storage/transfer over a result volume's directory.
type resultReader struct{}

var _ allocation.ResultReader = resultReader{}

func (resultReader) Manifest(dir string) (deployproto.ResultFiles, error) {
	m, err := transfer.BuildManifest(dir)
	if err != nil {
		return deployproto.ResultFiles{}, err
	}
	out := deployproto.ResultFiles{Files: make([]deployproto.ResultFile, len(m.Files)), Bytes: m.Bytes}
	for i, f := range m.Files {
		out.Files[i] = deployproto.ResultFile(f)
	}
	return out, nil
}

func (resultReader) Chunk(dir, path string, off int64, n int) ([]byte, error) {
	return transfer.ReadChunk(dir, path, off, n)
}

// s3Store is storage/s3 as the allocations use it.
type s3Store struct{ t *s3.Transfer }

var _ allocation.ObjectStore = s3Store{}

func (s s3Store) Download(ctx context.Context, loc allocation.S3Location, cred storage.Credentials, dir string, p storage.ProgressFunc) (allocation.TransferStats, error) {
	st, err := s.t.Download(ctx, s3.Location(loc), cred, dir, p)
	return allocation.TransferStats{Objects: st.Objects, Bytes: st.Bytes}, err
}

func (s s3Store) Upload(ctx context.Context, loc allocation.S3Location, cred storage.Credentials, dir, journal string, p storage.ProgressFunc) (allocation.TransferStats, error) {
	st, err := s.t.Upload(ctx, s3.Location(loc), cred, dir, journal, p)
	return allocation.TransferStats{Objects: st.Objects, Bytes: st.Bytes, ResentBytes: st.ResentBytes, Resumed: st.Resumed}, err
}

// localMounter is storage/local.
type localMounter struct{}

var _ allocation.Mounter = localMounter{}

func (localMounter) Mount(dir string, size int64) error { return local.Mount(dir, size) }
func (localMounter) Unmount(dir string) error           { return local.Unmount(dir) }
func (localMounter) Remove(dir string) error            { return local.Remove(dir) }

// s3Results is storage/s3 as dms deployment results reads s3 out volumes.
type s3Results struct{ t *s3.Transfer }

var _ orchestrator.S3Reader = s3Results{}

func (s s3Results) List(ctx context.Context, loc orchestrator.S3Location, cred storage.Credentials) ([]deployproto.ResultFile, error) {
	objs, err := s.t.List(ctx, s3.Location(loc), cred)
	if err != nil {
		return nil, err
	}
	out := make([]deployproto.ResultFile, len(objs))
	for i, o := range objs {
		out[i] = deployproto.ResultFile{Path: o.Path, Size: o.Size, SHA256: o.SHA256, Mode: 0o644}
	}
	return out, nil
}

func (s s3Results) ReadAt(ctx context.Context, loc orchestrator.S3Location, cred storage.Credentials, path string, off int64, n int) ([]byte, error) {
	return s.t.ReadAt(ctx, s3.Location(loc), cred, path, off, n)
}
