package guest

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	open, err := OpenFrame(7, ExecRequest{Args: []string{"sh", "-c", "echo hi"}, TTY: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Frame{
		open,
		{Type: FrameStdin, Session: 1, Data: []byte("input")},
		{Type: FrameStdinClose, Session: 1},
		ResizeFrame(2, 50, 132),
		{Type: FrameHello},
		{Type: FrameStdout, Session: 0xffffffff, Data: bytes.Repeat([]byte("x"), MaxFramePayload)},
		{Type: FrameStderr, Session: 3, Data: []byte("oops\n")},
		ExitFrame(4, -1),
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatalf("WriteFrame(%q): %v", f.Type, err)
		}
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatalf("ReadFrame(%q): %v", f.Type, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("round trip of %q: got %+v", f.Type, got)
		}
		if buf.Len() != 0 {
			t.Errorf("%q: %d bytes left", f.Type, buf.Len())
		}
	}
	req, err := ParseOpen(open.Data)
	if err != nil || req.Args[2] != "echo hi" || !req.TTY || req.Rows != 24 || req.Cols != 80 {
		t.Errorf("ParseOpen = %+v, %v", req, err)
	}
	if r, c := ParseResize(ResizeFrame(0, 50, 132).Data); r != 50 || c != 132 {
		t.Errorf("ParseResize = %d, %d", r, c)
	}
	if r, c := ParseResize(ResizeFrame(0, -3, 1<<20).Data); r != 0 || c != 0xffff {
		t.Errorf("ParseResize clamped = %d, %d", r, c)
	}
	for _, code := range []int{0, 1, 127, 255, -1} {
		if got := ParseExit(ExitFrame(0, code).Data); got != code {
			t.Errorf("ParseExit(%d) = %d", code, got)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte {
		return []byte{typ, 0, 0, 0, 1, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" and wantErr: the error
		err  error
	}{
		{name: "empty", in: nil, err: io.EOF},
		{name: "short header", in: []byte{'O', 0, 0}, err: io.ErrUnexpectedEOF},
		{name: "short payload", in: append(hdr('O', 5), "abc"...), err: io.ErrUnexpectedEOF},
		{name: "unknown type", in: hdr('z', 0), want: "unknown type 0x7a"},
		{name: "too big", in: hdr('O', MaxFramePayload+1), want: "over the limit of 32768"},
		{name: "huge", in: hdr('I', 0xffffffff), want: "over the limit"},
		{name: "exit of 3 bytes", in: append(hdr('X', 3), 0, 0, 0), want: `type 'X' has 3 bytes of payload, want 4`},
		{name: "hello with payload", in: append(hdr('H', 1), 0), want: "want 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an ErrFrame with %q", err, tc.want)
			}
		})
	}
}

func TestWriteFrameRefuses(t *testing.T) {
	for _, f := range []Frame{
		{Type: 'z'},
		{Type: FrameStdout, Data: make([]byte, MaxFramePayload+1)},
		{Type: FrameExit, Data: []byte{1}},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, f); !errors.Is(err, ErrFrame) || buf.Len() != 0 {
			t.Errorf("WriteFrame(%q, %d bytes) = %v, wrote %d", f.Type, len(f.Data), err, buf.Len())
		}
	}
}

func TestParseOpen(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`{"args":["ls","-l"]}`, ""},
		{`{"args":[]}`, "empty command"},
		{`{"args":[""]}`, "empty command"},
		{`{"args":["sh"],"rows":-1}`, "out of range"},
		{`{"args":["sh"],"cols":70000}`, "out of range"},
		{`[`, "open:"},
	} {
		_, err := ParseOpen([]byte(tc.in))
		if tc.want == "" {
			if err != nil {
				t.Errorf("ParseOpen(%s) = %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseOpen(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, Frame{Type: FrameStdout, Session: 2, Data: []byte("hello\n")})
	WriteFrame(&buf, ExitFrame(2, 3))
	f.Add(buf.Bytes())
	open, _ := OpenFrame(1, ExecRequest{Args: []string{"sh"}, TTY: true})
	buf.Reset()
	WriteFrame(&buf, open)
	f.Add(buf.Bytes())
	f.Add([]byte{'R', 0, 0, 0, 1, 0, 0, 0, 4, 0, 24, 0, 80})
	f.Add([]byte{'I', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Data) > MaxFramePayload {
				t.Fatalf("a frame of %d bytes", len(fr.Data))
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, fr); err != nil {
				t.Fatalf("a frame read cannot be written: %v", err)
			}
			again, err := ReadFrame(&out)
			if err != nil || !reflect.DeepEqual(again, fr) {
				t.Fatalf("round trip: %+v, %v; want %+v", again, err, fr)
			}
			switch fr.Type {
			case FrameOpen:
				ParseOpen(fr.Data)
			case FrameResize:
				ParseResize(fr.Data)
			case FrameExit:
				ParseExit(fr.Data)
			}
		}
	})
}
