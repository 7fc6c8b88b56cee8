package logs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func testSink(t *testing.T, es *fakeES, dir string, mod func(*SinkConfig)) *Sink {
	t.Helper()
	cfg := SinkConfig{
		URL: es.url(), Index: "dms-logs", Batch: 50, FlushInterval: 20 * time.Millisecond,
		SpoolDir: dir, SpoolSize: 1 << 20, Node: "12D3KooWTest",
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logN logs n records "prefix-i" through a logger teed to s, one
// millisecond of slack between bursts is not needed: the queue holds them.
func logN(t *testing.T, s *Sink, prefix string, n int) []string {
	t.Helper()
	log := slog.New(WithTrace(s.Handler()))
	var want []string
	for i := range n {
		m := fmt.Sprintf("%s-%d", prefix, i)
		log.Info(m, "deployment", "dep1")
		want = append(want, m)
		if i%500 == 499 { // let the writer keep up with the queue
			waitFor(t, "queue drained", 5*time.Second, func() bool { return len(s.queue) == 0 })
		}
	}
	return want
}

func TestSinkRecordFields(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), nil)
	log := slog.New(WithTrace(s.Handler()))
	tid, _ := trace.TraceIDFromHex("0123456789abcdef0123456789abcdef")
	sid, _ := trace.SpanIDFromHex("0123456789abcdef")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 1}))
	log.InfoContext(ctx, "placed", "deployment", "d-1", "alloc", "a-1", "kind", "restart", "token", "s3cr3t", "message", "no heartbeat")
	s.Allocation(AllocationLine{Deployment: "d-1", Allocation: "a-1", Stream: "stdout", Line: "hello"})
	waitFor(t, "2 documents", 5*time.Second, func() bool { return es.count() == 2 })
	es.mu.Lock()
	defer es.mu.Unlock()
	node, alloc := es.docs[es.order[0]], es.docs[es.order[1]]
	for k, want := range map[string]string{
		"message": "placed", "deployment_id": "d-1", "allocation_id": "a-1", "trace_id": tid.String(),
		"span_id": sid.String(), "kind": "node", "node_id": "12D3KooWTest", "event_kind": "restart", "token": Redacted, "level": "INFO", "event_message": "no heartbeat",
	} {
		if got := fmt.Sprint(node[k]); got != want {
			t.Errorf("node record %s = %q, want %q (%v)", k, got, want, node)
		}
	}
	if _, ok := node["@timestamp"]; !ok {
		t.Errorf("node record has no @timestamp: %v", node)
	}
	for k, want := range map[string]string{
		"message": "hello", "deployment_id": "d-1", "allocation_id": "a-1", "kind": "allocation", "stream": "stdout",
	} {
		if got := fmt.Sprint(alloc[k]); got != want {
			t.Errorf("allocation record %s = %q, want %q", k, got, want)
		}
	}
	if es.order[0] != "12D3KooWTest-"+s.spool.epoch+"-1" {
		t.Errorf("first id %q, want <node>-<epoch>-1", es.order[0])
	}
}

// TestSinkItems: per-item answers. 409 is done, 429 and 5xx are sent
// again (only those), other 4xx are dropped and counted.
func TestSinkItems(t *testing.T) {
	es := newFakeES(t)
	tries := map[string]int{}
	es.set(func(f *fakeES) {
		f.item = func(doc map[string]any) int {
			m := fmt.Sprint(doc["message"])
			tries[m]++
			switch m {
			case "r-3":
				return 400 // mapping error: never accepted
			case "r-5":
				if tries[m] < 3 {
					return 429
				}
			case "r-7":
				if tries[m] < 2 {
					return 503
				}
			}
			return 0
		}
	})
	s := testSink(t, es, t.TempDir(), nil)
	want := logN(t, s, "r", 10)
	waitFor(t, "all shipped", 5*time.Second, func() bool { st := s.Stats(); return st.Shipped+st.DroppedRejected == 10 })
	st := s.Stats()
	if st.DroppedRejected != 1 || st.Shipped != 9 || st.Retried != 3 {
		t.Errorf("stats %+v: want 9 shipped, 1 rejected, 3 retried", st)
	}
	exactlyOnce(t, es.messages(), append(want[:3:3], want[4:]...))
	es.mu.Lock()
	defer es.mu.Unlock()
	if tries["r-0"] != 1 || tries["r-5"] != 3 || tries["r-7"] != 2 {
		t.Errorf("attempts %v: want only the 429 and 5xx items sent again", tries)
	}
}

