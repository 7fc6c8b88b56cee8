package allocation

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// putCounter counts the writes of each record.
type putCounter struct {
	*MemStore
	mu   sync.Mutex
	puts map[string]int
	// written are the states of the records written, in order.
	written []deployproto.AllocationState
}

func (s *putCounter) Put(r Record) error {
	s.mu.Lock()
	s.puts[r.ID]++
	s.written = append(s.written, r.State)
	s.mu.Unlock()
	return s.MemStore.Put(r)
}

func (s *putCounter) writesIn(state deployproto.AllocationState) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.written {
		if w == state {
			n++
		}
	}
	return n
}

func (s *putCounter) states() []deployproto.AllocationState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]deployproto.AllocationState(nil), s.written...)
}

func (s *putCounter) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[id]
}

// countedManager is a manager of a new harness whose store counts the
// writes of each record.
func countedManager(t *testing.T) (*harness, *putCounter, *Manager) {
	t.Helper()
	h := newHarness(t)
	st := &putCounter{MemStore: NewMemStore(), puts: map[string]int{}}
	m, err := New(Config{
		System: h.provSys, Executors: map[ensemble.Executor]executor.Executor{ensemble.Docker: h.ex},
		Store: st, Ledger: h.ledger, Wallet: h.wallet, Sealer: h.sealer, DataDir: t.TempDir(),
		Heartbeat: time.Hour, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return h, st, m
}

// TestCreateWritesRecordOnce: a create writes the new record once; its
// first report (queueReport) changed nothing in it (on a node each write is
// a transaction synced to disk).
func TestCreateWritesRecordOnce(t *testing.T) {
	h, st, m := countedManager(t)
	h.create(m, "a1", "r1", task("exit=0"))
	if n := st.count("a1"); n != 1 {
		t.Errorf("Create wrote the record %d times, want 1", n)
	}
	recs, err := st.List()
	if err != nil || len(recs) != 1 || recs[0].Seq == 0 {
		t.Fatalf("records %+v, %v; want a1 with its Seq ceiling", recs, err)
	}
}

// TestTaskRecordWrites: a task without volumes writes its record once as
// it starts, not again for staging when there was nothing to stage.
func TestTaskRecordWrites(t *testing.T) {
	h, st, m := countedManager(t)
	hd := h.create(m, "a1", "r1", task("exit=0"))
	h.mustStart(hd)
	h.awaitState("a1", deployproto.AllocCompleted)
	if n := st.writesIn(deployproto.AllocStarting); n != 1 {
		t.Errorf("the record was written %d times while starting, want 1 (writes: %q)", n, st.states())
	}
}
