package allocation

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// TestHTTPProbeUserAgent: the HTTP health check names itself, so that
// `dms deployment logs` can leave its access-log lines out.
func TestHTTPProbeUserAgent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.UserAgent()
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	a := &alloc{rec: Record{Ports: []executor.Port{{Guest: 80, Host: uint16(p)}}}}
	if err := a.probe(context.Background(), "i1", &ensemble.Healthcheck{HTTP: &ensemble.HTTPProbe{Port: 80, Path: "/health"}}); err != nil {
		t.Fatal(err)
	}
	if ua := <-got; ua != deployproto.HealthCheckUserAgent {
		t.Errorf("User-Agent = %q, want %q", ua, deployproto.HealthCheckUserAgent)
	}
}
