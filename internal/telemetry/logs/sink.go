package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	URL      string // base URL of the Elasticsearch-API server; <URL>/_bulk is posted to
	Index    string
	Username string // HTTP basic auth, with Password; empty: none
	Password string
	// Batch is the most records one _bulk request holds; FlushInterval
	// the longest a record waits for a batch to fill.
	Batch         int
	FlushInterval time.Duration
	// SpoolDir holds the spool; SpoolSize bounds it (bytes).
	SpoolDir  string
	SpoolSize int64
	// Queue is the number of records held in memory on their way to the
	// spool; default 4096.
	Queue int
	// Node is the node's peer ID: it is in every record and document id.
	Node  string
	Level slog.Leveler // least level of the node records exported
	// Client sends the requests; default one with a 30 s timeout.
	Client *http.Client
	// Logger reports the sink's own problems (once each): it should not
	// write to this sink.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between retries; defaults
	// 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// CloseTimeout bounds Close's last attempt to send what is pending;
	// default 2 s, negative: none.
	CloseTimeout time.Duration
}

// Stats are a Sink's counters since it started.
type Stats struct {
	Shipped         uint64 `json:"shipped"`          // records the store accepted (or already had)
	Retried         uint64 `json:"retried"`          // records sent again after a failure
	DroppedQueue    uint64 `json:"dropped_queue"`    // records dropped because the memory queue was full
	DroppedSpool    uint64 `json:"dropped_spool"`    // records dropped by the spool: full (oldest went) or unwritable
	DroppedRejected uint64 `json:"dropped_rejected"` // records the store refused for good (4xx other than 409, 429)
	SpoolErrors     uint64 `json:"spool_errors"`     // failed writes to the spool (disk full, I/O error)
	SpoolBytes      int64  `json:"spool_bytes"`      // disk the spool uses
	Pending         uint64 `json:"pending"`          // records in the spool not yet sent
}

// Sink exports log records to an Elasticsearch-API store (see the package
// doc). Its methods are safe for concurrent use.
type Sink struct {
	cfg    SinkConfig
	bulk   string // URL of _bulk
	spool  *spool
	queue  chan []byte
	kick   chan struct{} // the writer appended records
	stop   chan struct{}
	ctx    context.Context // cancelled by Close: ends a request in flight
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	shipped, retried, droppedQueue, droppedSpool, droppedRejected, spoolErrors atomic.Uint64

	once sync.Map // problems already logged, by kind
}

