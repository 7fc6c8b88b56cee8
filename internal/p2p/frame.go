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
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
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
	frame, err := readN(r, size)
	if err != nil {
		return nil, fmt.Errorf("read frame body: %w", noEOF(err))
	}
	return frame, nil
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
