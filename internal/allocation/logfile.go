package allocation

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

// The log file of an allocation is a sequence of frames, each a stream byte,
// a big-endian uint32 length and that many bytes of data. Offsets handed to
// readers (LogsChunk.Next) are file offsets of frame boundaries, so a reader
// resumes exactly where it stopped, also after a daemon restart.
const (
	streamStdout = 'o'
	streamStderr = 'e'
	// streamDMS carries lines from dms itself (dependency notices,
	// fencing); they read as stderr, and are not counted as the
	// instance's output when a copier re-attaches.
	streamDMS = 'd'
	// streamMark starts the output of one executor instance; its data is
	// the instance ID. Readers skip it; re-attach uses it to know how much
	// of the instance's output was already copied.
	streamMark = 'm'
	// streamTime carries the time (big-endian Unix nanoseconds) of the
	// output frames that follow it, up to the next time frame. Logs written
	// before it existed have none: their entries carry no time.
	streamTime = 't'

	frameHead = 5
	// maxFrame is the most data one frame holds; longer writes are split.
	maxFrame = 32 << 10
)

// logFile is an allocation's framed log. Appends and reads may run
// concurrently. The file (and its directory) is created at the first frame
// other than a mark: a mark is held until then (pending), and a log with no
// file reads as empty. Most of a placement's file system work was the
// allocation's directory and empty log, made at the commit (docs/PERFORMANCE.md).
type logFile struct {
	mu      sync.Mutex
	path    string
	f       *os.File      // guarded by mu: nil until the first frame is written
	closed  bool          // guarded by mu
	pending []byte        // guarded by mu: the last mark's instance ID, not yet written (nil: none)
	size    int64         // guarded by mu: offset of the end of the last whole frame
	changed chan struct{} // guarded by mu: closed and replaced at every append
}

// openLog opens the log at path, if it exists, and drops a torn last frame
// left by a crash; a log that does not exist is created at its first
// output.
func openLog(path string) (*logFile, error) {
	l := &logFile{path: path, changed: make(chan struct{})}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	l.f = f
	var end int64
	st, err := f.Stat()
	if err == nil && st.Size() > 0 { // a new allocation's log is empty: nothing to scan
		if end, err = l.scan(func(byte, []byte) {}); err == nil && st.Size() != end {
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
	var buf []byte // grown to the largest frame read, up to maxFrame
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
		if uint32(cap(buf)) < n {
			buf = make([]byte, max(n, 512))
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
	return b == streamStdout || b == streamStderr || b == streamDMS || b == streamMark || b == streamTime
}

// append writes p as frames of stream.
func (l *logFile) append(stream byte, p []byte) error {
	return l.appendAt(time.Time{}, stream, p)
}

// appendAt writes p as frames of stream, after a time frame for at when it
// is not zero, in one write.
func (l *logFile) appendAt(at time.Time, stream byte, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("log closed")
	}
	if stream == streamMark {
		// Held until the instance's first frame: a mark followed by
		// nothing tells a reader nothing (readers skip marks; copied
		// counts no output for it either way).
		l.pending = append(make([]byte, 0, len(p)), p...)
		return nil
	}
	if l.f == nil {
		if err := mkdir(filepath.Dir(l.path)); err != nil {
			return fmt.Errorf("create log: %w", err)
		}
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create log: %w", err)
		}
		l.f = f
	}
	buf := make([]byte, 0, len(l.pending)+len(p)+frameHead*(len(p)/maxFrame+3)+8)
	if l.pending != nil {
		buf = append(buf, streamMark)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(l.pending)))
		buf = append(buf, l.pending...)
	}
	if !at.IsZero() {
		buf = append(buf, streamTime)
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(at.UnixNano()))
	}
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		buf = append(buf, stream)
		buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		buf = append(buf, p[:n]...)
		p = p[n:]
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	l.pending = nil
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
	if l.closed {
		return 0, 0, errors.New("log closed")
	}
	if l.f == nil {
		return 0, 0, nil // nothing written yet
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

// logFilter selects entries: of one stream (empty: both), and written at
// or after since (entries without a time, from logs older than time
// frames, always pass).
type logFilter struct {
	stream string
	since  time.Time
	// dropHealth leaves out the lines that contain the health checks'
	// User-Agent (only whole lines within one write are recognized).
	dropHealth bool
}

var healthMark = []byte(deployproto.HealthCheckUserAgent)

// lines returns data without the health-check lines when f says so.
func (f logFilter) lines(data []byte) []byte {
	if !f.dropHealth || !bytes.Contains(data, healthMark) {
		return data
	}
	out := data[:0:0]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n') + 1
		if i == 0 {
			i = len(data)
		}
		if !bytes.Contains(data[:i], healthMark) {
			out = append(out, data[:i]...)
		}
		data = data[i:]
	}
	return out
}