// NewSink opens the spool and starts the sink's writer and shipper.
func NewSink(cfg SinkConfig) (*Sink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("log sink: url %q: want http(s)://host[:port][/path]", cfg.URL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("log sink: url: credentials go in username and password_file, not the URL")
	}
	if cfg.Index == "" || cfg.Node == "" || cfg.SpoolDir == "" {
		return nil, errors.New("log sink: index, node and spool dir are required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 2 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.SpoolSize <= 0 {
		cfg.SpoolSize = 64 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Level == nil {
		cfg.Level = slog.LevelInfo
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 2 * time.Second
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolSize)
	if err != nil {
		return nil, fmt.Errorf("log sink: %w", err)
	}
	s := &Sink{
		cfg:   cfg,
		bulk:  strings.TrimSuffix(cfg.URL, "/") + "/_bulk",
		spool: sp,
		queue: make(chan []byte, cfg.Queue),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.writer()
	go s.shipper()
	return s, nil
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{
		Shipped:         s.shipped.Load(),
		Retried:         s.retried.Load(),
		DroppedQueue:    s.droppedQueue.Load(),
		DroppedSpool:    s.droppedSpool.Load(),
		DroppedRejected: s.droppedRejected.Load(),
		SpoolErrors:     s.spoolErrors.Load(),
		SpoolBytes:      s.spool.size(),
		Pending:         s.spool.pending(),
	}
}

// Close stops the sink: records queued are written to the spool, one last
// attempt sends what the store has not accepted (for CloseTimeout at most,
// without retries), and what is left stays in the spool for the next start.
func (s *Sink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.cancel()
	s.wg.Wait()
	s.finalFlush()
	return s.spool.close()
}

// finalFlush sends the spool from the last acknowledged record, once,
// within CloseTimeout; it stops at the first batch not wholly done.
func (s *Sink) finalFlush() {
	if s.cfg.CloseTimeout < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	defer cancel()
	s.spool.rewind() // a batch the shipper held when it stopped is sent again (same ids)
	for ctx.Err() == nil {
		items, err := s.spool.readNext(s.cfg.Batch)
		if err != nil || len(items) == 0 {
			return
		}
		again, err := s.send(ctx, items)
		if err != nil || len(again) > 0 {
			return
		}
		if err := s.spool.ack(items[len(items)-1].seq + 1); err != nil {
			return
		}
	}
}

// enqueue hands a record (one JSON object) to the writer; it never blocks.
func (s *Sink) enqueue(doc []byte) {
	if len(doc) > MaxRecord {
		s.droppedRejected.Add(1)
		s.logOnce("too-large", "log sink: a record larger than the most the spool keeps is dropped", "bytes", len(doc), "max", MaxRecord)
		return
	}
	if s.closed.Load() {
		s.droppedQueue.Add(1)
		return
	}
	select {
	case s.queue <- doc:
	default:
		s.droppedQueue.Add(1)
	}
}

// Handler returns the slog handler that exports the node's records (kind
// "node"). Use it with Logger.Tee.
func (s *Sink) Handler() slog.Handler {
	opts := &slog.HandlerOptions{Level: s.cfg.Level, ReplaceAttr: chainReplace(esFields)}
	return slog.NewJSONHandler(queueWriter{s}, opts).WithAttrs([]slog.Attr{
		slog.String(internalKind, KindNode), slog.String(internalNode, s.cfg.Node),
	})
}

// The sink's own attributes, renamed by esFields after ReplaceAttr (which
// would rename a plain "kind").
const (
	internalKind = "\x00kind"
	internalNode = "\x00node"
)

// esFields names the record's fields as Elasticsearch tools expect them.
func esFields(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		a.Key = "@timestamp"
	case slog.MessageKey:
		a.Key = "message"
	case "message":
		// A call site's own message (a supervision event's) would be a
		// second "message" key, which Elasticsearch refuses.
		a.Key = "event_message"
	case "@timestamp", KeyNode:
		a.Key = "attr_" + a.Key
	case internalKind:
		a.Key = KeyKind
	case internalNode:
		a.Key = KeyNode
	}
	return a
}

// queueWriter receives one whole JSON record per Write (slog's JSON
// handler writes each record with one call).
type queueWriter struct{ s *Sink }

func (w queueWriter) Write(p []byte) (int, error) {
	w.s.enqueue(bytes.Clone(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// AllocationLine is one line an allocation's workload wrote.
type AllocationLine struct {
	Time       time.Time
	Deployment string
	Allocation string // the allocation's ID on the provider
	Name       string // its name in the ensemble
	Stream     string // "stdout" or "stderr"
	Line       string
}

// Allocation exports a line of an allocation's output (kind
// "allocation"); it never blocks.
func (s *Sink) Allocation(l AllocationLine) {
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	if len(l.Line) > MaxRecord/2 {
		l.Line = l.Line[:MaxRecord/2]
	}
	doc, err := json.Marshal(struct {
		Time       time.Time `json:"@timestamp"`
		Kind       string    `json:"kind"`
		Node       string    `json:"node_id"`
		Deployment string    `json:"deployment_id"`
		Allocation string    `json:"allocation_id"`
		Name       string    `json:"allocation_name,omitempty"`
		Stream     string    `json:"stream"`
		Message    string    `json:"message"`
	}{l.Time.UTC(), KindAllocation, s.cfg.Node, l.Deployment, l.Allocation, l.Name, l.Stream, strings.ToValidUTF8(l.Line, "\uFFFD")})
	if err != nil {
		return
	}
	s.enqueue(doc)
}

// logOnce logs a problem of a kind the first time it happens.
func (s *Sink) logOnce(kind, msg string, args ...any) {
	if _, seen := s.once.LoadOrStore(kind, true); seen {
		return
	}
	s.cfg.Logger.Warn(msg, args...)
}

// clearOnce lets a kind of problem be logged again (it was resolved).
func (s *Sink) clearOnce(kind, msg string, args ...any) {
	if _, seen := s.once.LoadAndDelete(kind); seen {
		s.cfg.Logger.Info(msg, args...)
	}
}

// writer moves queued records to the spool.
func (s *Sink) writer() {
	defer s.wg.Done()
	syncTick := time.NewTicker(s.cfg.FlushInterval)
	defer syncTick.Stop()
	recs := make([][]byte, 0, 256)
	for {
		recs = recs[:0]
		select {
		case r := <-s.queue:
			recs = append(recs, r)
		case <-syncTick.C:
			s.spool.sync()
			continue
		case <-s.stop:
			// Drain what is queued, then stop.
			for {
				select {
				case r := <-s.queue:
					recs = append(recs, r)
					continue
				default:
				}
				break
			}
			s.write(recs)
			return
		}
	drain:
		for len(recs) < cap(recs) {
			select {
			case r := <-s.queue:
				recs = append(recs, r)
			default:
				break drain
			}
		}
		s.write(recs)
	}
}

func (s *Sink) write(recs [][]byte) {
	if len(recs) == 0 {
		return
	}
	dropped, err := s.spool.append(recs)
	if dropped > 0 {
		s.droppedSpool.Add(dropped)
		s.logOnce("spool-full", "log sink: spool full, oldest records dropped", "bound", s.cfg.SpoolSize, "dropped", dropped)
	}
	if err != nil {
		s.spoolErrors.Add(1)
		s.droppedSpool.Add(uint64(len(recs)))
		msg := "log sink: spool write failed, records dropped"
		if errors.Is(err, syscall.ENOSPC) {
			msg = "log sink: spool disk full, records dropped"
		}
		s.logOnce("spool-write", msg, "err", err)
		return
	}
	s.clearOnce("spool-write", "log sink: spool writes again")
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// shipper sends the spool's records to the store: a batch when it is
// full, or when its first record waited FlushInterval.
func (s *Sink) shipper() {
	defer s.wg.Done()
	var timer *time.Timer
	var due <-chan time.Time
	flush := false // ship what is pending now
	for {
		pending := s.spool.pending()
		if pending == 0 {
			flush = false
		}
		if pending >= uint64(s.cfg.Batch) || flush {
			if timer != nil {
				timer.Stop()
				timer, due = nil, nil
			}
			if !s.shipBatch() {
				return
			}
			flush = true // what came meanwhile has waited too
			continue
		}
		if pending > 0 && timer == nil {
			timer = time.NewTimer(s.cfg.FlushInterval)
			due = timer.C
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-due:
			timer, due, flush = nil, nil, true
		}
	}
}

// shipBatch reads a batch from the spool and sends it until every record
// is accepted or dropped, then acknowledges it. It returns false when the
// sink stops first (the batch stays in the spool).
func (s *Sink) shipBatch() bool {
	items, err := s.spool.readNext(s.cfg.Batch)
	if err != nil {
		s.logOnce("spool-read", "log sink: spool read failed", "err", err)
	}
	if len(items) == 0 {
		return true
	}
	end := items[len(items)-1].seq + 1
	attempt := 0
	for len(items) > 0 {
		again, err := s.send(s.ctx, items)
		if err == nil && len(again) == 0 {
			break
		}
		if err != nil {
			s.logOnce("send", "log sink: _bulk request failed, retrying with backoff", "url", s.bulk, "err", err)
		}
		s.retried.Add(uint64(len(again)))
		items = again
		if !s.sleep(s.backoff(attempt)) {
			return false
		}
		attempt++
	}
	if attempt > 0 {
		s.clearOnce("send", "log sink: _bulk requests succeed again", "url", s.bulk)
	}
	if err := s.spool.ack(end); err != nil {
		s.logOnce("spool-ack", "log sink: cannot persist the spool's progress", "err", err)
	}
	return true
}

// send posts items and returns those to send again; err says why the whole
// request failed (then all items are returned).
func (s *Sink) send(ctx context.Context, items []item) (again []item, err error) {
	body := encodeBulk(make([]byte, 0, 512*len(items)), s.cfg.Index, items, s.docID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.bulk, bytes.NewReader(body))
	if err != nil {
		return items, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if s.cfg.Username != "" {
		req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return items, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return items, err
	}
	if resp.StatusCode/100 != 2 {
		// The whole request failed: 429 and 5xx are passing; others (401,
		// 403, 404, 413) are a configuration to fix. Either way the
		// records wait in the spool, within its bound.
		return items, fmt.Errorf("status %s: %s", resp.Status, errorReason(bytes.TrimSpace(truncate(data, 300))))
	}
	results, err := decodeBulkResponse(data, len(items))
	if err != nil {
		return items, err
	}
	for i, r := range results {
		switch r.outcome() {
		case done:
			s.shipped.Add(1)
		case retry:
			again = append(again, items[i])
		case reject:
			s.droppedRejected.Add(1)
			s.logOnce("reject", "log sink: the store refused a record; it is dropped (and those after it, counted in dropped_rejected)",
				"status", r.Status, "reason", r.Reason, "id", s.docID(items[i].seq))
		}
	}
	return again, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// docID is the document id of the record with sequence number seq: the
// same for every attempt, unique across nodes and spools.
func (s *Sink) docID(seq uint64) string {
	return fmt.Sprintf("%s-%s-%d", s.cfg.Node, s.spool.epoch, seq)
}

// backoff is the wait before the attempt-th retry: exponential from
// MinBackoff, capped at MaxBackoff, with jitter (half to all of it).
func (s *Sink) backoff(attempt int) time.Duration {
	d := s.cfg.MinBackoff << min(attempt, 30)
	if d <= 0 || d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d; false when the sink stops first.
func (s *Sink) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}
