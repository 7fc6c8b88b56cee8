package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// ResultVolume is an out (or inout) volume of a deployment's allocation:
// what `dms deployment results` fetches.
type ResultVolume struct {
	Allocation string `json:"allocation"`
	Volume     string `json:"volume"`
	Kind       string `json:"kind"` // local or s3
	Mode       string `json:"mode"` // out or inout
	// Provider is the peer ID of the provider that ran the allocation
	// (and, for a local volume, keeps its files).
	Provider string `json:"provider,omitempty"`
	// Bucket, Endpoint and Prefix say where an s3 volume's objects are
	// (the prefix the allocation used); never its credentials.
	Bucket   string `json:"bucket,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	// Ready says whether the volume can be fetched now; Reason says why
	// not (the allocation still runs, or has not uploaded yet).
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// ResultFile is one file of a result volume.
type ResultFile struct {
	Path   string `json:"path"` // slash-separated, relative to the volume
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// ResultManifest lists the files of a result volume.
type ResultManifest struct {
	Files []ResultFile `json:"files"`
	Bytes int64        `json:"bytes"`
}

// MaxResultChunk bounds one chunk of a result file.
const MaxResultChunk = 1 << 20

func resultsPath(id string, rest ...string) string {
	p := "/api/v1/deployments/" + url.PathEscape(id) + "/results"
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Results lists the out volumes of a deployment's allocations.
func (c *Client) Results(ctx context.Context, id string) ([]ResultVolume, error) {
	var vs []ResultVolume
	return vs, c.do(ctx, http.MethodGet, resultsPath(id), nil, &vs)
}

// ResultManifest lists the files of one result volume.
func (c *Client) ResultManifest(ctx context.Context, id, alloc, volume string) (*ResultManifest, error) {
	var m ResultManifest
	return &m, c.do(ctx, http.MethodGet, resultsPath(id, alloc, volume, "manifest"), nil, &m)
}

// ResultChunk reads up to n bytes (at most MaxResultChunk) of a result file
// at off.
func (c *Client) ResultChunk(ctx context.Context, id, alloc, volume, path string, off int64, n int) ([]byte, error) {
	q := url.Values{"path": {path}, "offset": {strconv.FormatInt(off, 10)}, "length": {strconv.Itoa(n)}}
	body, err := c.stream(ctx, http.MethodGet, resultsPath(id, alloc, volume, "chunk")+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, MaxResultChunk+1))
	if err != nil {
		return nil, err
	}
	if len(b) > n || len(b) > MaxResultChunk {
		return nil, fmt.Errorf("chunk of %s: %d bytes, more than the %d asked", path, len(b), n)
	}
	return b, nil
}
