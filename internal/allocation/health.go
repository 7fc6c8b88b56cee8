package allocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// health probes instance id every interval until ctx is done, moving the
// allocation between running, healthy and unhealthy: healthy at the first
// success, unhealthy after Retries failures in a row, and then it kills
// the instance: the run ends with executor.ReasonUnhealthy and the restart
// policy applies. Failures within the start period of a fresh instance do
// not count.
func (a *alloc) health(ctx context.Context, id string, fresh bool) {
	h := a.record().Spec.Healthcheck
	interval := h.Interval
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = min(defaultHealthTimeout, interval)
	}
	retries := h.Retries
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	grace := time.Time{}
	if fresh {
		grace = time.Now().Add(h.StartPeriod)
	}
	failures := 0
	t := time.NewTimer(0) // the first check at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := a.probe(pctx, id, h)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			failures = 0
			a.setHealth(deployproto.AllocHealthy, "")
		case time.Now().Before(grace):
			// Still starting: does not count.
		default:
			failures++
			if failures >= retries {
				msg := fmt.Sprintf("health check failed %d times: %v", failures, err)
				a.setHealth(deployproto.AllocUnhealthy, msg)
				// The run ends like a crash; the restart policy applies.
				if a.killRun(id, msg, false) {
					return
				}
			}
		}
		t.Reset(interval)
	}
}

// setHealth moves a running allocation to healthy or unhealthy.
func (a *alloc) setHealth(state deployproto.AllocationState, msg string) {
	a.mu.Lock()
	cur, stopping := a.rec.State, a.stopping
	a.mu.Unlock()
	switch {
	case stopping || cur == state:
		return
	case cur != deployproto.AllocRunning && cur != deployproto.AllocHealthy && cur != deployproto.AllocUnhealthy:
		return
	}
	a.transition(state, msg, nil)
}

// probe runs one check.
func (a *alloc) probe(ctx context.Context, id string, h *ensemble.Healthcheck) error {
	switch {
	case len(h.Exec) > 0:
		ex, ok := a.ex.(executor.Execer)
		if !ok {
			return fmt.Errorf("the %s executor cannot run commands", a.record().Spec.Executor)
		}
		var out tail
		code, err := ex.Exec(ctx, id, h.Exec, &out, &out)
		if err != nil {
			return fmt.Errorf("exec: %w", err)
		}
		if code != 0 {
			return fmt.Errorf("exec exited with code %d: %s", code, out.String())
		}
		return nil
	case h.TCP != nil:
		addr, err := a.hostAddr(h.TCP.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp: %w", err)
		}
		c.Close()
		return nil
	case h.HTTP != nil:
		addr, err := a.hostAddr(h.HTTP.Port)
		if err != nil {
			return err
		}
		p := h.HTTP.Path
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p, nil)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		req.Header.Set("User-Agent", deployproto.HealthCheckUserAgent)
		client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("http: GET %s: %s", p, resp.Status)
		}
		return nil
	}
	return errors.New("no probe")
}

// hostAddr returns the host address a guest port is published on.
func (a *alloc) hostAddr(guest int) (string, error) {
	for _, p := range a.record().Ports {
		if int(p.Guest) == guest && p.Host != 0 && (p.Protocol == "" || p.Protocol == "tcp") {
			ip := p.HostIP
			if ip == "" || ip == "0.0.0.0" || ip == "::" {
				ip = "127.0.0.1"
			}
			return net.JoinHostPort(ip, strconv.Itoa(int(p.Host))), nil
		}
	}
	return "", fmt.Errorf("port %d is not published", guest)
}

// tail keeps the last 512 bytes written to it.
type tail struct {
	mu sync.Mutex
	b  []byte // guarded by mu
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 512 {
		t.b = t.b[len(t.b)-512:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
