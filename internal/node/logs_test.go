package node

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
)

// TestStartLogs: with telemetry.elasticsearch set, the node's records go to
// the store with its peer ID, basic auth from the password file, and the
// spool under the home.
func TestStartLogs(t *testing.T) {
	var mu sync.Mutex
	var docs []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "dms" || p != "s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sc := bufio.NewScanner(r.Body)
		var items []map[string]any
		for sc.Scan() {
			if !sc.Scan() {
				break
			}
			var d map[string]any
			json.Unmarshal(sc.Bytes(), &d)
			mu.Lock()
			docs = append(docs, d)
			mu.Unlock()
			items = append(items, map[string]any{"create": map[string]any{"status": 201}})
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	}))
	defer srv.Close()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "es.pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	es := &cfg.Telemetry.Elasticsearch
	es.URL, es.Username, es.PasswordFile, es.FlushInterval = srv.URL, "dms", "es.pw", config.Duration(10*time.Millisecond)
	key := mustKey(t)
	n := &Node{cfg: Config{Home: home, Config: cfg, Key: key}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(true)}
	stop, err := n.startLogs()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if n.shipLogs() == nil {
		t.Fatal("no ShipLogs hook with a store configured")
	}
	n.log.Info("hello", "deployment", "d1", "password", "hunter2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := n.LogStats()
		if st.Shipped >= 2 { // "log export on" and "hello"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records reached the store, want 2", st.Shipped)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	d := docs[1]
	mu.Unlock()
	if d["message"] != "hello" || d["deployment_id"] != "d1" || d["password"] != "[redacted]" ||
		d["node_id"] != identity.PeerIDFromPublicKey(key.Public()) || d["kind"] != "node" {
		t.Errorf("record %v", d)
	}
	families, err := n.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported bool
	for _, f := range families {
		exported = exported || f.GetName() == "dms_log_export_records_total"
	}
	if !exported {
		t.Error("no dms_log_export_records_total in the node's metrics")
	}
	if st, err := os.Stat(filepath.Join(home, LogSpoolDir)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("spool dir: %v %v", st, err)
	}
}

func TestStartLogsOff(t *testing.T) {
	n := &Node{cfg: Config{Home: t.TempDir(), Config: config.Default(), Key: mustKey(t)}, log: slog.New(slog.DiscardHandler)}
	stop, err := n.startLogs()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if n.shipLogs() != nil || n.logSink != nil {
		t.Error("a sink without a configured store")
	}
	cfg := config.Default()
	cfg.Telemetry.Elasticsearch.URL = "http://127.0.0.1:1"
	cfg.Telemetry.Elasticsearch.Username = "u"
	cfg.Telemetry.Elasticsearch.PasswordFile = "missing"
	n = &Node{cfg: Config{Home: t.TempDir(), Config: cfg, Key: mustKey(t)}, log: slog.New(slog.DiscardHandler)}
	if _, err := n.startLogs(); err == nil {
		t.Error("no error for a missing password file")
	}
}