func (f logFilter) pass(stream string, at time.Time) bool {
	if f.stream != "" && f.stream != stream {
		return false
	}
	return f.since.IsZero() || at.IsZero() || !at.Before(f.since)
}

// frameAt reads the header of the frame at off, checking it lies within
// size.
func frameAt(f *os.File, off, size int64, head []byte) (byte, int64, error) {
	if _, err := f.ReadAt(head, off); err != nil {
		return 0, 0, fmt.Errorf("read log: %w", err)
	}
	n := binary.BigEndian.Uint32(head[1:])
	if !validStream(head[0]) || n > maxFrame || off+frameHead+int64(n) > size || head[0] == streamTime && n != 8 {
		return 0, 0, fmt.Errorf("%w: %d is not the start of an entry", ErrBadOffset, off)
	}
	return head[0], int64(n), nil
}

func streamName(b byte) string {
	if b == streamStderr || b == streamDMS {
		return "stderr"
	}
	return "stdout"
}

// from returns the log's file and its size for a read from off, which must
// lie within the log.
func (l *logFile) from(off int64) (*os.File, int64, error) {
	l.mu.Lock()
	size, f, closed := l.size, l.f, l.closed
	l.mu.Unlock()
	if closed {
		return nil, 0, errors.New("log closed")
	}
	if off < 0 || off > size {
		return nil, 0, fmt.Errorf("%w: %d is outside the log (0-%d)", ErrBadOffset, off, size)
	}
	return f, size, nil
}

// read returns the entries from off that pass filter, at most max bytes of
// data (but at least one entry), and the offset after them.
func (l *logFile) read(off int64, max int, filter logFilter) ([]deployproto.LogEntry, int64, error) {
	f, size, err := l.from(off)
	if err != nil {
		return nil, off, err
	}
	var out []deployproto.LogEntry
	total := 0
	head := make([]byte, frameHead)
	var at time.Time
	timed := false // a time frame came since the last entry
	for off < size {
		kind, n, err := frameAt(f, off, size, head)
		if err != nil {
			return nil, off, err
		}
		switch kind {
		case streamMark:
			off += frameHead + n
			continue
		case streamTime:
			var b [8]byte
			if _, err := f.ReadAt(b[:], off+frameHead); err != nil {
				return nil, off, fmt.Errorf("read log: %w", err)
			}
			at, timed = time.Unix(0, int64(binary.BigEndian.Uint64(b[:]))).UTC(), true
			off += frameHead + n
			continue
		}
		stream := streamName(kind)
		if !filter.pass(stream, at) {
			off += frameHead + n
			continue
		}
		if len(out) > 0 && total+int(n) > max {
			break
		}
		data := make([]byte, n)
		if _, err := f.ReadAt(data, off+frameHead); err != nil {
			return nil, off, fmt.Errorf("read log: %w", err)
		}
		if data = filter.lines(data); len(data) == 0 {
			off += frameHead + n
			continue
		}
		// Merge consecutive frames of one stream and one write into one entry.
		if k := len(out) - 1; k >= 0 && out[k].Stream == stream && !timed {
			out[k].Data = append(out[k].Data, data...)
		} else {
			out = append(out, deployproto.LogEntry{Stream: stream, Data: data, Time: at})
		}
		timed = false
		total += int(n)
		off += frameHead + int64(n)
	}
	return out, off, nil
}

