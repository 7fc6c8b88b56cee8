package api

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		typ     byte
		payload []byte
	}{
		{name: "stdin", typ: FrameStdin, payload: []byte("hello")},
		{name: "empty stdout", typ: FrameStdout, payload: []byte{}},
		{name: "stdin eof", typ: FrameStdinEOF, payload: []byte{}},
		{name: "exit -1", typ: FrameExit, payload: ExitPayload(-1)},
		{name: "resize", typ: FrameResize, payload: ResizePayload(TermSize{Rows: 50, Cols: 200})},
		{name: "largest", typ: FrameStderr, payload: bytes.Repeat([]byte("z"), MaxFramePayload)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteFrame(&b, tc.typ, tc.payload); err != nil {
				t.Fatal(err)
			}
			typ, p, err := ReadFrame(&b)
			if err != nil || typ != tc.typ || !bytes.Equal(p, tc.payload) {
				t.Fatalf("ReadFrame = %q, %d bytes, %v; want %q, %d bytes", typ, len(p), err, tc.typ, len(tc.payload))
			}
		})
	}
	if ExitCode(ExitPayload(-1)) != -1 || ExitCode(ExitPayload(130)) != 130 {
		t.Error("ExitCode(ExitPayload(x)) != x")
	}
	if got := ResizeOf(ResizePayload(TermSize{Rows: 50, Cols: 200})); got != (TermSize{Rows: 50, Cols: 200}) {
		t.Errorf("ResizeOf(ResizePayload(50x200)) = %+v", got)
	}
	if got := ResizeOf(ResizePayload(TermSize{Rows: -1, Cols: 1 << 20})); got != (TermSize{Rows: 0, Cols: 0xffff}) {
		t.Errorf("ResizeOf(ResizePayload(-1x1M)) = %+v, want clamped to 0x65535", got)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "unknown type", in: "z\x00\x00\x00\x00", want: "unknown frame type"},
		{name: "too large", in: "o\x00\x00\x80\x01", want: "the most is 32768"},
		{name: "exit of 3 bytes", in: "x\x00\x00\x00\x03abc", want: "'x' frame with 3 bytes, want 4"},
		{name: "resize of 2 bytes", in: "r\x00\x00\x00\x02ab", want: "'r' frame with 2 bytes, want 4"},
		{name: "eof with data", in: "I\x00\x00\x00\x01a", want: "stdin-EOF frame with 1 bytes"},
		{name: "truncated header", in: "o\x00", want: "truncated frame header"},
		{name: "truncated payload", in: "o\x00\x00\x00\x05ab", want: "truncated frame"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFrame(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadFrame(%q) = %v, want %q", tc.in, err, tc.want)
			}
		})
	}
	if _, _, err := ReadFrame(strings.NewReader("")); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame(empty) = %v, want io.EOF", err)
	}
	if err := WriteFrame(io.Discard, FrameStdout, make([]byte, MaxFramePayload+1)); err == nil {
		t.Error("WriteFrame of an oversized payload succeeded")
	}
}

func TestFrameWriterSplits(t *testing.T) {
	var b bytes.Buffer
	var mu sync.Mutex
	data := bytes.Repeat([]byte("ab"), MaxFramePayload+3)
	if n, err := (FrameWriter{W: &b, Typ: FrameStdout, Mu: &mu}).Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	var got []byte
	frames := 0
	for {
		typ, p, err := ReadFrame(&b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || typ != FrameStdout {
			t.Fatalf("ReadFrame = %q, %v", typ, err)
		}
		got = append(got, p...)
		frames++
	}
	if frames != 3 || !bytes.Equal(got, data) {
		t.Errorf("%d frames, %d bytes; want 3 frames, %d bytes", frames, len(got), len(data))
	}
}

func TestParseExecRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     ExecRequest
		query   string
		wantErr string
	}{
		{name: "round trip", req: ExecRequest{Cmd: []string{"sh", "-c", "echo a&b"}, Stdin: true, TTY: true, Rows: 40, Cols: 120}},
		{name: "no cmd", query: "tty=true", wantErr: "cmd is required"},
		{name: "bad bool", query: "cmd=sh&tty=maybe", wantErr: `tty "maybe"`},
		{name: "bad size", query: "cmd=sh&rows=-3", wantErr: `rows "-3"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.req.query()
			if tc.query != "" {
				q, _ = url.ParseQuery(tc.query)
			}
			got, err := ParseExecRequest(q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseExecRequest(%s) = %v, want %q", q.Encode(), err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got.Cmd, "|") != strings.Join(tc.req.Cmd, "|") || got.Stdin != tc.req.Stdin || got.TTY != tc.req.TTY || got.Rows != tc.req.Rows || got.Cols != tc.req.Cols {
				t.Errorf("ParseExecRequest = %+v, %v, want %+v", got, err, tc.req)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, FrameStdin, []byte("hi"))
	WriteFrame(&b, FrameExit, ExitPayload(3))
	f.Add(b.Bytes())
	f.Add([]byte("I\x00\x00\x00\x00"))
	f.Add([]byte("o\xff\xff\xff\xff"))
	f.Add([]byte("E\x00\x00\x00\x02no"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			typ, p, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(p) > MaxFramePayload {
				t.Fatalf("frame %q of %d bytes accepted", typ, len(p))
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, typ, p); err != nil {
				t.Fatalf("re-encoding an accepted frame: %v", err)
			}
			typ2, p2, err := ReadFrame(&out)
			if err != nil || typ2 != typ || !bytes.Equal(p, p2) {
				t.Fatalf("round trip of %q: %v", typ, err)
			}
		}
	})
}
