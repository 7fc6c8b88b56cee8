package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// serve returns a get function that serves data in chunks of size n, as
// an orchestrator's onArtifact does.
func serve(data []byte, n int) func(context.Context, int64) (deployproto.ArtifactChunk, error) {
	return func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
		end := min(int64(len(data)), off+int64(n))
		return deployproto.ArtifactChunk{Data: data[off:end], Size: int64(len(data))}, nil
	}
}

func TestFetchArtifact(t *testing.T) {
	small := []byte("a wasm module")
	big := bytes.Repeat([]byte("0123456789abcdef"), deployproto.ArtifactChunkSize/16+100)
	tests := []struct {
		name   string
		digest string
		max    int64
		get    func(context.Context, int64) (deployproto.ArtifactChunk, error)
		want   []byte
		err    string
	}{
		{"one chunk", digestOf(small), 1 << 20, serve(small, deployproto.ArtifactChunkSize), small, ""},
		{"several chunks", digestOf(big), 1 << 30, serve(big, deployproto.ArtifactChunkSize), big, ""},
		{"empty artifact", digestOf(nil), 1 << 20, serve(nil, deployproto.ArtifactChunkSize), []byte{}, ""},
		{"other content", digestOf([]byte("expected")), 1 << 20, serve(small, deployproto.ArtifactChunkSize), nil, "served content " + digestOf(small)},
		{"too large", digestOf(small), 4, serve(small, deployproto.ArtifactChunkSize), nil, "outside 0-4"},
		{"negative size", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Size: -1}, nil
		}, nil, "outside"},
		{"oversized chunk", digestOf(big), 1 << 30, serve(big, deployproto.ArtifactChunkSize+1), nil, "exceeds"},
		{"overrun", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Data: small, Size: 3}, nil
		}, nil, "overruns"},
		{"empty chunk", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Size: int64(len(small))}, nil
		}, nil, "empty chunk"},
		{"size changes", digestOf(small), 1 << 20, func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{Data: small[off : off+1], Size: int64(len(small)) + off}, nil
		}, nil, "size changed"},
		{"refused", digestOf(small), 1 << 20, func(context.Context, int64) (deployproto.ArtifactChunk, error) {
			return deployproto.ArtifactChunk{}, errors.New("no such artifact")
		}, nil, "no such artifact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fetchArtifact(context.Background(), tt.digest, tt.max, tt.get)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("fetchArtifact = %d bytes, %v; want an error with %q", len(got), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("fetched %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// FuzzFetchArtifact serves arbitrary chunks: no panic, and what is
// accepted is exactly the content of the digest.
func FuzzFetchArtifact(f *testing.F) {
	f.Add([]byte("a module"), int64(8), int64(0), 3)
	f.Add([]byte("a module"), int64(100), int64(-5), 1)
	f.Add([]byte{}, int64(0), int64(0), 1)
	want := []byte("a module")
	digest := digestOf(want)
	f.Fuzz(func(t *testing.T, data []byte, size, shift int64, n int) {
		calls := 0
		get := func(_ context.Context, off int64) (deployproto.ArtifactChunk, error) {
			calls++
			if calls > 64 {
				return deployproto.ArtifactChunk{}, errors.New("enough")
			}
			lo := min(max(off+shift, 0), int64(len(data)))
			hi := min(lo+int64(max(n, 0)), int64(len(data)))
			return deployproto.ArtifactChunk{Data: data[lo:hi], Size: size}, nil
		}
		got, err := fetchArtifact(context.Background(), digest, 1<<20, get)
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("accepted %q for the digest of %q", got, want)
		}
	})
}
