package allocation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
)

func openTestLog(t *testing.T) (*logFile, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "log")
	l, err := openLog(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	return l, p
}

func entries(es []deployproto.LogEntry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Stream + ":" + string(e.Data) + "|")
	}
	return b.String()
}

func TestLogRead(t *testing.T) {
	l, _ := openTestLog(t)
	l.mark("i1")
	l.append(streamStdout, []byte("a"))
	l.append(streamStdout, []byte("b"))
	l.append(streamStderr, []byte("c"))
	afterC, _ := l.watch()
	big := strings.Repeat("x", maxFrame+10) // two frames
	l.append(streamStdout, []byte(big))
	end, _ := l.watch()

	tests := []struct {
		name     string
		off      int64
		max      int
		want     string
		wantNext int64
		wantErr  error
	}{
		{name: "all", off: 0, max: 1 << 20, want: "stdout:ab|stderr:c|stdout:" + big + "|", wantNext: end},
		{name: "max keeps whole entries", off: 0, max: 1, want: "stdout:a|", wantNext: (frameHead + 2) + (frameHead + 1)},
		{name: "a frame larger than max still comes", off: afterC, max: 1, want: "stdout:" + big[:maxFrame] + "|"},
		{name: "at the end", off: end, max: 10, want: "", wantNext: end},
		{name: "negative", off: -1, max: 10, wantErr: ErrBadOffset},
		{name: "past the end", off: end + 1, max: 10, wantErr: ErrBadOffset},
		{name: "inside a frame", off: 1, max: 10, wantErr: ErrBadOffset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, next, err := l.read(tc.off, tc.max, logFilter{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read(%d) error = %v, want %v", tc.off, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := entries(es); got != tc.want {
				t.Errorf("read(%d, %d) = %.60q, want %.60q", tc.off, tc.max, got, tc.want)
			}
			if tc.wantNext != 0 && next != tc.wantNext {
				t.Errorf("next = %d, want %d", next, tc.wantNext)
			}
		})
	}
}

func TestLogCopied(t *testing.T) {
	l, _ := openTestLog(t)
	l.mark("i1")
	l.append(streamStdout, []byte("old"))
	l.mark("i2")
	l.append(streamStdout, []byte("hello"))
	l.append(streamStderr, []byte("er"))
	l.append(streamStdout, []byte("!"))
	tests := []struct {
		id               string
		wantOut, wantErr int64
	}{
		{"i2", 6, 2},
		{"i1", 3, 0},
		{"unknown", 0, 0},
	}
	for _, tc := range tests {
		out, errn, err := l.copied(tc.id)
		if err != nil || out != tc.wantOut || errn != tc.wantErr {
			t.Errorf("copied(%s) = %d, %d, %v; want %d, %d", tc.id, out, errn, err, tc.wantOut, tc.wantErr)
		}
	}
	// A re-attached copier skips what is there already.
	w := &streamWriter{log: l, stream: streamStdout, skip: 6}
	w.Write([]byte("hel"))
	w.Write([]byte("lo!more"))
	es, _, _ := l.read(0, 1<<20, logFilter{})
	if got := entries(es); got != "stdout:oldhello|stderr:er|stdout:!more|" {
		t.Errorf("log after skip = %q", got)
	}
}

func TestLogTornTail(t *testing.T) {
	l, p := openTestLog(t)
	l.append(streamStdout, []byte("whole"))
	good, _ := l.watch()
	l.close()
	// A crash in the middle of a write: a header and part of the data.
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{streamStdout, 0, 0, 0, 9, 'p', 'a'})
	f.Close()

	l2, err := openLog(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.close()
	if end, _ := l2.watch(); end != good {
		t.Errorf("end after reopen = %d, want %d (torn frame dropped)", end, good)
	}
	l2.append(streamStderr, []byte("next"))
	es, _, err := l2.read(0, 100, logFilter{})
	if got := entries(es); err != nil || got != "stdout:whole|stderr:next|" {
		t.Errorf("read = %q, %v", got, err)
	}
}

func TestLogDMSLines(t *testing.T) {
	l, _ := openTestLog(t)
	l.mark("i1")
	l.append(streamStdout, []byte("abc"))
	l.append(streamDMS, []byte("[dms] dependency db restarted\n"))
	l.append(streamStderr, []byte("x"))
	out, errs, err := l.copied("i1")
	if err != nil {
		t.Fatal(err)
	}
	if out != 3 || errs != 1 {
		t.Errorf("copied = %d, %d; want 3, 1 (lines from dms are not the instance's output)", out, errs)
	}
	es, _, err := l.read(0, 1<<20, logFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entries(es), "stdout:abc|stderr:[dms] dependency db restarted\nx|"; got != want {
		t.Errorf("read = %q, want %q", got, want)
	}
	es, _, err = l.tail(0, 1, 1<<20, logFilter{stream: "stderr"})
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(es); got != "stderr:x|" {
		t.Errorf("tail 1 of stderr = %q", got)
	}
}

func TestMkdir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, "exists"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		ok        bool
	}{
		{"new under an existing parent", filepath.Join(base, "a"), true},
		{"missing parents", filepath.Join(base, "b", "c", "d"), true},
		{"already a directory", filepath.Join(base, "exists"), true},
		{"a file in the way", file, false},
		{"under a file", filepath.Join(file, "x"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mkdir(tc.dir)
			if (err == nil) != tc.ok {
				t.Fatalf("mkdir(%s) = %v, want ok=%v", tc.dir, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			st, err := os.Stat(tc.dir)
			if err != nil || !st.IsDir() {
				t.Fatalf("after mkdir: %v, %v", st, err)
			}
			if st.Mode().Perm() != 0o700 && tc.name != "already a directory" {
				t.Errorf("mode %v, want 0700", st.Mode().Perm())
			}
		})
	}
}
