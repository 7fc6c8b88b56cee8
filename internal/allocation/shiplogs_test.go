package allocation

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// shipped collects what Config.ShipLogs writers receive.
type shipped struct {
	mu    sync.Mutex
	got   []string // "deployment/allocation/name/stream:data"
	close int
}

type shipWriter struct {
	s   *shipped
	tag string
}

func (w shipWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.got = append(w.s.got, w.tag+":"+string(bytes.TrimSpace(p)))
	return len(p), nil
}

func (w shipWriter) Close() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.close++
	return nil
}

// TestShipLogs: the output of an allocation whose spec asks for it goes to
// Config.ShipLogs as well as to its log; others' does not.
func TestShipLogs(t *testing.T) {
	inBubble(t, func(t *testing.T, h *harness) {
		var s shipped
		m, err := New(Config{
			System: h.provSys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex},
			Store: h.store, Ledger: h.ledger, Wallet: h.wallet, Sealer: h.sealer, DataDir: h.dataDir,
			Logger: testLogger(), Subnets: h.subnets,
			ShipLogs: func(dep, id, name, stream string) io.WriteCloser {
				return shipWriter{&s, dep + "/" + id + "/" + name + "/" + stream}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		h.managers = append(h.managers, m)
		on := task("print=hello", "eprint=oops")
		on.ShipLogs = true
		a1 := h.create(m, "a1", "r1", on)
		a2 := h.create(m, "a2", "r2", task("print=quiet"))
		h.mustStart(a1)
		h.mustStart(a2)
		h.awaitState("a1", deployproto.AllocCompleted)
		h.awaitState("a2", deployproto.AllocCompleted)
		if out, errs := h.readLogs(a1); out != "hello\n" || errs != "oops\n" {
			t.Errorf("a1's log: %q %q", out, errs)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		slices.Sort(s.got)
		if want := []string{"dep1/a1/job/stderr:oops", "dep1/a1/job/stdout:hello"}; !slices.Equal(s.got, want) {
			t.Errorf("shipped %q, want %q", s.got, want)
		}
		if s.close != 2 {
			t.Errorf("%d writers closed, want 2", s.close)
		}
	})
}
