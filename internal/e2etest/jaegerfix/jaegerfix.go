// Package jaegerfix starts a real Jaeger for tests: the all-in-one binary
// (v1.75.0, the OpenTelemetry-collector-based cmd/jaeger) with in-memory
// storage, receiving OTLP over HTTP and answering its query API, both on
// loopback ports of their own. It is stopped when the test ends.
//
// Usage:
//
//	j := jaegerfix.Start(t)
//	// export spans to j.OTLP (an OTLP/HTTP base URL: j.OTLP+"/v1/traces")
//	tr := j.WaitTrace(t, traceID, func(tr jaegerfix.Trace) bool { return len(tr.Spans) >= 3 })
//	tr.InstanceIDs() // the service.instance.id of every process in the trace
//
// The binary is $DMS_JAEGER, else $(go env GOPATH)/bin/jaeger, installed
// by scripts/jaeger.sh (which .ci/run starts in the background early).
// While that script builds, it holds the marker file
// $(go env GOPATH)/bin/.jaeger-building; Start then waits for the build,
// up to 20 minutes. When the binary is missing the test fails with the
// command that installs it.
package jaegerfix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/e2etest/toolbin"
)

// InstallCommand installs the binary the fixture runs.
const InstallCommand = "./scripts/jaeger.sh"

// BuildWait bounds the wait for a build in progress.
const BuildWait = 20 * time.Minute

// Server is a running Jaeger.
type Server struct {
	OTLP  string // OTLP/HTTP base URL, http://127.0.0.1:PORT
	Query string // query API base URL, http://127.0.0.1:PORT

	client *http.Client
}

// building reports whether scripts/jaeger.sh is building into dir now:
// its marker exists and names a live process.
func building(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ".jaeger-building"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// Binary returns the path of the jaeger binary, waiting (up to wait) for
// a build in progress, or an error naming the command that installs it.
func Binary(wait time.Duration) (string, error) {
	if os.Getenv("DMS_JAEGER") != "" {
		return toolbin.Find("jaeger", "DMS_JAEGER", false, InstallCommand)
	}
	dir := toolbin.GoBin()
	deadline := time.Now().Add(wait)
	for building(dir) {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("jaeger is still being built into %s after %s (scripts/jaeger.sh)", dir, wait)
		}
		time.Sleep(2 * time.Second) // polling another process's build
	}
	return toolbin.Find("jaeger", "DMS_JAEGER", false, InstallCommand)
}

// config is the collector configuration: OTLP over HTTP in, in-memory
// storage, the query API; no other listener (no metrics, no health check).
const config = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

var portMu sync.Mutex

// freePorts returns n loopback addresses free now.
func freePorts(n int) ([]string, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// syncBuffer keeps the process's output for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start starts a Jaeger for the test and stops it at cleanup. It fails the
// test if the binary is missing or Jaeger is not ready within 60 s.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary(BuildWait)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		cfgFile := filepath.Join(dir, "jaeger.yaml")
		if err := os.WriteFile(cfgFile, fmt.Appendf(nil, config, ports[0], ports[1], ports[2]), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Server{OTLP: "http://" + ports[2], Query: "http://" + ports[0], client: &http.Client{Timeout: 5 * time.Second}}
		var out syncBuffer
		cmd := exec.Command(bin, "--config", "file:"+cfgFile)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start jaeger: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		err = s.waitReady(exited, ports[2])
		if err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt < 3 && strings.Contains(out.String(), "address already in use") {
			continue // another process took a port between freePorts and the bind
		}
		t.Fatalf("jaeger (query %s, otlp %s): %v\n%s", s.Query, s.OTLP, err, out.String())
	}
}

// waitReady polls the query API (/api/services) and the OTLP port.
func (s *Server) waitReady(exited <-chan error, otlp string) error {
	deadline := time.Now().Add(60 * time.Second)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		resp, err := s.client.Get(s.Query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.DialTimeout("tcp", otlp, time.Second); err == nil {
					c.Close()
					return nil
				}
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return errors.New("not ready after 60s")
		}
	}
}

// Trace is a trace as the query API returns it.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
}

// Span is one span of a Trace.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []KeyValue  `json:"tags"`
	ProcessID     string      `json:"processID"`
}

// Reference links a span to its parent (refType CHILD_OF).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is the resource of the spans that name it.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// KeyValue is a tag.
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Tag returns the value of the tag key, as a string ("" when absent).
func Tag(tags []KeyValue, key string) string {
	for _, kv := range tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// InstanceIDs returns the service.instance.id of the processes whose spans
// the trace holds, sorted.
func (tr Trace) InstanceIDs() []string {
	seen := map[string]bool{}
	for _, s := range tr.Spans {
		if id := Tag(tr.Processes[s.ProcessID].Tags, "service.instance.id"); id != "" {
			seen[id] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Parent returns the span ID of s's parent, "" for a root.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// get decodes the data of a query API answer.
func (s *Server) get(ctx context.Context, path string) ([]Trace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Query+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	var body struct {
		Data []Trace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return body.Data, nil
}

// Trace returns the trace with this ID (32 hex digits); found is false
// when Jaeger does not have it (yet).
func (s *Server) Trace(ctx context.Context, traceID string) (tr Trace, found bool, err error) {
	ts, err := s.get(ctx, "/api/traces/"+traceID)
	if err != nil || len(ts) == 0 {
		return Trace{}, false, err
	}
	return ts[0], true, nil
}

// Traces returns the recent traces of a service.
func (s *Server) Traces(ctx context.Context, service string) ([]Trace, error) {
	return s.get(ctx, "/api/traces?service="+service+"&limit=100&lookback=1h")
}

// WaitTrace polls for the trace until done accepts it, for up to 30 s
// (Jaeger stores spans after its batch timeout).
func (s *Server) WaitTrace(t testing.TB, traceID string, done func(Trace) bool) Trace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last Trace
	for {
		tr, found, err := s.Trace(ctx, traceID)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("jaeger: trace %s: %v", traceID, err)
		}
		if found {
			last = tr
			if done(tr) {
				return tr
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jaeger: trace %s not as expected after 30s: %d spans from %v", traceID, len(last.Spans), last.InstanceIDs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