// TestSinkIdempotent: the store kept a batch but its answer was lost; the
// batch sent again is answered 409 and nothing is duplicated.
func TestSinkIdempotent(t *testing.T) {
	es := newFakeES(t)
	es.set(func(f *fakeES) { f.lie = 2 })
	s := testSink(t, es, t.TempDir(), nil)
	want := logN(t, s, "i", 30)
	waitFor(t, "all shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 30 })
	exactlyOnce(t, es.messages(), want)
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.conflict == 0 {
		t.Errorf("no 409: the retry did not hit the documents already stored")
	}
}

// TestSinkBackoff: whole-request failures (5xx, 429, 401) are retried
// until the store takes the records.
func TestSinkBackoff(t *testing.T) {
	for _, status := range []int{503, 429, 401} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			es := newFakeES(t)
			es.set(func(f *fakeES) { f.status = status })
			s := testSink(t, es, t.TempDir(), nil)
			want := logN(t, s, "b", 20)
			waitFor(t, "retries", 5*time.Second, func() bool { return s.Stats().Retried >= 40 })
			es.set(func(f *fakeES) { f.status = 0 })
			waitFor(t, "all shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 20 })
			exactlyOnce(t, es.messages(), want)
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	s := &Sink{cfg: SinkConfig{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}}
	for attempt, max := range map[int]time.Duration{0: 500 * time.Millisecond, 1: time.Second, 3: 4 * time.Second, 10: 30 * time.Second, 100: 30 * time.Second} {
		for range 50 {
			if d := s.backoff(attempt); d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, d, max/2, max)
			}
		}
	}
}

// TestSinkDownThenBack: the endpoint is down while records are logged;
// once it is back every record is stored exactly once.
func TestSinkDownThenBack(t *testing.T) {
	es := newFakeES(t)
	es.set(func(f *fakeES) { f.down = true })
	s := testSink(t, es, t.TempDir(), nil)
	want := logN(t, s, "d", 400)
	waitFor(t, "spooled", 5*time.Second, func() bool { st := s.Stats(); return st.Pending+50 >= 400 && st.Retried > 0 })
	es.set(func(f *fakeES) { f.down = false })
	waitFor(t, "all shipped", 10*time.Second, func() bool { return s.Stats().Shipped == 400 })
	exactlyOnce(t, es.messages(), want)
	if st := s.Stats(); st.DroppedQueue+st.DroppedSpool+st.DroppedRejected != 0 {
		t.Errorf("stats %+v: nothing should be dropped", st)
	}
}

// TestSinkSpoolBound: with the store down the spool stays within its
// bound; the oldest records go and are counted; the rest arrive.
func TestSinkSpoolBound(t *testing.T) {
	es := newFakeES(t)
	es.set(func(f *fakeES) { f.down = true })
	const bound = 64 << 10
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) { c.SpoolSize = bound; c.Batch = 10 })
	want := logN(t, s, "s", 3000)
	waitFor(t, "queue written", 5*time.Second, func() bool { return len(s.queue) == 0 && s.Stats().DroppedSpool > 0 })
	st := s.Stats()
	if st.SpoolBytes > bound {
		t.Errorf("spool %d bytes, bound %d", st.SpoolBytes, bound)
	}
	es.set(func(f *fakeES) { f.down = false })
	waitFor(t, "the rest shipped", 10*time.Second, func() bool {
		st := s.Stats()
		return st.Pending == 0 && st.Shipped+st.DroppedSpool >= 3000
	})
	st = s.Stats()
	got := es.messages()
	if uint64(len(got)) != st.Shipped || st.Shipped+st.DroppedSpool != 3000 || st.DroppedQueue != 0 {
		t.Fatalf("stats %+v, %d stored: want shipped + dropped_spool = 3000", st, len(got))
	}
	// The newest records survive, besides the batch the shipper held when
	// the spool dropped its oldest segments: the first batch, or a later
	// one read from what was then the oldest segment left. So got is at
	// most one batch (10) of consecutive older records, then the newest.
	idx := make([]int, 0, len(got))
	for _, m := range got {
		var i int
		if _, err := fmt.Sscanf(m, "s-%d", &i); err != nil {
			t.Fatalf("stored %q: not one of the records", m)
		}
		idx = append(idx, i)
	}
	held := -1
	for k := 0; k <= 10 && held < 0; k++ {
		n := 0
		for _, i := range idx {
			if i < 3000-(len(got)-k) {
				n++
			}
		}
		if n == k {
			held = k
		}
	}
	if held < 0 {
		t.Fatalf("stored %d documents: not one held batch and the newest records", len(got))
	}
	var heldBatch []string
	first := -1
	for _, i := range idx {
		if i < 3000-(len(got)-held) && (first < 0 || i < first) {
			first = i
		}
	}
	for i := first; held > 0 && i < first+held; i++ {
		heldBatch = append(heldBatch, want[i])
	}
	exactlyOnce(t, got, append(heldBatch, want[3000-len(got)+held:]...))
}

