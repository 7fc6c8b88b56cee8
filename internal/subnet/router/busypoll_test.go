package router

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// TestPollerSent: a send starts a poll window only on a quiet socket,
// and asks for a kick only while the reader is parked.
func TestPollerSent(t *testing.T) {
	const window, quiet = 400 * time.Microsecond, time.Millisecond
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name               string
		window             time.Duration
		lastSend, lastRecv int64 // before now = 10 ms
		parked             bool
		hold               int64 // holdUntil
		kick, opens        bool
	}{
		{name: "held off after missed windows", window: window, parked: true, hold: 11 * ms},
		{name: "the hold is over", window: window, parked: true, hold: 10 * ms, kick: true, opens: true},
		{name: "quiet, parked", window: window, lastSend: 0, lastRecv: 0, parked: true, kick: true, opens: true},
		{name: "quiet, reader awake", window: window, lastSend: 0, lastRecv: 0, opens: true},
		{name: "quiet for exactly the gap", window: window, lastSend: 9 * ms, lastRecv: 9 * ms, parked: true, kick: true, opens: true},
		{name: "a flow: sent just before", window: window, lastSend: 10*ms - 50e3, parked: true},
		{name: "an answer: received just before", window: window, lastRecv: 10*ms - 50e3, parked: true},
		{name: "off", window: 0, parked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(tc.window, quiet)
			p.lastSend.Store(tc.lastSend)
			p.lastRecv.Store(tc.lastRecv)
			p.parked.Store(tc.parked)
			p.holdUntil.Store(tc.hold)
			now := 10 * ms
			if got := p.sent(now); got != tc.kick {
				t.Errorf("kick %v, want %v", got, tc.kick)
			}
			until := p.until.Load()
			if opened := until != 0; opened != tc.opens {
				t.Errorf("window opened %v (until %d), want %v", opened, until, tc.opens)
			}
			if tc.opens && until != now+int64(tc.window) {
				t.Errorf("window until %d, want %d", until, now+int64(tc.window))
			}
			if tc.kick && p.parked.Load() {
				t.Error("still parked after a kick: a second send would kick again")
			}
			if tc.window > 0 && p.lastSend.Load() != now {
				t.Errorf("lastSend %d, want %d", p.lastSend.Load(), now)
			}
		})
	}
}

// TestPollerBudget: polling is bounded by the window and by the token
// bucket (1/pollShare of the time, pollBurst windows at most); a window
// the tokens cannot pay for ends, so the reader parks.
func TestPollerBudget(t *testing.T) {
	const w = int64(400 * time.Microsecond)
	p := newPoller(time.Duration(w), 0)
	now := int64(time.Second)
	p.refilled = now
	if b := p.budget(now); b != 0 {
		t.Fatalf("budget %d with no window, want 0", b)
	}
	// windows polled through to their end spend the burst
	for i := range pollBurst {
		p.until.Store(now + w)
		from := p.until.Load()
		if b := p.budget(now); b != w {
			t.Fatalf("window %d: budget %d, want %d", i, b, w)
		}
		now += w
		p.spend(w, from)
		if u := p.until.Load(); u != 0 {
			t.Fatalf("window %d still open after its polling (until %d)", i, u)
		}
	}
	// what is left: the refill of the time spent polling, 1/pollShare of it
	p.until.Store(now + w)
	want := int64(pollBurst) * w / pollShare
	if b := p.budget(now); b != want {
		t.Fatalf("budget %d after the burst, want the refill %d", b, want)
	}
	p.spend(want, p.until.Load())
	p.until.Store(now + w)
	if b := p.budget(now); b != 0 {
		t.Fatalf("budget %d with no tokens, want 0", b)
	}
	if u := p.until.Load(); u != 0 {
		t.Fatalf("a window the tokens cannot pay for stays open (until %d): the reader would spin", u)
	}
	// pollShare windows of time later, one window again
	now += pollShare * w
	p.until.Store(now + w)
	if b := p.budget(now); b != w {
		t.Fatalf("budget %d after a refill, want %d", b, w)
	}
	// a window extended meanwhile (another send) is not ended by spend
	from := p.until.Load()
	p.until.Store(from + w)
	p.spend(w/2, from)
	if u := p.until.Load(); u != from+w {
		t.Fatalf("the extended window was ended (until %d, want %d)", u, from+w)
	}
}

