package node

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/telemetry/logs"
)

// LogSpoolDir is where the log sink keeps the records the store has not
// accepted yet, under the home.
const LogSpoolDir = "data/logspool"

// startLogs starts the export of the node's log records to the
// Elasticsearch-API store of telemetry.elasticsearch, when one is
// configured: from then on n.log writes to it too, and allocations that ask
// for it (logs.ship) ship their output there. The sink's own problems go to
// the log without it.
func (n *Node) startLogs() (stop func() error, err error) {
	es := n.cfg.Config.Telemetry.Elasticsearch
	if es.URL == "" {
		return func() error { return nil }, nil
	}
	var password string
	if es.PasswordFile != "" {
		path := es.PasswordFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(n.cfg.Home, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("telemetry.elasticsearch.password_file: %w", err)
		}
		password = strings.TrimSpace(string(data))
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(n.cfg.Config.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	sink, err := logs.NewSink(logs.SinkConfig{
		URL: es.URL, Index: es.Index, Username: es.Username, Password: password,
		Batch: es.Batch, FlushInterval: es.FlushInterval.D(),
		SpoolDir: filepath.Join(n.cfg.Home, LogSpoolDir), SpoolSize: int64(es.SpoolSize),
		Node:  identity.PeerIDFromPublicKey(n.cfg.Key.Public()),
		Level: level, Logger: n.log,
	})
	if err != nil {
		return nil, err
	}
	n.logSink = sink
	if n.metrics != nil {
		if err := n.metrics.Registry().Register(sink.Collector()); err != nil {
			sink.Close()
			return nil, fmt.Errorf("log export metrics: %w", err)
		}
	}
	n.log = slog.New(slog.NewMultiHandler(n.log.Handler(), logs.WithTrace(sink.Handler())))
	n.log.Info("log export on", "url", es.URL, "index", es.Index)
	return func() error {
		err := sink.Close()
		if st := sink.Stats(); st.Pending > 0 || st.DroppedQueue+st.DroppedSpool+st.DroppedRejected > 0 {
			n.cfg.Logger.Info("log export stopped", "pending", st.Pending, "shipped", st.Shipped, "retried", st.Retried,
				"dropped_queue", st.DroppedQueue, "dropped_spool", st.DroppedSpool, "dropped_rejected", st.DroppedRejected)
		}
		return err
	}, nil
}

// shipLogs is allocation.Config.ShipLogs: nil when no store is configured.
func (n *Node) shipLogs() func(deployment, allocationID, name, stream string) io.WriteCloser {
	if n.logSink == nil {
		return nil
	}
	return n.logSink.AllocationWriter
}

// LogStats are the log sink's counters; ok is false when no store is
// configured.
func (n *Node) LogStats() (st logs.Stats, ok bool) {
	if n.logSink == nil {
		return st, false
	}
	return n.logSink.Stats(), true
}
