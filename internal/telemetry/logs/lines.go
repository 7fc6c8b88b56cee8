package logs

import (
	"bytes"
	"io"
	"time"
)

// maxLine is the longest line shipped whole; a longer one is cut into
// pieces of this size.
const maxLine = 16 << 10

// AllocationWriter returns a writer that ships each line written to it as
// a record of kind "allocation" of one stream ("stdout" or "stderr") of an
// allocation. A line is sent when its newline arrives (or at maxLine
// bytes); a last line without one is sent by Close. It never blocks and
// never fails. It is for one writer at a time.
func (s *Sink) AllocationWriter(deployment, allocationID, name, stream string) io.WriteCloser {
	return &lineWriter{s: s, l: AllocationLine{Deployment: deployment, Allocation: allocationID, Name: name, Stream: stream}}
}

type lineWriter struct {
	s   *Sink
	l   AllocationLine
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.emit()
			continue
		}
		if len(w.buf)+i > maxLine {
			room := maxLine - len(w.buf)
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.emit()
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.emit()
	}
	return n, nil
}

func (w *lineWriter) emit() {
	line := bytes.TrimSuffix(w.buf, []byte("\r"))
	l := w.l
	l.Time = time.Now()
	l.Line = string(line)
	w.s.Allocation(l)
	w.buf = w.buf[:0]
}

// Close ships a last line that had no newline.
func (w *lineWriter) Close() error {
	if len(w.buf) > 0 {
		w.emit()
	}
	return nil
}
