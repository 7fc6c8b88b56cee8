package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeBrowser answers each command with what reply returns for it (nil:
// no answer), over a real WebSocket.
func fakeBrowser(t *testing.T, reply func(ws *websocket.Conn, cmd command) []string) *Conn {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var cmd command
			if err := json.Unmarshal(data, &cmd); err != nil {
				t.Errorf("fake browser: %v", err)
				return
			}
			for _, m := range reply(ws, cmd) {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/session")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnCall(t *testing.T) {
	c := fakeBrowser(t, func(_ *websocket.Conn, cmd command) []string {
		id, _ := json.Marshal(cmd.ID)
		switch cmd.Method {
		case "ok":
			// An event first, then the answer.
			return []string{`{"type":"event","method":"log.entryAdded","params":{"text":"hi"}}`,
				`{"type":"success","id":` + string(id) + `,"result":{"n":2}}`}
		case "fail":
			return []string{`{"type":"error","id":` + string(id) + `,"error":"invalid argument","message":"bad url","stacktrace":"..."}`}
		}
		return nil // "silent": never answered
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	events := make(chan string, 1)
	c.OnEvent("log.entryAdded", func(p json.RawMessage) { events <- string(p) })
	var r struct{ N int }
	if err := c.Call(ctx, "ok", nil, &r); err != nil || r.N != 2 {
		t.Fatalf("Call(ok) = %+v, %v", r, err)
	}
	select {
	case p := <-events:
		if p != `{"text":"hi"}` {
			t.Errorf("event params = %s", p)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}

	err := c.Call(ctx, "fail", map[string]string{"url": "x"}, nil)
	var be *Error
	if !errors.As(err, &be) || be.Method != "fail" || be.Code != "invalid argument" || err.Error() != "bidi fail: invalid argument: bad url" {
		t.Fatalf("Call(fail) = %v, want an *Error naming the method", err)
	}

	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if err := c.Call(short, "silent", nil, nil); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "bidi silent: no answer") {
		t.Fatalf("Call(silent) = %v, want the deadline", err)
	}
	// The connection still works after a command was given up.
	if err := c.Call(ctx, "ok", nil, nil); err != nil {
		t.Fatalf("Call(ok) after a timeout: %v", err)
	}
}

func TestConnProtocolBreach(t *testing.T) {
	tests := []struct {
		name    string
		answer  string
		wantErr string
	}{
		{"garbage", `not json`, "undecodable message"},
		{"an answer to a command never sent", `{"type":"success","id":99,"result":{}}`, "answer to id 99, never sent"},
		{"an error without id", `{"type":"error","id":null,"error":"invalid argument","message":"no id"}`, "bidi (unreadable command): invalid argument: no id"},
		{"unknown type", `{"type":"progress","id":1}`, `unknown type "progress"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeBrowser(t, func(*websocket.Conn, command) []string { return []string{tt.answer} })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := c.Call(ctx, "m", nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "bidi m: ") {
				t.Fatalf("Call = %v, want an error naming m with %q", err, tt.wantErr)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("the connection did not end")
			}
			if err := c.Call(ctx, "again", nil, nil); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Call after the breach = %v, want the breach", err)
			}
		})
	}
}

func TestConnClosedByBrowser(t *testing.T) {
	c := fakeBrowser(t, func(ws *websocket.Conn, cmd command) []string {
		ws.Close()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Call(ctx, "browser.close", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call = %v, want ErrClosed", err)
	}
}

// Close returns only once the event handlers running have returned: a
// handler that logs with a test's t.Logf must not outlive the test.
func TestConnCloseWaitsForHandlers(t *testing.T) {
	c := fakeBrowser(t, func(_ *websocket.Conn, cmd command) []string {
		id, _ := json.Marshal(cmd.ID)
		return []string{`{"type":"event","method":"browsingContext.userPromptOpened","params":{}}`,
			`{"type":"success","id":` + string(id) + `,"result":{}}`}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := make(chan struct{})
	var finished atomic.Bool
	c.OnEvent("browsingContext.userPromptOpened", func(json.RawMessage) {
		close(started)
		<-c.Done()
		// What a prompt handler does at the end: answer, fail, log.
		err := c.Call(context.Background(), "browsingContext.handleUserPrompt", nil, nil)
		finished.Store(errors.Is(err, ErrClosed))
	})
	if err := c.Call(ctx, "session.subscribe", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no event")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("Close returned while an event handler was still running")
	}
}
