package logs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func recs(prefix string, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, `{"message":"%s-%d"}`, prefix, i))
	}
	return out
}

func TestSpoolAppendReadAck(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.append(recs("a", 10)); err != nil {
		t.Fatal(err)
	}
	items, err := s.readNext(4)
	if err != nil || len(items) != 4 || items[0].seq != 1 || string(items[3].doc) != `{"message":"a-3"}` {
		t.Fatalf("readNext: %v %v", items, err)
	}
	if err := s.ack(5); err != nil {
		t.Fatal(err)
	}
	s.close()
	// A torn frame at the end (a crash mid-write) is dropped at open.
	seg := filepath.Join(dir, fmt.Sprintf("%020d.seg", 1))
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(appendFrame(nil, 11, []byte("torn"))[:10])
	f.Close()
	s, err = openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.pending() != 6 {
		t.Fatalf("pending %d after reopen, want 6", s.pending())
	}
	items, err = s.readNext(100)
	if err != nil || len(items) != 6 || items[0].seq != 5 || !bytes.Equal(items[5].doc, []byte(`{"message":"a-9"}`)) {
		t.Fatalf("after reopen: %d items from %v, %v", len(items), items, err)
	}
	if _, err := s.append(recs("b", 1)); err != nil {
		t.Fatal(err)
	}
	items, _ = s.readNext(10)
	if len(items) != 1 || items[0].seq != 11 {
		t.Fatalf("new record after reopen: %v", items)
	}
}

// TestSpoolBound: the spool never grows past its bound; the oldest
// segments go and the records not yet read are counted.
func TestSpoolBound(t *testing.T) {
	const bound = 8 << 10
	s, err := openSpool(t.TempDir(), bound)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var dropped uint64
	for range 50 {
		d, err := s.append(recs("x", 20))
		if err != nil {
			t.Fatal(err)
		}
		dropped += d
		if s.size() > bound {
			t.Fatalf("spool %d bytes, bound %d", s.size(), bound)
		}
	}
	if dropped == 0 || dropped+s.pending() != 1000 {
		t.Fatalf("dropped %d + pending %d, want 1000", dropped, s.pending())
	}
	items, err := s.readNext(2000)
	if err != nil || uint64(len(items)) != 1000-dropped || items[len(items)-1].seq != 1000 {
		t.Fatalf("read %d (%v), want the newest %d", len(items), err, 1000-dropped)
	}
}

// TestSpoolEpoch: a spool made anew gets a new epoch, so its document ids
// never collide with an old spool's.
func TestSpoolEpoch(t *testing.T) {
	dir := t.TempDir()
	a, _ := openSpool(dir, 1<<20)
	a.close()
	b, _ := openSpool(dir, 1<<20)
	b.close()
	c, _ := openSpool(t.TempDir(), 1<<20)
	c.close()
	if a.epoch != b.epoch || a.epoch == c.epoch || len(a.epoch) != 16 {
		t.Errorf("epochs %q %q %q: want the same for the same dir, new for a new one", a.epoch, b.epoch, c.epoch)
	}
}

// FuzzSpoolSegment: whatever a segment file holds, opening and reading
// the spool neither panics nor returns a record that was not framed whole.
func FuzzSpoolSegment(f *testing.F) {
	good := appendFrame(appendFrame(nil, 1, []byte(`{"a":1}`)), 2, []byte(`{"b":2}`))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(appendFrame(nil, 5, []byte("x")))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", 1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openSpool(dir, 1<<20)
		if err != nil {
			return
		}
		defer s.close()
		items, _ := s.readNext(1000)
		for i, it := range items {
			if it.seq != uint64(i+1) {
				t.Fatalf("item %d has seq %d", i, it.seq)
			}
		}
		if _, err := s.append(recs("after", 2)); err != nil {
			t.Fatal(err)
		}
		more, err := s.readNext(10)
		if err != nil || len(more) != 2 || more[0].seq != uint64(len(items)+1) {
			t.Fatalf("after a damaged segment: %v %v", more, err)
		}
	})
}

// TestSpoolDamagedState: a state file that cannot be read starts a new
// epoch and keeps the segments' records (sent again rather than lost).
func TestSpoolDamagedState(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s.append(recs("k", 3))
	epoch := s.epoch
	s.close()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.epoch == epoch || s.pending() != 3 {
		t.Errorf("epoch %q (was %q), pending %d: want a new epoch and the 3 records", s.epoch, epoch, s.pending())
	}
}
