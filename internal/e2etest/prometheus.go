package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

// Prometheus is a real Prometheus server (Debian's prometheus package,
// installed by .ci/run) that the test started and owns: its own
// configuration, its own TSDB directory in a temporary directory and its
// own loopback port, never the packaged service. It scrapes one target
// every second with a bearer token read from a file.
type Prometheus struct {
	URL string // http://127.0.0.1:<port>
}

// PrometheusAvailable reports whether a prometheus binary is installed.
func PrometheusAvailable() bool {
	_, err := exec.LookPath("prometheus")
	return err == nil
}

// Target is one endpoint a Prometheus scrapes: its job name, host:port
// (the path is /metrics) and bearer token.
type Target struct {
	Job, Addr, Token string
}

// HomeTarget is the target of a running node of home h: its API address
// and token, under job.
func HomeTarget(t testing.TB, h *Home, job string) Target {
	t.Helper()
	addr, err := os.ReadFile(filepath.Join(h.Dir, "api.addr"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(h.Dir, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return Target{Job: job, Addr: strings.TrimSpace(string(addr)), Token: strings.TrimSpace(string(token))}
}

// StartPrometheus starts a Prometheus that scrapes each target's /metrics
// every second with its bearer token, and waits until it is ready. It is
// killed when the test ends; the test is skipped when no prometheus is
// installed.
func StartPrometheus(t testing.TB, targets ...Target) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
	}
	dir := t.TempDir()
	conf := `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
`
	for i, tg := range targets {
		tokenFile := filepath.Join(dir, fmt.Sprintf("token-%d", i))
		if err := os.WriteFile(tokenFile, []byte(tg.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf(`  - job_name: %q
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: %q
    static_configs:
      - targets: [%q]
`, tg.Job, tokenFile, tg.Addr)
	}
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+confFile,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("prometheus log:\n%s", tail(string(b), 40))
			}
		}
	})
	p := &Prometheus{URL: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus exited: %v\n%s", err, tail(string(b), 40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready after 60s")
		}
	}
}

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query (/api/v1/query) and returns its vector.
func (p *Prometheus) Query(ctx context.Context, q string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", p.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result is a %s, not a vector", q, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, ok := r.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %s: value %v is not a string", q, r.Value[1])
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q, err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Await polls q until cond holds for its result, or fails the test after
// timeout; it returns the last result.
func (p *Prometheus) Await(t testing.TB, q string, timeout time.Duration, cond func([]Sample) bool) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var (
		last    []Sample
		lastErr error
	)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last, lastErr = p.Query(ctx, q)
		cancel()
		if lastErr == nil && cond(last) {
			return last
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("prometheus query %s: no result as wanted after %s (last %v, %v)", q, timeout, last, lastErr)
	return nil
}

// Targets returns the scrape targets' health and last error, for
// diagnostics.
func (p *Prometheus) Targets(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", p.URL+"/api/v1/targets", nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// freeLoopbackAddr returns 127.0.0.1:<port> with a port free a moment ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
