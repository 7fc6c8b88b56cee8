package logs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// BenchmarkLog is the cost of one log call with five attributes and a
// span in the context. anchor: slog's JSON handler alone; node: the node's
// handler (renaming, redaction, trace ids) to the same writer; export: the
// node's handler teed to a Sink whose store answers at once (queue, spool
// and shipper run beside it).
func BenchmarkLog(b *testing.B) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	run := func(b *testing.B, log *slog.Logger) {
		b.ReportAllocs()
		for b.Loop() {
			log.InfoContext(ctx, "allocation started", "deployment", "d-7f3a9c", "allocation", "web",
				"executor", "docker", "attempt", 1, "took", 1500*time.Microsecond)
		}
	}
	b.Run("anchor", func(b *testing.B) {
		run(b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	})
	b.Run("node", func(b *testing.B) {
		l, _ := NewLogger(Options{Format: "json", Stderr: io.Discard})
		run(b, l.Logger)
	})
	b.Run("export", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			n := bytes.Count(body, []byte("\n")) / 2
			w.Write([]byte(`{"errors":false,"items":[` + strings.Repeat(`{"create":{"status":201}},`, n)[:max(0, 26*n-1)] + `]}`))
		}))
		defer srv.Close()
		s, err := NewSink(SinkConfig{URL: srv.URL, Index: "b", Node: "n", SpoolDir: b.TempDir(), SpoolSize: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		l, _ := NewLogger(Options{Format: "json", Stderr: io.Discard})
		run(b, l.Tee(s.Handler()))
		st := s.Stats()
		b.ReportMetric(float64(st.DroppedQueue)/float64(b.N), "dropped/op")
		if st.Retried > 0 {
			b.Errorf("stats %+v: the fake store should accept everything", st)
		}
	})
}