// tail returns the entries that hold the last lines lines of the log from
// off on that pass filter (a last line without a newline counts as one), at
// most max bytes (older lines are dropped to fit), and the end of the log.
func (l *logFile) tail(off int64, lines, max int, filter logFilter) ([]deployproto.LogEntry, int64, error) {
	f, size, err := l.from(off)
	if err != nil {
		return nil, off, err
	}
	// keep holds the last entries that together have more than lines
	// newlines; older ones are dropped as the scan goes, so memory stays
	// bounded by the tail, not the log.
	var keep []deployproto.LogEntry
	newlines := 0
	head := make([]byte, frameHead)
	var at time.Time
	timed := false
	for off < size {
		kind, n, err := frameAt(f, off, size, head)
		if err != nil {
			return nil, off, err
		}
		data := make([]byte, n)
		if _, err := f.ReadAt(data, off+frameHead); err != nil {
			return nil, off, fmt.Errorf("read log: %w", err)
		}
		off += frameHead + n
		switch kind {
		case streamMark:
			continue
		case streamTime:
			at, timed = time.Unix(0, int64(binary.BigEndian.Uint64(data))).UTC(), true
			continue
		}
		stream := streamName(kind)
		if !filter.pass(stream, at) {
			continue
		}
		if data = filter.lines(data); len(data) == 0 {
			continue
		}
		if k := len(keep) - 1; k >= 0 && keep[k].Stream == stream && !timed {
			keep[k].Data = append(keep[k].Data, data...)
		} else {
			keep = append(keep, deployproto.LogEntry{Stream: stream, Data: data, Time: at})
		}
		timed = false
		newlines += bytes.Count(data, []byte{'\n'})
		for len(keep) > 1 && newlines-bytes.Count(keep[0].Data, []byte{'\n'}) > lines {
			newlines -= bytes.Count(keep[0].Data, []byte{'\n'})
			keep = keep[1:]
		}
	}
	if len(keep) == 0 {
		return nil, off, nil
	}
	// The tail starts after newline number newlines-want+1 (counting from
	// one): a final newline ends the last line, it does not start one.
	want := lines
	if last := keep[len(keep)-1].Data; len(last) > 0 && last[len(last)-1] == '\n' {
		want++
	}
	if skip := newlines - want + 1; skip > 0 {
	cut:
		for len(keep) > 0 {
			d := keep[0].Data
			for i, c := range d {
				if c == '\n' {
					if skip--; skip == 0 {
						keep[0].Data = d[i+1:]
						break cut
					}
				}
			}
			keep = keep[1:]
		}
	}
	total := 0
	for _, e := range keep {
		total += len(e.Data)
	}
	// Over max: drop the oldest lines (a single line longer than max
	// keeps its end).
	for total > max && len(keep) > 0 {
		d := keep[0].Data
		cut := total - max
		if cut < len(d) {
			if i := bytes.IndexByte(d[cut:], '\n'); i >= 0 {
				cut += i + 1
			} else if len(keep) > 1 {
				cut = len(d)
			}
		}
		if cut >= len(d) {
			keep = keep[1:]
			total -= len(d)
			continue
		}
		keep[0].Data = d[cut:]
		total -= cut
	}
	out := keep[:0]
	for _, e := range keep {
		if len(e.Data) > 0 {
			out = append(out, e)
		}
	}
	return out, off, nil
}

// close closes the file; later appends and reads fail.
func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
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
	now    func() time.Time // stamps each write; nil writes no time
	ship   io.WriteCloser   // also gets what is appended (Config.ShipLogs); may be nil
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
	var at time.Time
	if w.now != nil {
		at = w.now()
	}
	if err := w.log.appendAt(at, w.stream, p); err != nil {
		return 0, err
	}
	if w.ship != nil {
		w.ship.Write(p)
	}
	return n, nil
}
