package allocation

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

// TestLogLayout: an allocation without volumes makes no directory of its
// own (its log is under _logs); a log of the earlier layout
// (<DataDir>/<id>/log) is read where it is after a restart; removing an
// allocation removes its log, in either layout.
func TestLogLayout(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		gone := func(p string) {
			t.Helper()
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is there (%v), want it gone", p, err)
			}
		}
		for _, id := range []string{"a1", "a2"} {
			h.mustStart(h.create(h.m, id, "r"+id, task("print=hello", "exit=0")))
			h.awaitState(id, deployproto.AllocCompleted)
			if _, err := os.Stat(filepath.Join(h.dataDir, logsDir, id)); err != nil {
				t.Errorf("log of %s: %v", id, err)
			}
			gone(filepath.Join(h.dataDir, id))
		}
		if err := h.m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		// a2 as a node of the earlier layout left it.
		old := filepath.Join(h.dataDir, "a2", "log")
		if err := os.Mkdir(filepath.Dir(old), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(h.dataDir, logsDir, "a2"), old); err != nil {
			t.Fatal(err)
		}
		h.m = h.newManager(docker(h.ex))
		if err := h.m.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a1", "a2"} {
			h.m.mu.Lock()
			hd := h.m.allocs[id].act.Handle()
			h.m.mu.Unlock()
			if stdout, _ := h.readLogs(hd); stdout != "hello\n" {
				t.Errorf("%s's log after the restart: %q, want %q", id, stdout, "hello\n")
			}
			if err := h.orch.act.Invoke(context.Background(), hd, deployproto.BehaviorStop,
				deployproto.StopRequest{Grace: time.Second, Remove: true}, nil); err != nil {
				t.Fatal(err)
			}
			gone(filepath.Join(h.dataDir, logsDir, id))
			gone(filepath.Join(h.dataDir, id))
		}
	})
}
