package allocation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dmsnet/dms/internal/deployproto"
)

// The log file of an allocation is a sequence of frames, each a stream byte,
// a big-endian uint32 length and that many bytes of data. Offsets handed to
// readers (LogsChunk.Next) are file offsets of frame boundaries, so a reader
// resumes exactly where it stopped, also after a daemon restart.
const (
	streamStdout = 'o'
	streamStderr = 'e'
	// streamMark starts the output of one executor instance; its data is
	// the instance ID. Readers skip it; re-attach uses it to know how much
	// of the instance's output was already copied.
	streamMark = 'm'

	frameHead = 5
	// maxFrame is the most data one frame holds; longer writes are split.
	maxFrame = 32 << 10
)

// logFile is an allocation's framed log. Appends and reads may run
// concurrently.
type logFile struct {
	mu      sync.Mutex
	f       *os.File      // guarded by mu
	size    int64         // guarded by mu: offset of the end of the last whole frame
	changed chan struct{} // guarded by mu: closed and replaced at every append
}

// openLog opens (or creates) the log at path and drops a torn last frame
// left by a crash.
func openLog(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	l := &logFile{f: f, changed: make(chan struct{})}
	end, err := l.scan(func(byte, []byte) {})
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() != end {
			err = f.Truncate(end)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	l.size = end
	return l, nil
}

// scan calls fn with every whole frame from the start and returns the
// offset after the last one.
func (l *logFile) scan(fn func(stream byte, data []byte)) (int64, error) {
	var off int64
	head := make([]byte, frameHead)
	buf := make([]byte, maxFrame)
	for {
		if _, err := l.f.ReadAt(head, off); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return off, err
		}
		n := binary.BigEndian.Uint32(head[1:])
		if !validStream(head[0]) || n > maxFrame {
			return off, nil // garbage from here on: treat as the end
		}
		data := buf[:n]
		if _, err := l.f.ReadAt(data, off+frameHead); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return off, err
		}
		fn(head[0], data)
		off += frameHead + int64(n)
	}
}

func validStream(b byte) bool {
	return b == streamStdout || b == streamStderr || b == streamMark
}

// append writes p as frames of stream.
func (l *logFile) append(stream byte, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("log closed")
	}
	buf := make([]byte, 0, len(p)+frameHead*(len(p)/maxFrame+1))
	for len(p) > 0 || stream == streamMark {
		n := min(len(p), maxFrame)
		buf = append(buf, stream)
		buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		buf = append(buf, p[:n]...)
		p = p[n:]
		if stream == streamMark {
			break
		}
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	l.size += int64(len(buf))
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// mark starts the output of instance id.
func (l *logFile) mark(id string) error { return l.append(streamMark, []byte(id)) }

// copied returns how many bytes of each stream of instance id the log
// holds: what a re-attached copier must skip.
func (l *logFile) copied(id string) (stdout, stderr int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, 0, errors.New("log closed")
	}
	in := false
	_, err = l.scan(func(stream byte, data []byte) {
		switch stream {
		case streamMark:
			in = string(data) == id
			if in {
				stdout, stderr = 0, 0
			}
		case streamStdout:
			if in {
				stdout += int64(len(data))
			}
		case streamStderr:
			if in {
				stderr += int64(len(data))
			}
		}
	})
	return stdout, stderr, err
}

// watch returns the log's end and a channel closed at the next append.
func (l *logFile) watch() (int64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, l.changed
}

// ErrBadOffset is returned by Logs for an offset that is not the start of
// an entry (not a LogsChunk.Next this allocation returned).
var ErrBadOffset = errors.New("bad log offset")

// read returns the entries from off, at most max bytes of data (but at
// least one entry), and the offset after them.
func (l *logFile) read(off int64, max int) ([]deployproto.LogEntry, int64, error) {
	l.mu.Lock()
	size, f := l.size, l.f
	l.mu.Unlock()
	if f == nil {
		return nil, off, errors.New("log closed")
	}
	if off < 0 || off > size {
		return nil, off, fmt.Errorf("%w: %d is outside the log (0-%d)", ErrBadOffset, off, size)
	}
	var out []deployproto.LogEntry
	total := 0
	head := make([]byte, frameHead)
	for off < size {
		if _, err := f.ReadAt(head, off); err != nil {
			return nil, off, fmt.Errorf("read log: %w", err)
		}
		n := binary.BigEndian.Uint32(head[1:])
		if !validStream(head[0]) || n > maxFrame || off+frameHead+int64(n) > size {
			return nil, off, fmt.Errorf("%w: %d is not the start of an entry", ErrBadOffset, off)
		}
		if head[0] == streamMark {
			off += frameHead + int64(n)
			continue
		}
		if len(out) > 0 && total+int(n) > max {
			break
		}
		data := make([]byte, n)
		if _, err := f.ReadAt(data, off+frameHead); err != nil {
			return nil, off, fmt.Errorf("read log: %w", err)
		}
		stream := "stdout"
		if head[0] == streamStderr {
			stream = "stderr"
		}
		// Merge consecutive frames of one stream into one entry.
		if k := len(out) - 1; k >= 0 && out[k].Stream == stream {
			out[k].Data = append(out[k].Data, data...)
		} else {
			out = append(out, deployproto.LogEntry{Stream: stream, Data: data})
		}
		total += int(n)
		off += frameHead + int64(n)
	}
	return out, off, nil
}

// close closes the file; later appends and reads fail.
func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// streamWriter is an io.Writer appending to one stream of a log, after
// dropping the first skip bytes (output a previous copier already wrote).
type streamWriter struct {
	log    *logFile
	stream byte
	skip   int64
}

func (w *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.skip > 0 {
		k := min(int64(len(p)), w.skip)
		w.skip -= k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if err := w.log.append(w.stream, p); err != nil {
		return 0, err
	}
	return n, nil
}
