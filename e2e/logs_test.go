//go:build integration

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/telemetry/logs/zinctest"
)

// TestLogsToElasticsearch: two real nodes export their log records to a
// real Elasticsearch-API store (ZincSearch); a deployment's records from
// both are found by deployment_id, with its allocation's output (logs:
// {ship: true}) as records of kind allocation. Each node also writes JSON
// records to its log.file.
func TestLogsToElasticsearch(t *testing.T) {
	srv := zinctest.Start(t)
	pw := filepath.Join(t.TempDir(), "es.password")
	if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(clusterEnv[:len(clusterEnv):len(clusterEnv)],
		"DMS_TELEMETRY_ELASTICSEARCH_URL="+srv.URL, "DMS_TELEMETRY_ELASTICSEARCH_USERNAME="+srv.User,
		"DMS_TELEMETRY_ELASTICSEARCH_PASSWORD_FILE="+pw, "DMS_TELEMETRY_ELASTICSEARCH_FLUSH_INTERVAL=200ms",
		"DMS_LOG_FILE=logs/dms.log")
	c := newClusterEnv(t, env, "", "1")
	f := ensembleFile(t, "version: v1\nallocations:\n"+wasmTask("job", "0.5", "print=shipped-line-1", "print=shipped-line-2")+
		"    logs: {ship: true}\n")
	if r := c.homes[0].Run(t, "deploy", "-f", f); r.Code != 0 {
		t.Fatalf("deploy: %s", r)
	}
	var list []deployment
	c.homes[0].JSON(t, &list, "deployments")
	if len(list) != 1 {
		t.Fatalf("%d deployments", len(list))
	}
	id := list[0].ID
	t0 := time.Now()
	var hits []zinctest.Hit
	lines := map[string]bool{}
	nodes := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		hits = srv.Search("dms-logs", map[string]any{"term": map[string]any{"deployment_id": id}})
		clear(lines)
		clear(nodes)
		for _, h := range hits {
			nodes[h.Source["node_id"].(string)] = true
			if h.Source["kind"] == "allocation" {
				if h.Source["stream"] != "stdout" || h.Source["allocation_name"] != "job" || h.Source["allocation_id"] == "" {
					t.Fatalf("allocation record %v", h.Source)
				}
				lines[h.Source["message"].(string)] = true
			}
		}
		if len(lines) == 2 && len(nodes) == 2 {
			t.Logf("%d records of the deployment found after %s", len(hits), time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d records of deployment %s, from nodes %v, allocation lines %v", len(hits), id, nodes, lines)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !lines["shipped-line-1"] || !lines["shipped-line-2"] || !nodes[c.ids[0]] || !nodes[c.ids[1]] {
		t.Errorf("lines %v, nodes %v (want %v)", lines, nodes, c.ids)
	}
	// The store took every record (ZincSearch refuses a field whose type
	// changes from one record to another).
	for i, n := range c.nodes {
		for _, line := range strings.Split(n.Log(), "\n") {
			if strings.Contains(line, "log sink:") {
				t.Errorf("node %d: %s", i, line)
			}
		}
	}
	// The provider's log file has the deployment's records, as JSON, 0600.
	path := filepath.Join(c.homes[1].Dir, "logs", "dms.log")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log file line %q: %v", line, err)
		}
		found = found || rec["deployment_id"] == id
	}
	if !found {
		t.Errorf("the provider's log file has no record of deployment %s", id)
	}
}
