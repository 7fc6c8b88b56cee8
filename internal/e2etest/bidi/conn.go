package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultTimeout bounds a command whose context has no deadline.
const DefaultTimeout = time.Minute

// writeTimeout bounds sending one frame.
const writeTimeout = 10 * time.Second

// ErrClosed is returned by commands after the connection ended.
var ErrClosed = errors.New("bidi: connection closed")

// Conn is one WebDriver BiDi connection: commands with their answers, and
// events to the handlers registered with OnEvent. Its methods are safe for
// concurrent use.
type Conn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex // serializes writes to ws
	done chan struct{}
	// running counts the event handlers running; the reader adds to it,
	// so that once done is closed nothing more does.
	running sync.WaitGroup

	mu       sync.Mutex                                // guards the fields below
	next     int64                                     // the last id sent
	pending  map[int64]chan message                    // commands waiting for their answer
	handlers map[string][]func(params json.RawMessage) // events by method
	err      error                                     // why the connection ended

	trace func(dir string, data []byte) // set before use: every frame, for debugging
}

// Trace makes the connection report every frame it sends (dir "→") and
// receives ("←") to f; call it before the first command.
func (c *Conn) Trace(f func(dir string, data []byte)) { c.trace = f }

// Dial connects to a WebDriver BiDi endpoint, e.g.
// ws://127.0.0.1:PORT/session.
func Dial(ctx context.Context, url string) (*Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	ws, resp, err := d.DialContext(ctx, url, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("bidi: dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("bidi: dial %s: %w", url, err)
	}
	ws.SetReadLimit(256 << 20) // a full-page screenshot, base64
	c := &Conn{
		ws:       ws,
		done:     make(chan struct{}),
		pending:  map[int64]chan message{},
		handlers: map[string][]func(json.RawMessage){},
	}
	go c.read()
	return c, nil
}

// read delivers answers and events until the connection ends. A message
// that breaks the protocol ends the connection: every waiting command then
// fails with that error rather than hanging.
func (c *Conn) read() {
	var err error
	for {
		var data []byte
		if _, data, err = c.ws.ReadMessage(); err != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
			break
		}
		if c.trace != nil {
			c.trace("←", data)
		}
		if err = c.dispatch(data); err != nil {
			break
		}
	}
	c.mu.Lock()
	c.err = err
	c.pending = nil
	c.mu.Unlock()
	c.ws.Close()
	close(c.done)
}

// dispatch hands one message to its command or its event handlers.
func (c *Conn) dispatch(data []byte) error {
	m, err := decodeMessage(data)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.Kind {
	case kindEvent:
		for _, h := range c.handlers[m.Method] {
			c.running.Go(func() { h(m.Params) }) // a handler may send commands: never on this goroutine
		}
		return nil
	}
	if !m.HasID {
		// The browser could not read a command; which one is unknown.
		m.Err.Method = "(unreadable command)"
		return m.Err
	}
	ch, ok := c.pending[m.ID]
	if !ok {
		if m.ID <= 0 || m.ID > c.next {
			return fmt.Errorf("bidi: answer to id %d, never sent", m.ID)
		}
		return nil // its caller gave up (context ended)
	}
	delete(c.pending, m.ID)
	ch <- m // buffered
	return nil
}

// OnEvent calls h, on a goroutine of its own, with the parameters of every
// event named method (e.g. "browsingContext.userPromptOpened"). The browser
// sends only events the session subscribed to (Subscribe). Close waits for
// the handlers running to return.
func (c *Conn) OnEvent(method string, h func(params json.RawMessage)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[method] = append(c.handlers[method], h)
}

// Subscribe asks the browser for events (session.subscribe), for every
// browsing context.
func (c *Conn) Subscribe(ctx context.Context, events ...string) error {
	return c.Call(ctx, "session.subscribe", map[string]any{"events": events}, nil)
}

// Call sends the command method with params (any JSON-encodable value; nil
// is {}) and decodes its result into result (nil discards it). An error
// from the browser is an *Error naming the method. Without a deadline on
// ctx, DefaultTimeout applies.
func (c *Conn) Call(ctx context.Context, method string, params, result any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("bidi %s: %w", method, err)
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}

	data, err := encodeCommand(id, method, params)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		forget()
		return err
	}
	if c.trace != nil {
		c.trace("→", data)
	}
	c.wmu.Lock()
	// Not the context's deadline: a write that times out leaves the
	// WebSocket unusable, and a local socket takes a frame at once.
	c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	err = c.ws.WriteMessage(websocket.TextMessage, data)
	c.wmu.Unlock()
	if err != nil {
		forget()
		return fmt.Errorf("bidi %s: send: %w", method, err)
	}

	var m message
	select {
	case m = <-ch:
	case <-ctx.Done():
		forget()
		return fmt.Errorf("bidi %s: no answer: %w", method, ctx.Err())
	case <-c.done:
		select {
		case m = <-ch: // answered just before the end
		default:
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("bidi %s: %w", method, err)
		}
	}
	if m.Err != nil {
		m.Err.Method = method
		return m.Err
	}
	if result != nil {
		if err := json.Unmarshal(m.Result, result); err != nil {
			return fmt.Errorf("bidi %s: decode result: %w", method, err)
		}
	}
	return nil
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close ends the connection and waits (at most 5 s) for its reader to
// stop, then (at most 5 s more) for the event handlers running to return:
// their commands fail with ErrClosed once the reader stopped.
func (c *Conn) Close() error {
	c.wmu.Lock()
	c.ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.wmu.Unlock()
	_ = c.ws.Close() // the reader closes it too; which one is first does not matter
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		return errors.New("bidi: the reader did not stop within 5 s of closing")
	}
	handlers := make(chan struct{})
	go func() {
		c.running.Wait()
		close(handlers)
	}()
	select {
	case <-handlers:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("bidi: event handlers still running 5 s after the connection closed")
	}
}
