package router

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Busy polling of the datagram socket (Config.BusyPoll).
//
// A ping through the tunnel wakes a sleeping thread three times more
// than one over the line: the sender's device reader, the peer's socket
// reader, and the sender's socket reader for the answer. On an idle VM a
// wake-up of a halted vCPU costs ~0.15 ms. The last of the three can be
// avoided: when a packet goes out after the socket has been quiet (a
// request, not part of a flow), the socket's reader is woken at once, in
// parallel with the packet's trip, and polls the socket (poll(2), no
// timeout) until the answer comes or the poll window ends. It then parks
// as before. Off by default: on a loaded machine it made the round trip
// slower (docs/PERFORMANCE.md, Subnet, fifth pass). The window is spent
// only after such isolated sends (never
// while idle, never during a flow, whose sends and receives are close
// together), at most 1/pollShare of the time over the long run, and
// hardly at all where the answers keep coming after the window (see
// pollHold): on a loaded machine a polling thread only takes CPU from
// the threads that make the answer.

const (
	// pollShare: polling takes at most 1/pollShare of the wall time (a
	// token bucket refilled at that rate, holding at most pollBurst
	// windows).
	pollShare = 8
	pollBurst = 4
	// A window that ends with nothing read holds off the next ones for
	// pollHold, doubled with each such window in a row up to
	// pollHold<<(pollMaxMisses-1), 640 ms: where the answers come too
	// late for the window (a loaded machine, a far peer) polling only
	// takes CPU from the threads that make the answer, so it almost
	// stops.
	pollHold      = 5 * time.Millisecond
	pollMaxMisses = 8
)

// pastDeadline is a read deadline that has passed: setting it wakes the
// socket's reader.
var pastDeadline = time.Unix(1, 0)

// poller is the datagram socket's busy-poll state.
type poller struct {
	window time.Duration // 0: off
	// quiet is how long the socket must have sent and received nothing
	// for a send to start a poll window (timing.pollQuiet: a flow's
	// packets are closer together).
	quiet int64
	epoch time.Time // the clock's zero (monotonic)
	// lastSend and lastRecv are when a datagram was last sent or read
	// (clock); until is the end of the current poll window (0: none);
	// no window begins before holdUntil.
	lastSend, lastRecv, until, holdUntil atomic.Int64
	// parked: the reader is (about to be) blocked in a read, and a send
	// that starts a window must wake it (by a past read deadline).
	parked atomic.Bool
	// kicks counts the wake-ups, polls the windows the reader polled
	// through, answered those that ended with a datagram read (tests,
	// stats).
	kicks, polls, answered atomic.Uint64

	// the reader's own: the token bucket (ns of polling) and its last
	// refill (clock); misses counts the windows in a row that ended with
	// nothing read
	tokens, refilled int64
	misses           int
}

func newPoller(window, quiet time.Duration) *poller {
	p := &poller{window: max(window, 0), quiet: int64(quiet), epoch: time.Now()}
	p.tokens = int64(pollBurst) * int64(p.window)
	return p
}

// now is the poller's monotonic clock, ns.
func (p *poller) now() int64 { return int64(time.Since(p.epoch)) }

// sent notes datagrams sent at now, and starts a poll window if the
// socket had been quiet: it reports whether the reader must be woken
// (the caller then sets a past read deadline on the socket).
func (p *poller) sent(now int64) bool {
	if p.window <= 0 {
		return false
	}
	prev := p.lastSend.Swap(now)
	if now-prev < p.quiet || now-p.lastRecv.Load() < p.quiet || now < p.holdUntil.Load() {
		return false
	}
	p.until.Store(now + int64(p.window))
	return p.parked.CompareAndSwap(true, false)
}

// budget is how long the reader may still poll, at now: the rest of the
// window, as far as the tokens go (a window the tokens cannot pay for
// ends). The reader's.
func (p *poller) budget(now int64) int64 {
	until := p.until.Load()
	if until <= now {
		return 0
	}
	p.tokens = min(p.tokens+(now-p.refilled)/pollShare, int64(pollBurst)*int64(p.window))
	p.refilled = now
	if p.tokens <= 0 {
		p.until.CompareAndSwap(until, 0) // no polling left: this window ends
		return 0
	}
	return min(until-now, p.tokens)
}

// spend takes d of polling from the tokens and ends the window if it
// has not been extended meanwhile (from is the window's end when the
// polling began). The reader's.
func (p *poller) spend(d, from int64) {
	p.tokens = max(p.tokens-d, 0)
	p.until.CompareAndSwap(from, 0)
}

// missed notes a window that ended at now with nothing read: the next
// ones are held off (pollHold, doubling). answered resets it. The
// reader's.
func (p *poller) missed(now int64) {
	p.misses = min(p.misses+1, pollMaxMisses)
	p.holdUntil.Store(now + int64(pollHold)<<(p.misses-1))
}

func (p *poller) answer() {
	p.answered.Add(1)
	p.misses = 0
}

// afterSend notes datagrams sent and, if they start a poll window while
// the socket's reader is blocked, wakes it: its read returns
// os.ErrDeadlineExceeded, and readBatch clears the deadline and polls.
func (g *dgram) afterSend() {
	if g.poll == nil {
		return
	}
	if g.poll.sent(g.poll.now()) {
		g.poll.kicks.Add(1)
		_ = g.conn.SetReadDeadline(pastDeadline)
	}
}

// readBatch reads datagrams into ms, blocking until some come; within a
// poll window (after an isolated send) it first polls the socket without
// blocking, so that the answer finds the reader's thread awake.
func (g *dgram) readBatch(ms []ipv4.Message) (int, error) {
	p := g.poll
	if p == nil || g.waitReady == nil {
		return g.read(ms)
	}
	for {
		now := p.now()
		if b := p.budget(now); b > 0 {
			from := p.until.Load()
			p.polls.Add(1)
			ready, err := g.waitReady(now + b)
			t := p.now()
			p.spend(t-now, from)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				_ = g.conn.SetReadDeadline(time.Time{}) // a late kick
				continue
			}
			if err != nil {
				return 0, err
			}
			if !ready {
				p.missed(t)
				continue // the window or the tokens ran out: park
			}
			p.answer()
		} else {
			p.parked.Store(true)
			if p.until.Load() > now && p.parked.CompareAndSwap(true, false) {
				continue // a window began meanwhile, without a kick
			}
		}
		n, err := g.read(ms)
		p.parked.Store(false)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// a kick (or a late one): poll if a window is open
			_ = g.conn.SetReadDeadline(time.Time{})
			continue
		}
		if n > 0 {
			p.lastRecv.Store(p.now())
		}
		return n, err
	}
}