// TestSinkRestart: records spooled while the store was down are sent by the
// next sink on the same spool, and records already sent are not sent again.
func TestSinkRestart(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	s := testSink(t, es, dir, nil)
	first := logN(t, s, "a", 100)
	waitFor(t, "first shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 100 })
	es.set(func(f *fakeES) { f.down = true })
	second := logN(t, s, "b", 100)
	waitFor(t, "second spooled", 5*time.Second, func() bool { return s.Stats().Pending+50 >= 100 && s.Stats().Retried > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	es.set(func(f *fakeES) { f.down = false })
	s2 := testSink(t, es, dir, nil)
	third := logN(t, s2, "c", 100)
	waitFor(t, "all shipped", 5*time.Second, func() bool { return es.count() == 300 && s2.Stats().Pending == 0 })
	exactlyOnce(t, es.messages(), append(append(first, second...), third...))
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.conflict != 0 {
		t.Errorf("%d documents sent again after the restart", es.conflict)
	}
}

// TestSinkBasicAuth: username and password go as HTTP basic auth.
func TestSinkBasicAuth(t *testing.T) {
	es := newFakeES(t)
	es.set(func(f *fakeES) { f.user, f.pass = "dms", "pw" })
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) { c.Username, c.Password = "dms", "pw" })
	want := logN(t, s, "u", 5)
	waitFor(t, "shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 5 })
	exactlyOnce(t, es.messages(), want)
}

// failingFile fails every write with ENOSPC.
type failingFile struct{ *os.File }

func (failingFile) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestSinkDiskFull: a spool that cannot be written drops records and
// counts them; the node is not blocked and the sink recovers.
func TestSinkDiskFull(t *testing.T) {
	es := newFakeES(t)
	var logged atomic.Int32
	h := slog.NewTextHandler(countWriter{&logged}, &slog.HandlerOptions{Level: slog.LevelWarn})
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) { c.Logger = slog.New(h) })
	s.spool.mu.Lock()
	s.spool.create = func(path string) (segFile, error) {
		f, err := createSegment(path)
		if err != nil {
			return nil, err
		}
		return failingFile{f.(*os.File)}, nil
	}
	s.spool.broken = true
	s.spool.mu.Unlock()
	logN(t, s, "full", 200)
	waitFor(t, "drops counted", 5*time.Second, func() bool { return s.Stats().DroppedSpool == 200 })
	if st := s.Stats(); st.SpoolErrors == 0 || st.Shipped != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := logged.Load(); n != 1 {
		t.Errorf("the sink logged %d lines about the full disk, want 1", n)
	}
	s.spool.mu.Lock()
	s.spool.create = createSegment
	s.spool.mu.Unlock()
	want := logN(t, s, "ok", 10)
	waitFor(t, "shipped again", 5*time.Second, func() bool { return s.Stats().Shipped == 10 })
	exactlyOnce(t, es.messages(), want)
}

type countWriter struct{ n *atomic.Int32 }

func (w countWriter) Write(p []byte) (int, error) { w.n.Add(1); return len(p), nil }

