package actor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// Relaying: a node sends on a user's behalf an envelope that already
// carries the user's invocation (dms invoke), to another host or to one of
// its own actors, and publishes such envelopes to a topic.

func TestRelay(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{deny: map[string]string{"/test/secret": "untrusted-root: not for you"}}
	relay, b := newNode(t, net, auth, nil), newNode(t, net, auth, nil)
	notes := make(chan string, 4)
	for _, n := range []*node{relay, b} {
		n.a.AddBehavior("/test/echo", echo)
		n.a.AddBehavior("/test/secret", echo)
		n.a.AddBehavior("/test/note", func(ctx context.Context, m *Message) (any, error) {
			var s string
			if err := m.Decode(&s); err != nil {
				return nil, err
			}
			notes <- s
			return nil, nil
		})
	}
	user := mustKey(t)
	env := func(to *node, behavior, inv, payload string, wantReply bool) *Envelope {
		e := &Envelope{To: to.a.Handle(), From: Handle{DID: user.DID(), Inbox: "cli"}, Behavior: behavior,
			Payload: []byte(payload), WantReply: wantReply}
		if inv != "" {
			e.Invocation = []byte(inv)
		}
		return e
	}
	tests := []struct {
		name    string
		env     *Envelope
		want    string // the reply's payload
		wantErr *Error
		msg     string
	}{
		{"to another host", env(b, "/test/echo", "allow:/test/echo", `"remote"`, true), `"remote"`, nil, ""},
		{"to an actor of this host", env(relay, "/test/echo", "allow:/test/echo", `"local"`, true), `"local"`, nil, ""},
		{"no invocation", env(b, "/test/echo", "", `"x"`, true), "", ErrDenied, "carries no invocation"},
		{"invocation for another command", env(b, "/test/echo", "allow:/test/other", `"x"`, true), "", ErrDenied, "not for /test/echo"},
		{"denied by the remote host", env(b, "/test/secret", "allow:/test/secret", `"x"`, true), "", ErrDenied, "not for you"},
		{"denied by this host", env(relay, "/test/secret", "allow:/test/secret", `"x"`, true), "", ErrDenied, "not for you"},
		{"unknown behavior", env(b, "/test/nope", "allow:/test/nope", `"x"`, true), "", ErrUnknownBehavior, "/test/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := relay.sys.Relay(ctxT(t), tt.env)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Relay = %v, want %v containing %q", err, tt.wantErr, tt.msg)
				}
				return
			}
			if err != nil || string(r.Payload) != tt.want {
				t.Fatalf("Relay = %v, %v; want the payload %s", r, err, tt.want)
			}
			if tt.env.From.Host != relay.host.id {
				t.Fatalf("relayed envelope's host = %q, want the relaying host %q", tt.env.From.Host, relay.host.id)
			}
		})
	}
	t.Run("one way", func(t *testing.T) {
		for _, to := range []*node{b, relay} {
			r, err := relay.sys.Relay(ctxT(t), env(to, "/test/note", "allow:/test/note", `"note"`, false))
			if err != nil || r != nil {
				t.Fatalf("one-way Relay = %v, %v; want no reply and no error", r, err)
			}
			if got := <-notes; got != "note" {
				t.Fatalf("delivered %q", got)
			}
		}
	})
}

func TestRelayBroadcast(t *testing.T) {
	net := NewMemNetwork()
	auth := &testAuth{}
	relay := newNode(t, net, auth, nil)
	subs := []*node{newNode(t, net, auth, nil), newNode(t, net, auth, nil)}
	for _, n := range subs {
		n.a.AddBehavior("/test/who", func(ctx context.Context, m *Message) (any, error) { return m.To.Host, nil })
		if err := n.a.Subscribe("who"); err != nil {
			t.Fatal(err)
		}
	}
	user := mustKey(t)
	if err := relay.sys.RelayBroadcast(ctxT(t), &Envelope{From: Handle{DID: user.DID()}, Topic: "who", Behavior: "/test/who"}, nil); !errors.Is(err, ErrDenied) {
		t.Fatalf("RelayBroadcast without an invocation = %v, want denied", err)
	}
	var mu sync.Mutex
	got := map[string]bool{}
	env := &Envelope{From: Handle{DID: user.DID()}, Topic: "who", Behavior: "/test/who", Invocation: []byte("allow:/test/who")}
	err := relay.sys.RelayBroadcast(ctxT(t), env, func(r *Reply) {
		var host string
		if r.Decode(&host) == nil {
			mu.Lock()
			got[host] = true
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "both subscribers receive the broadcast", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[subs[0].host.id] && got[subs[1].host.id]
	})
}
