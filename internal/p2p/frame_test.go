package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
)

func frames(fs ...[]byte) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, f := range fs {
		if err := writeFrame(w, f); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestReadFrame(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 100_000)
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  []string // frames; "!big" is a FrameTooLargeError
		end   error    // the error after the frames
	}{
		{"empty stream", nil, 10, nil, io.EOF},
		{"one frame", frames([]byte("abc")), 10, []string{"abc"}, io.EOF},
		{"empty frame", frames(nil, []byte("x")), 10, []string{"", "x"}, io.EOF},
		{"at the limit", frames([]byte("0123456789")), 10, []string{"0123456789"}, io.EOF},
		{"over the limit, then usable", frames([]byte("0123456789a"), []byte("ok")), 10, []string{"!big", "ok"}, io.EOF},
		{"large frame read in steps", frames(big), len(big), []string{string(big)}, io.EOF},
		{"truncated body", frames([]byte("abcdef"))[:4], 10, nil, io.ErrUnexpectedEOF},
		{"truncated oversized body", frames(big)[:1000], 10, nil, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x80}, 10, nil, io.ErrUnexpectedEOF},
		{"length overflows", bytes.Repeat([]byte{0xff}, 11), 10, nil, errors.New("overflow")},
		{"length beyond any limit", binary.AppendUvarint(nil, maxSkip+1), 10, nil, errBadLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tc.in))
			for i, want := range tc.want {
				f, err := readFrame(r, tc.limit)
				if want == "!big" {
					var tooLarge *actor.FrameTooLargeError
					if !errors.As(err, &tooLarge) || tooLarge.Limit != tc.limit || len(tooLarge.Head) > actor.FrameHeadSize {
						t.Fatalf("frame %d: err = %v, want FrameTooLargeError", i, err)
					}
					continue
				}
				if err != nil || string(f) != want {
					t.Fatalf("frame %d = %.20q, %v; want %.20q", i, f, err, want)
				}
			}
			_, err := readFrame(r, tc.limit)
			switch {
			case tc.end == io.EOF || tc.end == io.ErrUnexpectedEOF || tc.end == errBadLength:
				if !errors.Is(err, tc.end) {
					t.Fatalf("end: err = %v, want %v", err, tc.end)
				}
			case err == nil:
				t.Fatalf("end: no error, want %v", tc.end)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it never
// panics, never returns a frame over the limit, and keeps Head short.
func FuzzReadFrame(f *testing.F) {
	f.Add(frames([]byte("abc"), nil, []byte("0123456789abcdef")), 8)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 8)
	f.Add(binary.AppendUvarint(nil, 300), 0)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		for range len(in) + 1 {
			fr, err := readFrame(r, limit)
			var tooLarge *actor.FrameTooLargeError
			switch {
			case err == nil:
				if len(fr) > limit {
					t.Fatalf("frame of %d bytes over the limit %d", len(fr), limit)
				}
			case errors.As(err, &tooLarge):
				if tooLarge.Size <= limit || len(tooLarge.Head) > actor.FrameHeadSize {
					t.Fatalf("bad FrameTooLargeError %+v", tooLarge)
				}
			default:
				return
			}
		}
		t.Fatal("more frames than bytes")
	})
}

// TestReadFrameSlab reads frames of several sizes through one slab: each
// is whole, its capacity ends where it does (appending to one cannot write
// into the next), and the large ones do not come from the slab.
func TestReadFrameSlab(t *testing.T) {
	sizes := []int{0, 1, 100, slabFrameMax, slabFrameMax + 1, slabSize - 10, 300, slabSize + 5}
	var in bytes.Buffer
	for i, n := range sizes {
		in.Write(binary.AppendUvarint(nil, uint64(n)))
		in.Write(bytes.Repeat([]byte{byte(i + 1)}, n))
	}
	r := bufio.NewReader(&in)
	var sl slab
	var got [][]byte
	for i, n := range sizes {
		f, err := readFrameFrom(r, 1<<20, &sl)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(f) != n || cap(f) != n || !bytes.Equal(f, bytes.Repeat([]byte{byte(i + 1)}, n)) {
			t.Fatalf("frame %d: len %d cap %d, want %d bytes of %d", i, len(f), cap(f), n, i+1)
		}
		got = append(got, f)
	}
	for i, f := range got {
		if !bytes.Equal(f, bytes.Repeat([]byte{byte(i + 1)}, sizes[i])) {
			t.Fatalf("frame %d changed after later reads", i)
		}
	}
}
