package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The files of a node's home that tell a client where its API listens
// (written by the node once it listens) and the token it needs (written
// by dms init).
const (
	AddrFile  = "api.addr"
	TokenFile = "api.token"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	Addr  string // host:port of the node's API
	Token string // the node's API token; empty for Health only
	// HTTPClient overrides the default client (no timeout; requests are
	// bounded by their contexts).
	HTTPClient *http.Client
}

// Client talks to one node's REST API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client for the API at cfg.Addr.
func NewClient(cfg ClientConfig) (*Client, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("api address %q is not host:port", cfg.Addr)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}}
	}
	return &Client{base: "http://" + cfg.Addr, token: strings.TrimSpace(cfg.Token), hc: hc}, nil
}

// do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to discard). A non-2xx answer is returned as *Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// stream sends a request and returns the response body for streaming
// endpoints (logs); the caller closes it.
func (c *Client) stream(ctx context.Context, method, path string, body any) (io.ReadCloser, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("no dms node answers at %s (is `dms run` running?)", strings.TrimPrefix(c.base, "http://"))
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er ErrorResponse
	if err := json.Unmarshal(data, &er); err != nil || er.Error.Code == "" {
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &Error{Status: resp.StatusCode, Code: fmt.Sprintf("http-%d", resp.StatusCode), Message: msg}
	}
	return &Error{Status: resp.StatusCode, Code: er.Error.Code, Message: er.Error.Message, Candidates: er.Error.Candidates}
}

// Health checks the node answers; it needs no token.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	return &h, c.do(ctx, http.MethodGet, "/api/v1/health", nil, &h)
}

// Node describes the local node.
func (c *Client) Node(ctx context.Context) (*Node, error) {
	var n Node
	return &n, c.do(ctx, http.MethodGet, "/api/v1/node", nil, &n)
}

// Peers lists known peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, http.MethodGet, "/api/v1/peers", nil, &ps)
}

// Connect dials a peer by full multiaddr.
func (c *Client) Connect(ctx context.Context, addr string) (*ConnectResult, error) {
	var r ConnectResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/peers/connect", ConnectRequest{Addr: addr}, &r)
}

// Ping measures the round trip to a peer.
func (c *Client) Ping(ctx context.Context, peer string) (*PingResult, error) {
	var r PingResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/peers/ping", PingRequest{Peer: peer}, &r)
}

// Send relays a one-way signed invocation.
func (c *Client) Send(ctx context.Context, req ActorRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/actor/send", req, nil)
}

// Invoke relays a signed invocation and returns the reply. A refusal by the
// remote actor is returned as *Error with the actor's code (e.g. "denied").
func (c *Client) Invoke(ctx context.Context, req ActorRequest) (*ActorReply, error) {
	var r ActorReply
	return &r, c.do(ctx, http.MethodPost, "/api/v1/actor/invoke", req, &r)
}

// Broadcast relays a signed invocation to a topic and returns the replies
// collected before the timeout.
func (c *Client) Broadcast(ctx context.Context, req ActorRequest) (*BroadcastResult, error) {
	var r BroadcastResult
	return &r, c.do(ctx, http.MethodPost, "/api/v1/actor/broadcast", req, &r)
}