// TestPollerMissed: windows that end with nothing read hold off the next
// ones, for twice as long each time up to the cap; an answer resets it.
func TestPollerMissed(t *testing.T) {
	p := newPoller(500*time.Microsecond, time.Millisecond)
	now := int64(time.Second)
	for i, want := range []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 640} {
		p.missed(now)
		if got := time.Duration(p.holdUntil.Load() - now); got != want*time.Millisecond {
			t.Fatalf("miss %d: held off %v, want %v", i+1, got, want*time.Millisecond)
		}
	}
	p.answer()
	p.missed(now)
	if got := time.Duration(p.holdUntil.Load() - now); got != pollHold {
		t.Fatalf("after an answer, a miss holds off %v, want %v", got, pollHold)
	}
}

// busyPair is pair with busy as Config.BusyPoll on both routers.
func busyPair(t *testing.T, tm timing, busy time.Duration) (A, B *node, da, db *subnettest.Device) {
	t.Helper()
	mk := func() *node {
		n := &node{h: newHost(t)}
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if n.r, err = New(Config{Host: n.h, Log: testLogger(t), Datagram: conn, BusyPoll: busy, timing: &tm}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.r.Close() })
		return n
	}
	A, B = mk(), mk()
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	da, db = attach(t, A, "dep", "a"), attach(t, B, "dep", "b")
	exchange(t, da, db, 0)
	pathUp(t, A, B)
	pathUp(t, B, A)
	return A, B, da, db
}

// TestBusyPoll: requests and answers over the datagram path, each send
// on a quiet socket (pollQuiet 0 here): with busy polling on, the
// reader is woken (kicked) and polls, the answers are read by polling,
// every packet arrives and the socket's reads keep working after the
// kicks' deadlines (no read errors); with it off, no polling at all.
func TestBusyPoll(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("busy polling is Linux's")
	}
	tm := fast
	tm.pollQuiet = 0
	for _, tc := range []struct {
		name string
		busy time.Duration
		on   bool
	}{
		{"on", 50 * time.Millisecond, true}, // a window longer than a loaded machine's round trip
		{"500µs", 500 * time.Microsecond, true},
		{"off (the default)", 0, false},
		{"off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			A, B, da, db := busyPair(t, tm, tc.busy)
			const rounds = 30
			for i := range rounds {
				req := subnettest.UDP(a2, a3, 1000, 2000, []byte{byte(i), 'q'})
				inject(t, da, req)
				if got := recv(t, db); !bytes.Equal(got, req) {
					t.Fatalf("round %d: B got % x, want % x", i, got, req)
				}
				ans := subnettest.UDP(a3, a2, 2000, 1000, []byte{byte(i), 'a'})
				inject(t, db, ans)
				if got := recv(t, da); !bytes.Equal(got, ans) {
					t.Fatalf("round %d: A got % x, want % x", i, got, ans)
				}
			}
			st := A.r.Stats()
			if st.ReadErrors != 0 || B.r.Stats().ReadErrors != 0 {
				t.Errorf("read errors A %d, B %d: a kick's deadline was taken for a failure", st.ReadErrors, B.r.Stats().ReadErrors)
			}
			if !tc.on {
				if st.BusyPolls != 0 || A.r.dg.poll != nil {
					t.Errorf("busy polls %d with busy polling off", st.BusyPolls)
				}
				return
			}
			if st.BusyPolls == 0 {
				t.Error("A never polled after its requests")
			}
			if k := A.r.dg.poll.kicks.Load(); k == 0 {
				t.Error("A's parked reader was never woken by a send")
			}
			if tc.busy >= 50*time.Millisecond && st.BusyAnswered == 0 {
				t.Errorf("no answer found by polling in %d windows of %v", st.BusyPolls, tc.busy)
			}
			if st.BusyAnswered > st.BusyPolls {
				t.Errorf("answered %d > polls %d", st.BusyAnswered, st.BusyPolls)
			}
		})
	}
}
