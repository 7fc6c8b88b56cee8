package resource

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// pingDocker asks the Docker engine's /_ping over its unix socket, with
// plain net/http (no Docker client needed to know whether one would work).
func pingDocker(ctx context.Context, socket string, timeout time.Duration) Docker {
	d := Docker{Socket: socket}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return d
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return d
	}
	defer resp.Body.Close()
	body, _ := readSmall(resp.Body, 64)
	d.Reachable = resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "OK"
	d.APIVersion = resp.Header.Get("Api-Version")
	return d
}
