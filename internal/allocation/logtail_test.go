package allocation

import (
	"strings"
	"testing"
	"time"
)

func TestLogTail(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, _ := openTestLog(t)
	l.mark("i1")
	l.append(streamStdout, []byte("old1\nold2\n")) // written before time frames: no time
	l.appendAt(t0, streamStdout, []byte("a\nb\n"))
	l.appendAt(t0.Add(time.Second), streamStderr, []byte("e1\n"))
	l.appendAt(t0.Add(2*time.Second), streamStdout, []byte("c\nd"))
	end, _ := l.watch()

	tests := []struct {
		name   string
		lines  int
		max    int
		filter logFilter
		want   string
	}{
		{name: "one line, unterminated", lines: 1, max: 1 << 20, want: "stdout:d|"},
		{name: "two lines across entries", lines: 2, max: 1 << 20, want: "stdout:c\nd|"},
		{name: "three lines cross streams", lines: 3, max: 1 << 20, want: "stderr:e1\n|stdout:c\nd|"},
		{name: "cut inside an entry", lines: 4, max: 1 << 20, want: "stdout:b\n|stderr:e1\n|stdout:c\nd|"},
		{name: "more than the log", lines: 100, max: 1 << 20, want: "stdout:old1\nold2\n|stdout:a\nb\n|stderr:e1\n|stdout:c\nd|"},
		{name: "stderr only", lines: 10, max: 1 << 20, filter: logFilter{stream: "stderr"}, want: "stderr:e1\n|"},
		{name: "stdout only, terminated last line", lines: 1, max: 1 << 20, filter: logFilter{stream: "stdout"}, want: "stdout:d|"},
		{name: "since drops older timed entries", lines: 10, max: 1 << 20, filter: logFilter{since: t0.Add(time.Second)}, want: "stdout:old1\nold2\n|stderr:e1\n|stdout:c\nd|"},
		{name: "max drops the oldest lines", lines: 10, max: 4, want: "stdout:c\nd|"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, next, err := l.tail(0, tc.lines, tc.max, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := entries(es); got != tc.want {
				t.Errorf("tail(%d) = %q, want %q", tc.lines, got, tc.want)
			}
			if next != end {
				t.Errorf("next = %d, want the end %d", next, end)
			}
		})
	}
}

func TestLogTailTerminated(t *testing.T) {
	l, _ := openTestLog(t)
	for i := range 20 {
		l.append(streamStdout, []byte(strings.Repeat("x", i)+"\n"))
	}
	es, _, err := l.tail(0, 2, 1<<20, logFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := "stdout:" + strings.Repeat("x", 18) + "\n" + strings.Repeat("x", 19) + "\n|"
	if got := entries(es); got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
}

func TestLogReadFilterAndTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, _ := openTestLog(t)
	l.append(streamStdout, []byte("old\n"))
	l.appendAt(t0, streamStdout, []byte("a\n"))
	l.appendAt(t0.Add(time.Second), streamStdout, []byte("b\n"))
	l.appendAt(t0.Add(2*time.Second), streamStderr, []byte("e\n"))

	tests := []struct {
		name   string
		filter logFilter
		want   string
		times  []time.Time
	}{
		{name: "all, one entry per timed write", want: "stdout:old\n|stdout:a\n|stdout:b\n|stderr:e\n|", times: []time.Time{{}, t0, t0.Add(time.Second), t0.Add(2 * time.Second)}},
		{name: "stderr", filter: logFilter{stream: "stderr"}, want: "stderr:e\n|", times: []time.Time{t0.Add(2 * time.Second)}},
		{name: "since", filter: logFilter{since: t0.Add(time.Second), stream: "stdout"}, want: "stdout:old\n|stdout:b\n|", times: []time.Time{{}, t0.Add(time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, _, err := l.read(0, 1<<20, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := entries(es); got != tc.want {
				t.Fatalf("read = %q, want %q", got, tc.want)
			}
			for i, e := range es {
				if !e.Time.Equal(tc.times[i]) {
					t.Errorf("entry %d time = %v, want %v", i, e.Time, tc.times[i])
				}
			}
		})
	}
}

func TestLogHealthCheckLines(t *testing.T) {
	hc := `10.0.0.1 - - "GET /health HTTP/1.1" 200 2 "-" "dms-health-check/1"` + "\n"
	user := `10.0.0.2 - - "GET / HTTP/1.1" 200 612 "-" "curl/8.0"` + "\n"
	tests := []struct {
		name, in, want string
		keep           bool
	}{
		{name: "no health checks", in: user + user, want: user + user},
		{name: "only health checks", in: hc + hc, want: ""},
		{name: "mixed", in: hc + user + hc, want: user},
		{name: "unterminated last line", in: user + hc[:len(hc)-1], want: user},
		{name: "kept on request", in: hc + user, want: hc + user, keep: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(logFilter{dropHealth: !tc.keep}.lines([]byte(tc.in))); got != tc.want {
				t.Errorf("lines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	// Reads and tails leave them out; the tail counts only the other lines.
	l, _ := openTestLog(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.appendAt(t0, streamStdout, []byte("first\n"))
	for range 5 {
		l.appendAt(t0, streamStdout, []byte(hc))
	}
	l.appendAt(t0, streamStdout, []byte(user))
	l.appendAt(t0, streamStdout, []byte(hc))
	drop := logFilter{dropHealth: true}
	es, _, err := l.tail(0, 2, 1<<20, drop)
	if err != nil || entries(es) != "stdout:first\n|stdout:"+user+"|" {
		t.Errorf("tail(2) = %q, %v; want first and the user line", entries(es), err)
	}
	es, _, err = l.read(0, 1<<20, drop)
	if err != nil || entries(es) != "stdout:first\n|stdout:"+user+"|" {
		t.Errorf("read = %q, %v; want first and the user line", entries(es), err)
	}
	es, _, _ = l.read(0, 1<<20, logFilter{})
	if len(es) != 8 {
		t.Errorf("read keeping health checks = %d entries, want 8", len(es))
	}
}
