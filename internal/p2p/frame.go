package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/dmsnet/dms/internal/actor"
)

// Frames on a link are an unsigned varint length followed by that many bytes.

// maxSkip bounds the length of an oversized frame the reader skips to keep
// the link usable; a longer declared length is a protocol error.
const maxSkip = 1 << 30

// errBadLength reports a frame length no sender of ours would write.
var errBadLength = errors.New("bad frame length")

// readFrame reads one frame of at most limit bytes. A longer frame (up to
// maxSkip) is read past and reported as *actor.FrameTooLargeError with its
// first actor.FrameHeadSize bytes; r is then positioned at the next frame.
// Any other error leaves r unusable.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) { return readFrameFrom(r, limit, nil) }

// readFrameFrom is readFrame taking the memory of a small frame from sl
// (nil: its own allocation).
func readFrameFrom(r *bufio.Reader, limit int, sl *slab) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF // a clean end between frames
		}
		return nil, fmt.Errorf("read frame length: %w", err)
	}
	if n > maxSkip {
		return nil, fmt.Errorf("%w: %d bytes", errBadLength, n)
	}
	size := int(n)
	if size > limit {
		head := make([]byte, min(size, actor.FrameHeadSize))
		if _, err := io.ReadFull(r, head); err != nil {
			return nil, fmt.Errorf("read oversized frame: %w", noEOF(err))
		}
		if _, err := r.Discard(size - len(head)); err != nil {
			return nil, fmt.Errorf("skip oversized frame: %w", noEOF(err))
		}
		return nil, &actor.FrameTooLargeError{Size: size, Limit: limit, Head: head}
	}
	if size <= slabFrameMax && sl != nil {
		frame := sl.get(size)
		if _, err := io.ReadFull(r, frame); err != nil {
			return nil, fmt.Errorf("read frame body: %w", noEOF(err))
		}
		return frame, nil
	}
	frame, err := readN(r, size)
	if err != nil {
		return nil, fmt.Errorf("read frame body: %w", noEOF(err))
	}
	return frame, nil
}

// slab hands out the memory of small received frames from larger blocks,
// so that a link's reader allocates once per slabSize bytes instead of once
// per frame. A frame is a full slice of its own part of a block (its
// capacity ends where it does), and the reader never writes to a part it
// handed out. What a receiver keeps of a frame keeps its whole block
// alive: at most slabSize/minimal frame, some 16 KiB for a few bytes, and
// only for frames of at most slabFrameMax bytes; larger frames get their
// own allocation.
type slab struct{ free []byte }

const (
	slabSize     = 16 << 10
	slabFrameMax = 2 << 10
)

func (s *slab) get(n int) []byte {
	if len(s.free) < n {
		s.free = make([]byte, slabSize)
	}
	b := s.free[:n:n]
	s.free = s.free[n:]
	return b
}

// readN reads exactly n bytes, growing the buffer as data arrives so that a
// peer announcing a large frame cannot make us allocate it up front.
func readN(r io.Reader, n int) ([]byte, error) {
	const step = 64 << 10
	if n <= step {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, step)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(cap(b), n-len(b)))
		}
		m, err := io.ReadFull(r, b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeFrame writes one frame to w.
func writeFrame(w *bufio.Writer, frame []byte) error {
	// The length prefix goes into the writer's free buffer space: a
	// stack array would escape through Write, one allocation per frame.
	if _, err := w.Write(binary.AppendUvarint(w.AvailableBuffer(), uint64(len(frame)))); err != nil {
		return err
	}
	_, err := w.Write(frame)
	return err
}
