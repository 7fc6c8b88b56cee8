package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dmsnet/dms/internal/store"
)

// The local record: every sampled span this node finished, kept in the
// node's store so that `dms deployment trace` works without a collector.
//
//	spans      <trace id>/<start, 16 hex digits of Unix ns>/<span id> → SpanRecord
//	span-ends  <end, 16 hex digits of Unix ns>/<key in spans>         → its key
//
// Spans of one trace are one key prefix, oldest first; span-ends orders
// the records by end for pruning: after Retention, and the oldest beyond
// MaxSpans. OnEnd puts a span in a bounded queue without waiting (full:
// dropped and counted); one goroutine writes the queue in batches, one
// transaction (one fsync) per batch.
var (
	spanKind    = store.NewKind("spans", recordKey)
	spanEndKind = store.NewKind("span-ends", func(e spanEnd) string { return e.Key })
)

type spanEnd struct {
	Key string `json:"k"`
}

func hexTime(t time.Time) string {
	s := strconv.FormatUint(uint64(t.UnixNano()), 16)
	return "0000000000000000"[len(s):] + s
}

func recordKey(r SpanRecord) string {
	return r.TraceID + "/" + hexTime(r.Start) + "/" + r.SpanID
}

// recordBatch is the most spans written in one transaction.
const recordBatch = 4096

type localRecord struct {
	t     *Tracing
	db    *store.DB
	queue chan sdktrace.ReadOnlySpan
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// stored is the number of records, kept up to date by the writer.
	stored atomic.Int64
	now    func() time.Time
}

var _ sdktrace.SpanProcessor = (*localRecord)(nil)

func openLocal(t *Tracing, db *store.DB) (*localRecord, error) {
	l := &localRecord{
		t:     t,
		db:    db,
		queue: make(chan sdktrace.ReadOnlySpan, t.cfg.Queue),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		now:   time.Now,
	}
	if err := l.prune(l.now()); err != nil {
		return nil, fmt.Errorf("telemetry: local record of spans: %w", err)
	}
	go l.run()
	return l, nil
}

func (l *localRecord) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span for the record; never blocks.
func (l *localRecord) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-l.stop:
		l.t.recordDropped.Add(1)
		return
	default:
	}
	select {
	case l.queue <- s:
	default:
		l.t.recordDropped.Add(1)
	}
}

// pruneEvery is how often the record is pruned for age.
func (l *localRecord) pruneEvery() time.Duration {
	return min(max(l.t.cfg.Retention/20, time.Second), 5*time.Minute)
}

func (l *localRecord) run() {
	defer close(l.done)
	tick := time.NewTicker(l.pruneEvery())
	defer tick.Stop()
	// A batch is written when it is full or RecordInterval after its
	// first span: one transaction (one fsync, the pages it dirties
	// rewritten once) for many spans.
	batchSpans(l.queue, l.flush, l.stop, recordBatch, l.t.cfg.RecordInterval, l.write, tick.C, l.pruneLogged)
}

// write stores a batch in one transaction; beyond MaxSpans it prunes.
func (l *localRecord) write(batch []sdktrace.ReadOnlySpan) {
	if len(batch) == 0 {
		return
	}
	node := l.t.cfg.InstanceID
	err := l.db.Update(func(tx *store.Tx) error {
		for _, s := range batch {
			r := toRecord(s, node)
			key := recordKey(r)
			if err := spanKind.Put(tx, r); err != nil {
				return err
			}
			if err := spanEndKind.Put(tx, spanEnd{Key: hexTime(r.End) + "/" + key}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.t.recordErrors.Add(1)
		l.t.recordDropped.Add(uint64(len(batch)))
		l.t.log.Warn("spans not recorded", "spans", len(batch), "err", err)
		return
	}
	l.t.recorded.Add(uint64(len(batch)))
	// Prune in steps of a tenth, not at every batch past the bound.
	if n := l.stored.Add(int64(len(batch))); n > int64(l.t.cfg.MaxSpans+l.t.cfg.MaxSpans/10) {
		l.pruneLogged()
	}
}

func (l *localRecord) pruneLogged() {
	if err := l.prune(l.now()); err != nil {
		l.t.log.Warn("span record not pruned", "err", err)
	}
}

// prune deletes the records that ended before now-Retention, and the
// oldest beyond MaxSpans.
func (l *localRecord) prune(now time.Time) error {
	cutoff := hexTime(now.Add(-l.t.cfg.Retention))
	var left int
	err := l.db.Update(func(tx *store.Tx) error {
		ends, err := spanEndKind.List(tx, "")
		if err != nil {
			return err
		}
		over := len(ends) - l.t.cfg.MaxSpans
		i := 0
		for ; i < len(ends); i++ {
			e := ends[i].Key
			if i >= over && e[:16] >= cutoff {
				break
			}
			if err := spanKind.Delete(tx, e[17:]); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := spanEndKind.Delete(tx, e); err != nil {
				return err
			}
		}
		l.t.pruned.Add(uint64(i))
		left = len(ends) - i
		return nil
	})
	if err == nil {
		l.stored.Store(int64(left))
	}
	return err
}

func (l *localRecord) ForceFlush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case l.flush <- reply:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown writes what is queued (until ctx is done; the writer finishes
// its batch after) and stops.
func (l *localRecord) Shutdown(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// toRecord converts a finished span; attribute values become strings.
func toRecord(s sdktrace.ReadOnlySpan, node string) SpanRecord {
	sc := s.SpanContext()
	r := SpanRecord{
		TraceID: sc.TraceID().String(),
		SpanID:  sc.SpanID().String(),
		Name:    s.Name(),
		Node:    node,
		Start:   s.StartTime(),
		End:     s.EndTime(),
	}
	if p := s.Parent(); p.IsValid() {
		r.ParentID = p.SpanID().String()
	}
	if attrs := s.Attributes(); len(attrs) > 0 {
		r.Attrs = make(map[string]string, len(attrs))
		for _, kv := range attrs {
			r.Attrs[string(kv.Key)] = kv.Value.Emit()
		}
	}
	for _, ev := range s.Events() {
		e := SpanEvent{Time: ev.Time, Name: ev.Name}
		if len(ev.Attributes) > 0 {
			e.Attrs = make(map[string]string, len(ev.Attributes))
			for _, kv := range ev.Attributes {
				e.Attrs[string(kv.Key)] = kv.Value.Emit()
			}
		}
		r.Events = append(r.Events, e)
	}
	if st := s.Status(); st.Code == codes.Error {
		r.Error = st.Description
		if r.Error == "" {
			r.Error = "error"
		}
	}
	return r
}

// ErrNoRecord is returned by Spans when tracing runs without a store.
var ErrNoRecord = errors.New("no local record of spans (tracing without a store)")

// Spans returns the records of one trace (32 lower-case hex digits) this
// node keeps, oldest first. It satisfies node.SpanSource.
func (t *Tracing) Spans(traceID string) ([]SpanRecord, error) {
	if !validTraceID(traceID) {
		return nil, fmt.Errorf("trace id %q: want 32 lower-case hex digits, not all zero", traceID)
	}
	if t.local == nil {
		return nil, ErrNoRecord
	}
	var out []SpanRecord
	err := t.local.db.View(func(tx *store.Tx) error {
		var err error
		out, err = spanKind.List(tx, traceID+"/")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("spans of trace %s: %w", traceID, err)
	}
	return out, nil
}

func validTraceID(s string) bool {
	if len(s) != 32 || s == "00000000000000000000000000000000" {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
