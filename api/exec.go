package api

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// ExecProtocol is the Upgrade token of POST
// /api/v1/deployments/{id}/allocations/{alloc}/exec: after the 101 answer
// both sides speak in frames (WriteFrame, ReadFrame) on the connection.
//
// The client sends FrameStdin frames and one FrameStdinEOF; the server
// sends FrameStdout and FrameStderr frames and ends with one FrameExit
// (the command's exit code) or one FrameError (why it could not run or
// finish).
const ExecProtocol = "dms-exec/1"

// The frame types of the exec protocol.
const (
	FrameStdin    byte = 'i'
	FrameStdinEOF byte = 'I' // no payload: stdin is closed
	FrameStdout   byte = 'o'
	FrameStderr   byte = 'e'
	FrameExit     byte = 'x' // payload: the exit code, big-endian int32
	FrameError    byte = 'E' // payload: a one-line message
	FrameResize   byte = 'r' // client to node, with a TTY; payload: rows and columns, big-endian uint16 each
)

// MaxFramePayload is the most one frame carries; ReadFrame refuses larger
// frames, writers split.
const MaxFramePayload = 32 << 10

// ExecRequest says what to run in an allocation.
type ExecRequest struct {
	Cmd   []string // the command and its arguments
	Stdin bool     // attach stdin (-i)
	TTY   bool     // allocate a terminal (-t); stdout and stderr then arrive as one stream
	Rows  int      // the terminal's initial size, with TTY
	Cols  int
	// Resize, with TTY, carries the terminal's new sizes while the command
	// runs (the client sends them as FrameResize; the server's handler
	// sets it for the ExecService). Not part of the query.
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows, Cols int
}

// ResizePayload encodes a FrameResize.
func ResizePayload(s TermSize) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(min(max(s.Rows, 0), 0xffff)))
	return binary.BigEndian.AppendUint16(b, uint16(min(max(s.Cols, 0), 0xffff)))
}

// ResizeOf decodes the payload of a FrameResize.
func ResizeOf(payload []byte) TermSize {
	return TermSize{Rows: int(binary.BigEndian.Uint16(payload)), Cols: int(binary.BigEndian.Uint16(payload[2:]))}
}

func (r ExecRequest) query() url.Values {
	q := url.Values{"cmd": r.Cmd}
	if r.Stdin {
		q.Set("stdin", "true")
	}
	if r.TTY {
		q.Set("tty", "true")
		if r.Rows > 0 && r.Cols > 0 {
			q.Set("rows", strconv.Itoa(r.Rows))
			q.Set("cols", strconv.Itoa(r.Cols))
		}
	}
	return q
}

// ParseExecRequest reads an ExecRequest from the query of an exec request
// (for the server).
func ParseExecRequest(q url.Values) (ExecRequest, error) {
	r := ExecRequest{Cmd: q["cmd"]}
	if len(r.Cmd) == 0 || r.Cmd[0] == "" {
		return r, errors.New("cmd is required: the command to run and its arguments")
	}
	var err error
	if r.Stdin, err = parseBool(q, "stdin"); err != nil {
		return r, err
	}
	if r.TTY, err = parseBool(q, "tty"); err != nil {
		return r, err
	}
	for _, p := range []struct {
		name string
		to   *int
	}{{"rows", &r.Rows}, {"cols", &r.Cols}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 10000 {
				return r, fmt.Errorf("%s %q: want a terminal size from 0 to 10000", p.name, v)
			}
			*p.to = n
		}
	}
	return r, nil
}

func parseBool(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s %q: want true or false", name, v)
	}
	return b, nil
}

// WriteFrame writes one frame: its type, the payload's length as a
// big-endian uint32, and the payload (at most MaxFramePayload bytes).
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return fmt.Errorf("frame of %d bytes: the most is %d", len(payload), MaxFramePayload)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame written by WriteFrame. It refuses unknown
// types and payloads over MaxFramePayload; io.EOF means the stream ended
// cleanly between frames.
func ReadFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("exec stream: truncated frame header")
		}
		return 0, nil, err
	}
	typ = head[0]
	n := binary.BigEndian.Uint32(head[1:])
	switch typ {
	case FrameStdin, FrameStdout, FrameStderr, FrameError:
	case FrameStdinEOF:
		if n != 0 {
			return 0, nil, fmt.Errorf("exec stream: stdin-EOF frame with %d bytes", n)
		}
	case FrameExit, FrameResize:
		if n != 4 {
			return 0, nil, fmt.Errorf("exec stream: %q frame with %d bytes, want 4", typ, n)
		}
	default:
		return 0, nil, fmt.Errorf("exec stream: unknown frame type %q", typ)
	}
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("exec stream: frame of %d bytes: the most is %d", n, MaxFramePayload)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("exec stream: truncated frame: %w", err)
	}
	return typ, payload, nil
}

// ExitPayload encodes an exit code for a FrameExit.
func ExitPayload(code int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(int32(code))) }

// ExitCode decodes the payload of a FrameExit.
func ExitCode(payload []byte) int { return int(int32(binary.BigEndian.Uint32(payload))) }

// FrameWriter is an io.Writer that sends what it is given as frames of one
// type, split at MaxFramePayload. It is safe for concurrent use with other
// FrameWriters sharing its mutex.
type FrameWriter struct {
	W   io.Writer
	Typ byte
	Mu  *sync.Mutex
}

func (f FrameWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), MaxFramePayload)
		f.Mu.Lock()
		err := WriteFrame(f.W, f.Typ, p[:k])
		f.Mu.Unlock()
		if err != nil {
			return n - len(p), err
		}
		p = p[k:]
	}
	return n, nil
}

// Exec runs a command in a running allocation of a deployment, as `dms
// deployment exec` does: stdin (when req.Stdin) is sent as it is read,
// output is written to stdout and stderr (with a TTY all of it to stdout),
// and it returns the command's exit code once it has ended.
func (c *Client) Exec(ctx context.Context, id, alloc string, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	path := "/api/v1/deployments/" + url.PathEscape(id) + "/allocations/" + url.PathEscape(alloc) + "/exec?" + req.query().Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", ExecProtocol)
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return 0, fmt.Errorf("exec: the node did not switch to %s (%s)", ExecProtocol, resp.Status)
		}
		return 0, decodeError(resp)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return 0, errors.New("exec: the upgraded connection is not writable")
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var mu sync.Mutex
	if req.Stdin && stdin != nil {
		go func() {
			io.Copy(FrameWriter{W: conn, Typ: FrameStdin, Mu: &mu}, stdin)
			mu.Lock()
			WriteFrame(conn, FrameStdinEOF, nil)
			mu.Unlock()
		}()
	} else {
		mu.Lock()
		err := WriteFrame(conn, FrameStdinEOF, nil)
		mu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("exec: %w", err)
		}
	}
	if req.TTY && req.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case sz, ok := <-req.Resize:
					if !ok {
						return
					}
					mu.Lock()
					WriteFrame(conn, FrameResize, ResizePayload(sz))
					mu.Unlock()
				case <-done:
					return
				}
			}
		}()
	}
	for {
		typ, payload, err := ReadFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return 0, errors.New("exec: the node closed the stream before the command ended")
			}
			return 0, fmt.Errorf("exec: %w", err)
		}
		switch typ {
		case FrameStdout:
			stdout.Write(payload)
		case FrameStderr:
			stderr.Write(payload)
		case FrameExit:
			return ExitCode(payload), nil
		case FrameError:
			return 0, errors.New(string(payload))
		default:
			return 0, fmt.Errorf("exec: unexpected frame %q from the node", typ)
		}
	}
}
