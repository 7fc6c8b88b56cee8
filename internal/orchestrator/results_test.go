package orchestrator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/orchestrator"
)

// TestResultsOfALocalVolume: a task's local out volume is listed as ready
// once it completed, its manifest and chunks come from the provider
// through the network, and bad requests get typed errors.
func TestResultsOfALocalVolume(t *testing.T) {
	w := newWorld(t, 2, worldOpts{})
	w.nodes[0].ledger.Offboard()
	orch := w.nodes[0].svc
	d := w.submit(`version: v1
allocations:
  job:
    executor: docker
    resources: {cpu: 0.5, ram: 64MiB}
    execution: {image: workload, cmd: [workload, "write=/results/answer.txt:42"]}
    volumes:
      results: {path: /results, mode: out}
      scratch: {path: /scratch}
`)
	waitState(t, orch, d.ID, orchestrator.Completed)
	ctx := context.Background()
	vols, err := orch.Results(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 1 || vols[0].Allocation != "job" || vols[0].Volume != "results" || !vols[0].Ready || vols[0].Provider != w.nodes[1].host.Self() {
		t.Fatalf("results %+v, want the one out volume, ready, on the provider", vols)
	}
	m, err := orch.ResultManifest(ctx, d.ID, "job", "results")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("42"))
	if len(m.Files) != 1 || m.Files[0].Path != "answer.txt" || m.Files[0].Size != 2 || m.Files[0].SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != 2 {
		t.Fatalf("manifest %+v", m)
	}
	b, err := orch.ResultChunk(ctx, d.ID, "job", "results", "answer.txt", 0, 1<<20)
	if err != nil || string(b) != "42" {
		t.Fatalf("chunk %q, %v", b, err)
	}
	cases := []struct {
		name, alloc, volume, path string
		off                       int64
		n                         int
		want                      error
		msg                       string
	}{
		{"not an out volume", "job", "scratch", "x", 0, 10, orchestrator.ErrNotFound, "no out volume scratch"},
		{"no such allocation", "web", "results", "x", 0, 10, orchestrator.ErrNotFound, "allocation web"},
		{"negative offset", "job", "results", "answer.txt", -1, 10, orchestrator.ErrBadChunk, "offset"},
		{"too long", "job", "results", "answer.txt", 0, deployproto.MaxResultsChunk + 1, orchestrator.ErrBadChunk, "bytes"},
		{"escape", "job", "results", "../../../etc/passwd", 0, 10, nil, "results of job/results"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := orch.ResultChunk(ctx, d.ID, tc.alloc, tc.volume, tc.path, tc.off, tc.n)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := orch.Results(ctx, "dnope"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Fatalf("results of an unknown deployment: %v", err)
	}

	// The provider goes silent: the volume is not ready, and says why.
	w.nodes[1].host.SetDown(true)
	vols, err = orch.Results(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 1 || vols[0].Ready || !strings.Contains(vols[0].Reason, "does not answer") {
		t.Fatalf("results with the provider down: %+v", vols)
	}
	if _, err := orch.ResultManifest(ctx, d.ID, "job", "results"); !errors.Is(err, orchestrator.ErrNotReady) {
		t.Fatalf("manifest with the provider down: %v, want ErrNotReady", err)
	}
}
