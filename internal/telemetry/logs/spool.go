package logs

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dmsnet/dms/internal/atomicfile"
)

// The spool is a directory of segment files and a state file. A segment,
// named by the sequence number of its first record (20 decimal digits and
// ".seg"), is a sequence of frames: the record's sequence number (uint64),
// its length (uint32), the CRC-32C of the record (uint32), all big-endian,
// then the record. Sequence numbers are consecutive across segments. The
// state file holds the spool's epoch (random, made when the spool is
// created: a spool made anew never reuses a document id) and the sequence
// number of the first record not yet accepted by the store.
const (
	frameHeader = 16
	// MaxRecord is the largest record kept; the sink drops and counts
	// longer ones (dropped_rejected).
	MaxRecord = 256 << 10
	segSuffix = ".seg"
	stateFile = "state.json"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spoolState is the content of the state file.
type spoolState struct {
	Epoch string `json:"epoch"`
	Acked uint64 `json:"acked"` // every record below it was accepted
}

type segment struct {
	first, next uint64 // sequence numbers: of its first record, one past its last
	size        int64
}

func (s segment) name() string { return fmt.Sprintf("%020d%s", s.first, segSuffix) }

// segFile is a segment open for appends.
type segFile interface {
	io.WriteCloser
	Truncate(size int64) error
	Sync() error
}

func createSegment(path string) (segFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
}

// item is one record read from the spool.
type item struct {
	seq uint64
	doc []byte
}

// spool is the on-disk queue of records. Its methods are safe for
// concurrent use.
type spool struct {
	dir    string
	max    int64 // bytes of segments at most
	segMax int64 // bytes of one segment at most
	epoch  string

	mu     sync.Mutex
	segs   []segment // guarded by mu, oldest first; the last is the one appended to
	active segFile   // guarded by mu: the last segment, open for appends (nil: none yet)
	// create opens a new segment for appends (tests replace it).
	create func(path string) (segFile, error)
	next   uint64 // guarded by mu: sequence number of the next record appended
	read   uint64 // guarded by mu: next record the shipper reads
	acked  uint64 // guarded by mu
	bytes  int64  // guarded by mu: total size of the segments
	broken bool   // guarded by mu: the last append failed: start a new segment
	// rd caches where the shipper's next read is.
	rd struct {
		f   *os.File
		seg uint64 // first of the segment f is
		off int64
		seq uint64
	}
}

// openSpool opens (or creates) the spool in dir, bounded to max bytes. A
// torn last frame left by a crash is dropped.
func openSpool(dir string, limit int64) (*spool, error) {
	if limit < 2*frameHeader {
		return nil, fmt.Errorf("spool: size %d too small", limit)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{dir: dir, max: limit, segMax: max(min(limit/8, 8<<20), min(limit, 64<<10)), create: createSegment}
	st, err := readState(filepath.Join(dir, stateFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A damaged state (it is written atomically: someone else's
		// doing): start a new epoch and send again what the segments
		// hold, rather than lose it or refuse to start.
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		st = spoolState{Epoch: hex.EncodeToString(b[:]), Acked: 1}
		if err := writeState(filepath.Join(dir, stateFile), st); err != nil {
			return nil, err
		}
	}
	s.epoch, s.acked = st.Epoch, st.Acked
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var firsts []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil || first == 0 {
			continue
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	s.next = s.acked
	for _, first := range firsts {
		seg := segment{first: first}
		path := filepath.Join(dir, seg.name())
		if len(s.segs) > 0 && first != s.next {
			// A gap or an overlap: keep what is consistent.
			os.Remove(path)
			continue
		}
		seg, err := scanSegment(path, first)
		if err != nil {
			return nil, err
		}
		if seg.next <= s.acked || seg.size == 0 {
			os.Remove(path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.next = seg.next
	}
	s.read = s.acked
	if len(s.segs) > 0 {
		s.read = max(s.read, s.segs[0].first)
	}
	s.broken = true // appends start a new segment
	return s, nil
}

func readState(path string) (spoolState, error) {
	var st spoolState
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Epoch == "" || st.Acked == 0 {
		return st, fmt.Errorf("spool state %s: malformed", path)
	}
	return st, nil
}

func writeState(path string, st spoolState) error {
	data, _ := json.Marshal(st)
	return atomicfile.WriteFile(path, data, 0o600)
}

// scanSegment reads the segment at path, whose first record is first, and
// truncates it after its last whole, consistent frame.
func scanSegment(path string, first uint64) (segment, error) {
	seg := segment{first: first, next: first}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return seg, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	r := &frameReader{r: f}
	for {
		seq, _, err := r.next()
		if err != nil || seq != seg.next {
			break
		}
		seg.next++
		seg.size = r.off
	}
	if st, err := f.Stat(); err == nil && st.Size() != seg.size {
		if err := f.Truncate(seg.size); err != nil {
			return seg, fmt.Errorf("spool: %w", err)
		}
	}
	return seg, nil
}

// frameReader reads frames from a segment.
type frameReader struct {
	r   io.Reader
	off int64 // after the last frame read
	buf []byte
}

// errFrame is a malformed frame: the end of the segment's consistent part.
var errFrame = errors.New("spool: malformed frame")

// next returns the next frame's sequence number and record (valid until the
// next call); io.EOF at a clean end, errFrame or io.ErrUnexpectedEOF at a
// torn or corrupt frame.
func (fr *frameReader) next() (uint64, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return 0, nil, err
	}
	seq := binary.BigEndian.Uint64(h[:8])
	n := binary.BigEndian.Uint32(h[8:12])
	sum := binary.BigEndian.Uint32(h[12:16])
	if n > MaxRecord || seq == 0 {
		return 0, nil, errFrame
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	data := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if crc32.Checksum(data, castagnoli) != sum {
		return 0, nil, errFrame
	}
	fr.off += frameHeader + int64(n)
	return seq, data, nil
}

func appendFrame(buf []byte, seq uint64, rec []byte) []byte {
	buf = binary.BigEndian.AppendUint64(buf, seq)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(rec)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(rec, castagnoli))
	return append(buf, rec...)
}

// append writes recs to the spool, dropping the oldest segments when it
// would grow past its bound. It returns how many records not yet sent were
// dropped for room; on a write error, recs are not kept (the error says
// why).
func (s *spool) append(recs [][]byte) (dropped uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	nbuf := uint64(0) // frames in buf
	for _, rec := range recs {
		if len(rec) > MaxRecord {
			continue // the sink refuses those before (Sink.enqueue)
		}
		size := int64(frameHeader + len(rec))
		seg := s.last()
		if s.active == nil || s.broken || seg.size+int64(len(buf))+size > s.segMax {
			if err := s.flushLocked(buf, nbuf); err != nil {
				return dropped, err
			}
			buf, nbuf = buf[:0], 0
			if err := s.rotateLocked(); err != nil {
				return dropped, err
			}
		}
		for s.bytes+int64(len(buf))+size > s.max && len(s.segs) > 1 {
			dropped += s.dropOldestLocked()
		}
		if s.bytes+int64(len(buf))+size > s.max {
			// The one segment left is the active one: start over.
			if err := s.flushLocked(buf, nbuf); err != nil {
				return dropped, err
			}
			buf, nbuf = buf[:0], 0
			if err := s.rotateLocked(); err != nil {
				return dropped, err
			}
			if len(s.segs) > 1 {
				dropped += s.dropOldestLocked()
			}
		}
		buf = appendFrame(buf, s.next+nbuf, rec)
		nbuf++
	}
	return dropped, s.flushLocked(buf, nbuf)
}

func (s *spool) last() segment {
	if len(s.segs) == 0 {
		return segment{}
	}
	return s.segs[len(s.segs)-1]
}

// flushLocked writes buf (n whole frames) to the active segment. On an
// error the segment is cut back to its last whole frame and closed.
func (s *spool) flushLocked(buf []byte, n uint64) error {
	if len(buf) == 0 {
		return nil
	}
	i := len(s.segs) - 1
	_, err := s.active.Write(buf)
	if err != nil {
		s.active.Truncate(s.segs[i].size)
		s.active.Close()
		s.active, s.broken = nil, true
		return fmt.Errorf("spool: %w", err)
	}
	s.segs[i].size += int64(len(buf))
	s.segs[i].next += n
	s.bytes += int64(len(buf))
	s.next += n
	return nil
}

// rotateLocked closes the active segment and starts a new one.
func (s *spool) rotateLocked() error {
	if s.active != nil {
		s.active.Close()
		s.active = nil
	}
	if l := s.last(); len(s.segs) > 0 && l.size == 0 {
		s.segs = s.segs[:len(s.segs)-1]
		os.Remove(filepath.Join(s.dir, l.name()))
	}
	seg := segment{first: s.next, next: s.next}
	f, err := s.create(filepath.Join(s.dir, seg.name()))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.active, s.broken = f, false
	s.segs = append(s.segs, seg)
	return nil
}

// dropOldestLocked removes the oldest segment and returns how many of its
// records were not yet read by the shipper.
func (s *spool) dropOldestLocked() uint64 {
	seg := s.segs[0]
	s.segs = s.segs[1:]
	s.bytes -= seg.size
	os.Remove(filepath.Join(s.dir, seg.name()))
	if s.rd.f != nil && s.rd.seg == seg.first {
		s.rd.f.Close()
		s.rd.f = nil
	}
	if s.read >= seg.next {
		return 0
	}
	lost := seg.next - max(seg.first, s.read)
	s.read = seg.next
	return lost
}

// sync makes the active segment durable.
func (s *spool) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return nil
	}
	return s.active.Sync()
}

// pending is how many records the shipper has not read yet.
func (s *spool) pending() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - s.read
}

// size is the disk the segments use.
func (s *spool) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// readNext returns up to n records from the shipper's read position on,
// and moves the position past them.
func (s *spool) readNext(n int) ([]item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []item
	for len(out) < n && s.read < s.next {
		i, _ := slices.BinarySearchFunc(s.segs, s.read, func(g segment, seq uint64) int {
			switch {
			case g.next <= seq:
				return -1
			case g.first > seq:
				return 1
			}
			return 0
		})
		if i == len(s.segs) || s.segs[i].first > s.read {
			return out, fmt.Errorf("spool: record %d missing", s.read) // cannot happen
		}
		seg := s.segs[i]
		if s.rd.f == nil || s.rd.seg != seg.first || s.rd.seq != s.read {
			if s.rd.f != nil {
				s.rd.f.Close()
			}
			f, err := os.Open(filepath.Join(s.dir, seg.name()))
			if err != nil {
				s.rd.f = nil
				return out, fmt.Errorf("spool: %w", err)
			}
			s.rd.f, s.rd.seg, s.rd.off, s.rd.seq = f, seg.first, 0, seg.first
		}
		fr := &frameReader{r: io.NewSectionReader(s.rd.f, s.rd.off, seg.size-s.rd.off)}
		for len(out) < n && s.rd.seq < seg.next {
			seq, doc, err := fr.next()
			if err != nil || seq != s.rd.seq {
				s.rd.f.Close()
				s.rd.f = nil
				// The segment is damaged from here: skip what is left.
				lost := seg.next - s.rd.seq
				s.read = seg.next
				return out, fmt.Errorf("spool: segment %s damaged at record %d: %d records lost", seg.name(), s.rd.seq, lost)
			}
			if seq >= s.read {
				out = append(out, item{seq: seq, doc: slices.Clone(doc)})
				s.read = seq + 1
			}
			s.rd.seq++
			s.rd.off += frameHeader + int64(len(doc))
		}
	}
	return out, nil
}

// rewind moves the read position back to the first record not
// acknowledged.
func (s *spool) rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read = s.acked
	if len(s.segs) > 0 {
		s.read = max(s.read, s.segs[0].first)
	}
}

// ack records that every record below upTo was accepted (or given up),
// persists it, and removes the segments wholly below it.
func (s *spool) ack(upTo uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if upTo <= s.acked {
		return nil
	}
	s.acked = upTo
	if s.read < upTo {
		s.read = upTo
	}
	for len(s.segs) > 1 && s.segs[0].next <= upTo {
		seg := s.segs[0]
		s.segs = s.segs[1:]
		s.bytes -= seg.size
		if s.rd.f != nil && s.rd.seg == seg.first {
			s.rd.f.Close()
			s.rd.f = nil
		}
		os.Remove(filepath.Join(s.dir, seg.name()))
	}
	return writeState(filepath.Join(s.dir, stateFile), spoolState{Epoch: s.epoch, Acked: s.acked})
}

// close closes the spool's files (the state is already persisted).
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.active != nil {
		err = s.active.Sync()
		s.active.Close()
		s.active = nil
	}
	if s.rd.f != nil {
		s.rd.f.Close()
		s.rd.f = nil
	}
	return err
}