// TestSinkQueueFull: when the writer cannot keep up, records are dropped
// and counted rather than the caller blocked.
func TestSinkQueueFull(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) { c.Queue = 4 })
	s.spool.mu.Lock() // the writer blocks on the spool
	log := slog.New(s.Handler())
	for i := range 100 {
		log.Info("q", "i", i)
	}
	s.spool.mu.Unlock()
	if st := s.Stats(); st.DroppedQueue < 90 {
		t.Errorf("dropped_queue %d, want at least 90 of 100", st.DroppedQueue)
	}
}

func TestNewSinkErrors(t *testing.T) {
	for _, c := range []SinkConfig{
		{URL: "ftp://x", Index: "i", Node: "n", SpoolDir: t.TempDir()},
		{URL: "http://u:p@x", Index: "i", Node: "n", SpoolDir: t.TempDir()},
		{URL: "http://x", Node: "n", SpoolDir: t.TempDir()},
		{URL: "http://x", Index: "i", Node: "n", SpoolDir: filepath.Join(t.TempDir(), "f"), SpoolSize: 3},
	} {
		if s, err := NewSink(c); err == nil {
			s.Close()
			t.Errorf("NewSink(%+v): no error", c)
		}
	}
}

// TestAllocationWriter: output chunks become one record per line; a long
// line is cut; a last line without a newline is sent at Close.
func TestAllocationWriter(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), nil)
	w := s.AllocationWriter("d1", "a1", "web", "stderr")
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r\n\nthree"))
	w.Write([]byte(strings.Repeat("x", maxLine+10) + "\n"))
	w.Write([]byte("last"))
	w.Close()
	want := []string{"one", "two", "", "three" + strings.Repeat("x", maxLine-5), strings.Repeat("x", 15), "last"}
	waitFor(t, "lines", 5*time.Second, func() bool { return es.count() == len(want) })
	got := es.messages()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %.20q (%d bytes), want %.20q (%d bytes)", i, got[i], len(got[i]), want[i], len(want[i]))
		}
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	d := es.docs[es.order[0]]
	if d["kind"] != "allocation" || d["stream"] != "stderr" || d["allocation_name"] != "web" || d["deployment_id"] != "d1" || d["allocation_id"] != "a1" {
		t.Errorf("record %v", d)
	}
}

// TestSinkCloseFlushes: records logged just before Close reach the store
// (Close's last attempt), without waiting for the flush interval.
func TestSinkCloseFlushes(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) { c.FlushInterval = time.Hour })
	want := logN(t, s, "late", 7)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, es.messages(), want)
	if st := s.Stats(); st.Pending != 0 || st.Shipped != 7 {
		t.Errorf("stats %+v", st)
	}
}

// TestSinkRefused: a store URL that refuses connections is retried with
// backoff and logged once; when a store listens there, everything arrives
// exactly once.
func TestSinkRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connections are refused
	var warned atomic.Int32
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), func(c *SinkConfig) {
		c.URL = "http://" + addr + "/es"
		c.Logger = slog.New(slog.NewTextHandler(countWriter{&warned}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	want := logN(t, s, "refused", 60)
	waitFor(t, "retries", 5*time.Second, func() bool { return s.Stats().Retried >= 120 })
	if n := warned.Load(); n != 1 {
		t.Errorf("%d warnings about the refused connections, want 1", n)
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(es.serve)}
	go srv.Serve(l)
	defer srv.Close()
	waitFor(t, "all shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 60 })
	exactlyOnce(t, es.messages(), want)
}

// TestSinkTooLarge: a record larger than MaxRecord is dropped and counted,
// not cut into invalid JSON.
func TestSinkTooLarge(t *testing.T) {
	es := newFakeES(t)
	s := testSink(t, es, t.TempDir(), nil)
	log := slog.New(s.Handler())
	log.Info("huge", "blob", strings.Repeat("x", MaxRecord))
	log.Info("small")
	waitFor(t, "small shipped", 5*time.Second, func() bool { return s.Stats().Shipped == 1 })
	if st := s.Stats(); st.DroppedRejected != 1 {
		t.Errorf("stats %+v: want the huge record dropped and counted", st)
	}
	exactlyOnce(t, es.messages(), []string{"small"})
}
