package apiserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
)

const token = "0123456789abcdef0123456789abcdef"

type fakeRelay struct{ got *actor.Envelope }

func (f *fakeRelay) Relay(ctx context.Context, env *actor.Envelope) (*actor.Reply, error) {
	f.got = env
	if env.Behavior == "/dms/secret" {
		return nil, &actor.Error{Code: actor.CodeDenied, Msg: "untrusted-root: nope"}
	}
	return &actor.Reply{From: env.To, Payload: []byte(`{"ok":true}`)}, nil
}

func (f *fakeRelay) RelayBroadcast(ctx context.Context, env *actor.Envelope, collect func(*actor.Reply)) error {
	collect(&actor.Reply{Payload: []byte(`1`)})
	return nil
}

func newServer(t *testing.T) (*Server, *fakeRelay) {
	t.Helper()
	relay := &fakeRelay{}
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Version: "test", Actors: relay})
	if err != nil {
		t.Fatal(err)
	}
	return s, relay
}

func do(s *Server, method, path, body, remote, tok string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestAccessRules(t *testing.T) {
	s, _ := newServer(t)
	tests := []struct {
		name, method, path, remote, token string
		wantStatus                        int
		wantCode                          string
	}{
		{"health without token", "GET", "/api/v1/health", "127.0.0.1:5000", "", 200, ""},
		{"node without token", "GET", "/api/v1/node", "127.0.0.1:5000", "", 401, api.CodeUnauthorized},
		{"wrong token", "GET", "/api/v1/node", "127.0.0.1:5000", "nope", 401, api.CodeUnauthorized},
		{"non-loopback client", "GET", "/api/v1/health", "192.168.1.7:5000", token, 403, api.CodeForbidden},
		{"non-loopback ipv6", "GET", "/api/v1/node", "[2001:db8::1]:5000", token, 403, api.CodeForbidden},
		{"ipv6 loopback ok", "GET", "/api/v1/openapi.yaml", "[::1]:5000", token, 200, ""},
		{"area not wired", "GET", "/api/v1/peers", "127.0.0.1:5000", token, 503, api.CodeUnavailable},
		{"unknown path", "GET", "/api/v1/nope", "127.0.0.1:5000", token, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, tt.method, tt.path, "", tt.remote, tt.token)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantCode != "" {
				var er api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &er); err != nil || er.Error.Code != tt.wantCode {
					t.Fatalf("body = %s, want code %s", w.Body, tt.wantCode)
				}
			}
		})
	}
}

func TestRefusesNonLoopbackListen(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9999", "[::]:9999", "192.168.1.1:80", ":9999"} {
		if _, err := New(Config{Addr: addr, Token: token}); err == nil || !strings.Contains(err.Error(), "refusing to start the API") {
			t.Errorf("New(%s) = %v, want refusal", addr, err)
		}
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Token: "short"}); err == nil {
		t.Error("New with a short token succeeded")
	}
}

func TestRelay(t *testing.T) {
	s, relay := newServer(t)
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantBody         string
	}{
		{"malformed json", "/api/v1/actor/invoke", `{"behavior":`, 400, "malformed JSON"},
		{"unknown field", "/api/v1/actor/invoke", `{"behaviour":"x"}`, 400, "unknown field"},
		{"no invocation", "/api/v1/actor/invoke", `{"behavior":"/x","from":"did:key:z","to":{"did":"d","host":"h"}}`, 400, "invocation is required"},
		{"no target", "/api/v1/actor/invoke", `{"behavior":"/x","from":"did:key:z","invocation":"aW52"}`, 400, "to.host and to.did are required"},
		{"ok", "/api/v1/actor/invoke", `{"behavior":"/x","from":"did:key:z","invocation":"aW52","to":{"did":"d","host":"h"},"payload":{"a":1}}`, 200, `"ok": true`},
		{"denied keeps its code", "/api/v1/actor/invoke", `{"behavior":"/dms/secret","from":"did:key:z","invocation":"aW52","to":{"did":"d","host":"h"}}`, 403, `"code":"denied"`},
		{"broadcast needs topic", "/api/v1/actor/broadcast", `{"behavior":"/x","from":"did:key:z","invocation":"aW52"}`, 400, "topic is required"},
		{"broadcast collects", "/api/v1/actor/broadcast", `{"behavior":"/x","topic":"t","from":"did:key:z","invocation":"aW52","timeout_ms":10}`, 200, `"payload": 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, "POST", tt.path, tt.body, "127.0.0.1:1", token)
			if w.Code != tt.wantStatus || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("%d %s, want %d containing %q", w.Code, w.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if relay.got.To.Inbox != actor.RootInbox || string(relay.got.Invocation) != "inv" || relay.got.From.DID != "did:key:z" {
		t.Fatalf("relayed envelope = %+v", relay.got)
	}
}

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml in step with the routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, _ := newServer(t)
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	for _, r := range s.Routes() {
		// ServeMux wildcards {id} are written the same way in OpenAPI.
		served = append(served, r)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("openapi.yaml and routes differ:\ndocumented:\n%s\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
}

func TestServeAndClient(t *testing.T) {
	s, _ := newServer(t)
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, _ := api.NewClient(api.ClientConfig{Addr: addr.String(), Token: token})
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if h, err := c.Health(cctx); err != nil || h.Status != "ok" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	_, err = c.Invoke(cctx, api.ActorRequest{Behavior: "/dms/secret", From: "did:key:z", Invocation: []byte("i"), To: api.Handle{DID: "d", Host: "h"}})
	if ae, ok := err.(*api.Error); !ok || ae.Code != "denied" || !strings.HasPrefix(err.Error(), "denied: ") {
		t.Fatalf("Invoke = %v, want a denied *api.Error", err)
	}
	noTok, _ := api.NewClient(api.ClientConfig{Addr: addr.String()})
	if _, err := noTok.Node(cctx); err == nil || err.(*api.Error).Status != 401 {
		t.Fatalf("Node without token = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
