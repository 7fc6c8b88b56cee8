//go:build linux

package featureenv

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/poll"
)

// The counters of /proc/net/netfilter/nfnetlink_queue, by queue number.
func TestParseQueueStats(t *testing.T) {
	const two = "    0  31337     3 2    20     4     5     1234  1\n" +
		"    1   4242     0 2 65531     0     0        0  1\n"
	for _, tc := range []struct {
		name, text string
		num        uint16
		want       QueueStats
		wantErr    bool
	}{
		{"queue 0", two, 0, QueueStats{Held: 3, QueueDropped: 4, UserDropped: 5, IDSequence: 1234}, false},
		{"queue 1", two, 1, QueueStats{}, false},
		{"no such queue", two, 2, QueueStats{}, true},
		{"empty", "", 0, QueueStats{}, true},
		{"short line", "    0  31337     3\n", 0, QueueStats{}, true},
		{"not a number", "    0  31337     x 2    20     4     5     1234  1\n", 0, QueueStats{}, true},
		{"negative", "    0  31337     3 2    20    -4     5     1234  1\n", 0, QueueStats{}, true},
		{"no trailing newline", "    7  1  0 2 20  0  9  99  1", 7, QueueStats{UserDropped: 9, IDSequence: 99}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseQueueStats(tc.text, tc.num)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseQueueStats = %+v, %v; want %+v, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestQueueStatsLost(t *testing.T) {
	for _, tc := range []struct {
		seq, seen, want uint64
	}{{10, 10, 0}, {10, 7, 3}, {5, 9, 0}} {
		if got := (QueueStats{IDSequence: tc.seq}).Lost(tc.seen); got != tc.want {
			t.Errorf("id_sequence %d, seen %d: lost %d, want %d", tc.seq, tc.seen, got, tc.want)
		}
	}
}

// A queue whose reader has fallen behind (its socket's buffer full) or
// that holds its maximum passes what it cannot take at once (fails
// open); the kernel's default drops it, which costs a TCP connection a
// retransmission (the 231-280 ms round trips of CI's failures).
func TestQueueFailsOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		closed bool
	}{{"fail open", false}, {"fail closed (the kernel's default)", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("reader behind", func(t *testing.T) { queueReaderBehind(t, tc.closed) })
			t.Run("queue full", func(t *testing.T) { queueFull(t, tc.closed) })
		})
	}
}

// queueReaderBehind binds a queue in b with the smallest socket buffer
// and never reads it, then sends 50 datagrams from a.
func queueReaderBehind(t *testing.T, failClosed bool) {
	p := newNSPair(t)
	var q *nfqueue
	if err := inNetns(p.b, func() (err error) {
		q, err = openNFQueue(0, queueConfig{rcvBuf: 1, failClosed: failClosed})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := iptablesIn(context.Background(), p.b, "-A", "INPUT", "-s", p.addrA.String(), "-j", "NFQUEUE", "--queue-num", "0"); err != nil {
		t.Fatal(err)
	}
	srv := udpIn(t, p.b, p.addrB)
	cli := udpIn(t, p.a, p.addrA)
	const sent = 50
	for i := range sent {
		if _, err := cli.WriteTo([]byte(strconv.Itoa(i)), srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	srv.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 100)
	for {
		if _, _, err := srv.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	st, err := readQueueStats(p.b, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d datagrams through; %s; lost %d", got, sent, st, st.Lost(0))
	if st.IDSequence != sent {
		t.Errorf("id_sequence %d, want %d: the queue did not see every datagram", st.IDSequence, sent)
	}
	if failClosed {
		if got != 0 || st.UserDropped == 0 {
			t.Errorf("failing closed: %d datagrams through, user_dropped %d; want none through, some dropped", got, st.UserDropped)
		}
		return
	}
	if got == 0 || st.UserDropped != 0 || uint64(got)+st.Held != sent {
		t.Errorf("failing open: %d datagrams through, held %d, user_dropped %d; want all %d through but those held, none dropped", got, st.Held, st.UserDropped, sent)
	}
}

// queueFull lets the shaper hold 2 datagrams, its queue's maximum, for a
// minute, and sends a third.
func queueFull(t *testing.T, failClosed bool) {
	p := newNSPair(t)
	s := shapedPair(t, p, 2*time.Minute, func(s *shaper) { s.qcfg = queueConfig{maxLen: 2, failClosed: failClosed} }, p.addrB)
	srv := udpIn(t, p.b, p.addrB)
	cli := udpIn(t, p.a, p.addrA)
	for range 2 {
		cli.WriteTo([]byte("held"), srv.LocalAddr())
	}
	poll.Eventually(t, 5*time.Second, "the datagrams held", func() bool { return s.traffic(p.addrB).Delayed >= 2 })
	cli.WriteTo([]byte("third"), srv.LocalAddr())
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _, err := srv.ReadFrom(buf)
	st, serr := readQueueStats(p.b, 0)
	if serr != nil {
		t.Fatal(serr)
	}
	t.Logf("third datagram: %q, %v; %s", buf[:n], err, st)
	if st.Held != 2 {
		t.Errorf("kernel holds %d packets, want 2", st.Held)
	}
	if failClosed {
		if err == nil || st.QueueDropped != 1 {
			t.Errorf("failing closed: read %q, %v, queue_dropped %d; want a timeout, 1 dropped", buf[:n], err, st.QueueDropped)
		}
		return
	}
	if err != nil || string(buf[:n]) != "third" || st.QueueDropped != 0 {
		t.Errorf("failing open: read %q, %v, queue_dropped %d; want the third datagram at once, none dropped", buf[:n], err, st.QueueDropped)
	}
}

// Each queue's thread runs at shaperNice, ahead of the load.
func TestQueueThreadPriority(t *testing.T) {
	p := newNSPair(t)
	before := threadsAtNice(t, shaperNice)
	shapedPair(t, p, 40*time.Millisecond, nil, p.addrB)
	poll.Eventually(t, 5*time.Second, "a new thread of this process at nice "+strconv.Itoa(shaperNice), func() bool { return threadsAtNice(t, shaperNice) > before })
}

// threadsAtNice counts this process's threads at nice.
func threadsAtNice(t *testing.T, nice int) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		// After "(comm)": state is field 3, nice field 19.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 16 && f[16] == strconv.Itoa(nice) {
			n++
		}
	}
	return n
}
