package allocation

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// putCounter counts the writes of each record.
type putCounter struct {
	*MemStore
	mu   sync.Mutex
	puts map[string]int
}

func (s *putCounter) Put(r Record) error {
	s.mu.Lock()
	s.puts[r.ID]++
	s.mu.Unlock()
	return s.MemStore.Put(r)
}

func (s *putCounter) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[id]
}

// TestCreateWritesRecordOnce: a create writes the new record once; its
// first report (queueReport) changed nothing in it (on a node each write is
// a transaction synced to disk).
func TestCreateWritesRecordOnce(t *testing.T) {
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
	h.create(m, "a1", "r1", task("exit=0"))
	if n := st.count("a1"); n != 1 {
		t.Errorf("Create wrote the record %d times, want 1", n)
	}
	recs, err := st.List()
	if err != nil || len(recs) != 1 || recs[0].Seq == 0 {
		t.Fatalf("records %+v, %v; want a1 with its Seq ceiling", recs, err)
	}
}
