package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// `dms deployment exec` reaches a running guest over a virtio-serial port
// named ExecPort, whose host end is a unix socket of QEMU. Both ways carry
// frames: a type byte, the session's big-endian uint32, a big-endian
// uint32 length and at most MaxFramePayload bytes. One connection carries
// every session of the VM:
//
//	host → guest   N (open: JSON of ExecRequest), I (stdin), C (stdin closed),
//	               R (terminal size: rows, cols as big-endian uint16)
//	guest → host   H (hello: the agent listens; sent again after every
//	               reconnection), O (stdout), E (stderr),
//	               X (exit: the code as a big-endian int32)
//
// Frames of a session the receiver does not know are dropped.

// ExecPort is the name of the virtio-serial port of exec.
const ExecPort = "dms.exec"

// Frame types.
const (
	FrameOpen       byte = 'N'
	FrameStdin      byte = 'I'
	FrameStdinClose byte = 'C'
	FrameResize     byte = 'R'
	FrameHello      byte = 'H'
	FrameStdout     byte = 'O'
	FrameStderr     byte = 'E'
	FrameExit       byte = 'X'
)

// MaxFramePayload bounds a frame's payload.
const MaxFramePayload = 32 << 10

// frameHeader is the bytes before a payload.
const frameHeader = 9

// Frame is one exec frame.
type Frame struct {
	Type    byte
	Session uint32
	Data    []byte
}

// ExecRequest is the payload of an open frame.
type ExecRequest struct {
	Args []string `json:"args"`
	TTY  bool     `json:"tty,omitempty"`
	Rows int      `json:"rows,omitempty"`
	Cols int      `json:"cols,omitempty"`
}

// ErrFrame wraps every error of a malformed frame.
var ErrFrame = errors.New("exec frame")

// sizes says what payload length a type allows: exactly n (n >= 0) or up
// to MaxFramePayload (-1).
func payloadSize(t byte) (n int, ok bool) {
	switch t {
	case FrameOpen, FrameStdin, FrameStdout, FrameStderr:
		return -1, true
	case FrameStdinClose, FrameHello:
		return 0, true
	case FrameResize, FrameExit:
		return 4, true
	}
	return 0, false
}

// WriteFrame writes f in one Write call (callers serialize writers).
func WriteFrame(w io.Writer, f Frame) error {
	if err := checkFrame(f.Type, len(f.Data)); err != nil {
		return err
	}
	b := make([]byte, frameHeader+len(f.Data))
	b[0] = f.Type
	binary.BigEndian.PutUint32(b[1:], f.Session)
	binary.BigEndian.PutUint32(b[5:], uint32(len(f.Data)))
	copy(b[frameHeader:], f.Data)
	_, err := w.Write(b)
	return err
}

func checkFrame(t byte, n int) error {
	want, ok := payloadSize(t)
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown type 0x%02x", ErrFrame, t)
	case n > MaxFramePayload:
		return fmt.Errorf("%w: %d bytes of payload is over the limit of %d", ErrFrame, n, MaxFramePayload)
	case want >= 0 && n != want:
		return fmt.Errorf("%w: type %q has %d bytes of payload, want %d", ErrFrame, t, n, want)
	}
	return nil
}

// ReadFrame reads one frame. A stream that ends between frames gives
// io.EOF, in one io.ErrUnexpectedEOF; a malformed header an ErrFrame.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(h[5:])
	if n > MaxFramePayload {
		return Frame{}, fmt.Errorf("%w: %d bytes of payload is over the limit of %d", ErrFrame, n, MaxFramePayload)
	}
	if err := checkFrame(h[0], int(n)); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: h[0], Session: binary.BigEndian.Uint32(h[1:])}
	if n > 0 {
		f.Data = make([]byte, n)
		if _, err := io.ReadFull(r, f.Data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
	}
	return f, nil
}

// OpenFrame encodes an open frame.
func OpenFrame(session uint32, req ExecRequest) (Frame, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Frame{}, err
	}
	if len(b) > MaxFramePayload {
		return Frame{}, fmt.Errorf("exec: the command is %d bytes long, over the limit of %d", len(b), MaxFramePayload)
	}
	return Frame{Type: FrameOpen, Session: session, Data: b}, nil
}

// ParseOpen decodes an open frame's payload.
func ParseOpen(data []byte) (ExecRequest, error) {
	var req ExecRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return req, fmt.Errorf("%w: open: %v", ErrFrame, err)
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return req, fmt.Errorf("%w: open: empty command", ErrFrame)
	}
	if req.Rows < 0 || req.Cols < 0 || req.Rows > 0xffff || req.Cols > 0xffff {
		return req, fmt.Errorf("%w: open: terminal size %dx%d out of range", ErrFrame, req.Rows, req.Cols)
	}
	return req, nil
}

// ResizeFrame encodes a terminal size (clamped to 0…65535).
func ResizeFrame(session uint32, rows, cols int) Frame {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, uint16(min(max(rows, 0), 0xffff)))
	binary.BigEndian.PutUint16(b[2:], uint16(min(max(cols, 0), 0xffff)))
	return Frame{Type: FrameResize, Session: session, Data: b}
}

// ParseResize decodes a resize frame's payload (4 bytes, checked by
// ReadFrame).
func ParseResize(data []byte) (rows, cols int) {
	return int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:]))
}

// ExitFrame encodes an exit code.
func ExitFrame(session uint32, code int) Frame {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(int32(code)))
	return Frame{Type: FrameExit, Session: session, Data: b}
}

// ParseExit decodes an exit frame's payload (4 bytes, checked by
// ReadFrame).
func ParseExit(data []byte) int {
	return int(int32(binary.BigEndian.Uint32(data)))
}
