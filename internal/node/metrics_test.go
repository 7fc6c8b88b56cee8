package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/identity"
)

const metricsToken = "metrics-test-token-0123456789"

// runNode runs a whole node (Run) on a temporary home and returns its API
// address; it stops at the end of the test.
func runNode(t *testing.T, mod func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.MDNS, cfg.P2P.DHT, cfg.P2P.Relay, cfg.P2P.HolePunching = false, false, false, false
	cfg.API.Listen = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	home := t.TempDir() // removed after the node stopped
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Home: home, Config: cfg, Key: mustKey(t), UserDID: mustKey(t).DID(),
			Token: metricsToken, Version: "test", Ready: func(addr string) { ready <- addr }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
	select {
	case addr := <-ready:
		return addr
	case err := <-done:
		t.Fatalf("Run = %v before it was ready", err)
	case <-time.After(time.Minute):
		t.Fatal("node not ready after a minute")
	}
	return ""
}

// getMetrics scrapes addr's /metrics with tok.
func getMetrics(t *testing.T, addr, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestMetricsOfRunningNode: a running node's /metrics (API token needed)
// counts the messages its behaviors handled, and the envelopes it refused
// by code: an invoke of /public/hello is handled (ok); one of a command
// nobody delegated to the sender is denied. It also shows the node's
// other metrics (peers, deployments, store commits, process).
func TestMetricsOfRunningNode(t *testing.T) {
	addr := runNode(t, nil)
	if code, _ := getMetrics(t, addr, ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the token = %d, want 401", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := api.NewClient(api.ClientConfig{Addr: addr, Token: metricsToken})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Node(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := newTestNode(t, nil)
	id, err := peer.host.Connect(ctx, info.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	to := actor.Handle{DID: identity.DID(info.DID), Host: id, Inbox: actor.RootInbox}
	var hello api.Hello
	if err := peer.root.Invoke(ctx, to, api.BehaviorHello, nil, &hello); err != nil {
		t.Fatalf("invoke %s: %v", api.BehaviorHello, err)
	}
	if err := peer.root.Invoke(ctx, to, api.BehaviorPeersList, nil, nil); !errors.Is(err, actor.ErrDenied) {
		t.Fatalf("invoke %s = %v, want denied", api.BehaviorPeersList, err)
	}
	code, body := getMetrics(t, addr, metricsToken)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	for _, want := range []string{
		`dms_messages_total{behavior="/public/hello",code="ok"} 1`,
		// The sender defined a link session for the command, which was
		// denied: the envelope naming the session is counted under the
		// session's behavior.
		`dms_refusals_total{behavior="/dms/node/peers/list",code="denied"} 1`,
		`dms_actor_events_total{event="refused_denied"} 1`,
		`dms_message_duration_seconds_count{behavior="/public/hello"} 1`,
		`dms_p2p_peers 1`,
		`dms_deployments_queued 0`,
		`dms_placements_total 0`,
		`dms_store_commit_seconds_count `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "dms_"))
	}
}

// TestMetricsOff: telemetry.metrics false turns /metrics off (404).
func TestMetricsOff(t *testing.T) {
	addr := runNode(t, func(c *config.Config) { c.Telemetry.Metrics = false })
	if code, body := getMetrics(t, addr, metricsToken); code != http.StatusNotFound {
		t.Fatalf("GET /metrics = %d, want 404: %s", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
