package allocation

import (
	"bytes"
	"crypto/rand"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
)

// wasmTask returns a wasm allocation of module (a digest); the fake
// executor runs its args as script steps.
func wasmTask(module string, args ...string) deployproto.AllocationSpec {
	return deployproto.AllocationSpec{
		Name:      "mod",
		Type:      ensemble.Task,
		Executor:  ensemble.Wasm,
		Execution: ensemble.Execution{Module: module, Args: args, Env: ensemble.Env{"K": "v"}},
	}
}

func TestArtifactFetchedOnce(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		module := make([]byte, 2*deployproto.ArtifactChunkSize+123) // three chunks
		rand.Read(module)
		digest := h.orch.serve(module)

		a1 := h.create(h.m, "a1", "r1", wasmTask(digest, "print=one"))
		a2 := h.create(h.m, "a2", "r1", wasmTask(digest, "print=two"))
		// Both start at once: one fetch serves both.
		h.mustStart(a1)
		h.mustStart(a2)
		h.awaitState("a1", deployproto.AllocCompleted)
		h.awaitState("a2", deployproto.AllocCompleted)
		if n := h.orch.artifactRequests(digest); n != 3 {
			t.Errorf("%d chunk requests, want 3 (one fetch of 3 chunks)", n)
		}
		// A later allocation finds it cached.
		a3 := h.create(h.m, "a3", "r2", wasmTask(digest, "print=three"))
		h.mustStart(a3)
		h.awaitState("a3", deployproto.AllocCompleted)
		if n := h.orch.artifactRequests(digest); n != 3 {
			t.Errorf("%d chunk requests after a third allocation, want still 3", n)
		}
		specs := h.startedSpecs()
		if len(specs) != 3 {
			t.Fatalf("%d starts, want 3", len(specs))
		}
		var argv [][]string
		for _, s := range specs {
			if !bytes.Equal(s.Module, module) {
				t.Errorf("module given to the executor differs (%d bytes)", len(s.Module))
			}
			if s.Env["K"] != "v" || s.Resources.PIDs != 0 {
				t.Errorf("env %v, pids %d; want K=v and no pids limit for wasm", s.Env, s.Resources.PIDs)
			}
			argv = append(argv, s.Argv())
		}
		if !slices.ContainsFunc(argv, func(a []string) bool { return slices.Equal(a, []string{"mod", "print=three"}) }) {
			t.Errorf("argv = %q, want [mod print=three] among them (argv[0] is the allocation name)", argv)
		}
		if out, _ := h.readLogs(a3); out != "three\n" {
			t.Errorf("logs = %q", out)
		}
		left, _ := os.ReadDir(h.m.cfg.ArtifactDir)
		if len(left) != 1 || left[0].Name() != strings.TrimPrefix(digest, "sha256:") {
			t.Errorf("artifact dir holds %v, want the one module", left)
		}
	})
}

func TestArtifactRefused(t *testing.T) {
	tests := []struct {
		name  string
		serve func(h *harness) string // returns the reference the allocation uses
		want  string
	}{
		{
			name: "digest mismatch",
			serve: func(h *harness) string {
				d := h.orch.serve([]byte("the real module"))
				h.orch.serveAs(d, []byte("something else"))
				return d
			},
			want: "digest mismatch",
		},
		{
			name:  "unknown to the orchestrator",
			serve: func(h *harness) string { return "sha256:" + strings.Repeat("0", 64) },
			want:  "no artifact",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, h *harness) {
				ref := tc.serve(h)
				spec := wasmTask(ref, "print=x")
				hd := h.create(h.m, "a1", "r1", spec)
				h.mustStart(hd)
				r := h.awaitState("a1", deployproto.AllocFailed)
				if !strings.Contains(r.Message, tc.want) || r.Result == nil || !strings.Contains(r.Result.Error, tc.want) {
					t.Errorf("final report %q / %+v, want it to say %q", r.Message, r.Result, tc.want)
				}
				if n := len(h.startedSpecs()); n != 0 {
					t.Errorf("%d instances started, want none", n)
				}
				left, _ := os.ReadDir(h.m.cfg.ArtifactDir)
				if len(left) != 0 {
					t.Errorf("artifact dir holds %v, want nothing", left)
				}
			})
		})
	}
}
