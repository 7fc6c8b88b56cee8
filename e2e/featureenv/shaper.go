//go:build linux

package featureenv

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// shaper shapes the packets each node receives from the other nodes.
//
// In each node's network namespace, INPUT sends every packet from the
// environment's subnet to a chain of ours, chainName, which sync rewrites
// whenever the nodes or the disconnected set change:
//
//   - a node of the same region: no rule, the packet goes on in the
//     kernel at once (a queue in user space would add this process's
//     scheduling delays to it: tens to hundreds of milliseconds on a busy
//     machine);
//   - a node of another region: NFQUEUE to a netfilter queue this process
//     reads (attach), where decide holds the packet for half the
//     inter-region round trip, drops it (Loss, a partition), or passes it;
//   - a disconnected node, or every node when this one is disconnected:
//     DROP.
//
// So partitions, heals, SetLink and loss take effect on the next packet
// without touching the rules, and Disconnect and Reconnect rewrite them.
//
// Packets are held where they arrive, not where they leave: a packet held
// on its sender's way out still counts against its socket's TCP Small
// Queues budget (netem orphans the packets it delays; a netfilter queue
// does not), so a second small write would wait for the first to be
// released and one round trip would cost one and a half. On the way in,
// the sender's socket let go of the packet when the veth pair passed it
// on.
type shaper struct {
	mu sync.Mutex
	// Guarded by mu:
	oneWay  time.Duration          // added to each packet between regions
	loss    float64                // probability a packet between regions is lost
	region  map[netip.Addr]string  // node address → region
	cut     map[netip.Addr]bool    // disconnected nodes
	parted  map[[2]string]bool     // partitioned region pairs, sorted
	queues  map[netip.Addr]*squeue // attached nodes
	rng     *rand.Rand
	errLogf func(format string, args ...any)
	qcfg    queueConfig // the queues' sizes: the zero value but in tests
	stamps  int         // a socket that keeps the kernel timestamping packets (0: none yet)

	syncMu sync.Mutex // serializes sync: rules are written from one snapshot at a time
}

// chainName is our chain in each node's filter table.
const chainName = "DMSFE"

// Traffic counts what the environment's queue did with the packets a node
// received from nodes of other regions. Packets from its own region never
// reach the queue; those a disconnection drops are dropped by iptables and
// not counted.
type Traffic struct {
	Passed  uint64 // passed at once (not from a node)
	Delayed uint64 // held for the inter-region latency, then passed
	Dropped uint64 // lost or partitioned
	// Late counts the delayed packets passed more than LateBy after
	// their time (their arrival plus the latency): the shaper fell
	// behind, starved of CPU.
	Late uint64
	// MaxReadLag is the longest a packet waited, from its arrival, for
	// this process to read it (without the kernel's timestamps, zero);
	// MaxReleaseLag the longest a held packet's verdict came after its
	// time.
	MaxReadLag, MaxReleaseLag time.Duration
}

// LateBy is how much later than its time a packet must pass to count as
// Late.
const LateBy = 10 * time.Millisecond

func newShaper(rtt time.Duration, loss float64, logf func(string, ...any)) *shaper {
	return &shaper{
		oneWay: rtt / 2, loss: loss,
		region: map[netip.Addr]string{}, cut: map[netip.Addr]bool{}, parted: map[[2]string]bool{},
		queues: map[netip.Addr]*squeue{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		errLogf: logf,
	}
}

// setRegion records a node's address and region.
func (s *shaper) setRegion(addr netip.Addr, region string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.region[addr] = region
}

// forget removes a node's address (it restarts and may get another).
func (s *shaper) forget(addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.region, addr)
	delete(s.cut, addr)
}

// decide returns what happens to a queued packet from src to dst: drop,
// or pass after delay.
func (s *shaper) decide(src, dst netip.Addr) (delay time.Duration, pass bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut[src] || s.cut[dst] {
		return 0, false // the rules drop these; a packet queued before they changed
	}
	rs, okS := s.region[src]
	rd, okD := s.region[dst]
	if !okS || !okD || rs == rd {
		return 0, true // not between two nodes (the gateway), or queued before a restart's rules
	}
	if s.parted[regionPair(rs, rd)] {
		return 0, false
	}
	if s.loss > 0 && s.rng.Float64() < s.loss {
		return 0, false
	}
	return s.oneWay, true
}

func regionPair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// setCut disconnects (or reconnects) the node at addr and rewrites the
// rules.
func (s *shaper) setCut(ctx context.Context, addr netip.Addr, cut bool) error {
	s.mu.Lock()
	if cut {
		s.cut[addr] = true
	} else {
		delete(s.cut, addr)
	}
	s.mu.Unlock()
	return s.sync(ctx)
}

func (s *shaper) setParted(a, b string, parted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if parted {
		s.parted[regionPair(a, b)] = true
	} else {
		delete(s.parted, regionPair(a, b))
	}
}

// healAll lifts every partition and reconnects every node.
func (s *shaper) healAll(ctx context.Context) error {
	s.mu.Lock()
	clear(s.parted)
	clear(s.cut)
	s.mu.Unlock()
	return s.sync(ctx)
}

func (s *shaper) setLink(rtt time.Duration, loss float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oneWay, s.loss = rtt/2, loss
}

// rulesLocked returns the chain of the node at addr as iptables-restore
// input. s.mu must be held.
func (s *shaper) rulesLocked(addr netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", chainName)
	if s.cut[addr] {
		fmt.Fprintf(&b, "-A %s -j DROP\n", chainName)
	}
	others := slices.SortedFunc(maps.Keys(s.region), netip.Addr.Compare)
	for _, m := range others {
		switch {
		case m == addr:
		case s.cut[m]:
			fmt.Fprintf(&b, "-A %s -s %s/32 -j DROP\n", chainName, m)
		case s.region[m] != s.region[addr]:
			fmt.Fprintf(&b, "-A %s -s %s/32 -j NFQUEUE --queue-num 0\n", chainName, m)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// sync rewrites the chain of every attached node.
func (s *shaper) sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	rules := map[string]string{} // netns → rules
	for addr, sq := range s.queues {
		rules[sq.netns] = s.rulesLocked(addr)
	}
	s.mu.Unlock()
	var errs []error
	for netns, r := range rules {
		if err := iptablesRestoreIn(ctx, netns, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// attach starts shaping what the node at addr receives: it binds a
// netfilter queue in the namespace netns (/proc/PID/ns/net), creates our
// chain there and sends it every packet from subnet that does not come
// in through lo, then rewrites every node's chain (the others' gain rules
// for this one). Packets queued before the queue is read wait in the
// kernel.
func (s *shaper) attach(ctx context.Context, addr netip.Addr, netns string, subnet netip.Prefix) error {
	s.mu.Lock()
	cfg := s.qcfg
	if s.stamps == 0 {
		s.stamps = enableTimestamps()
	}
	s.mu.Unlock()
	var q *nfqueue
	if err := inNetns(netns, func() (err error) {
		q, err = openNFQueue(0, cfg)
		return err
	}); err != nil {
		return fmt.Errorf("netfilter queue for %s: %w", addr, err)
	}
	sq := &squeue{q: q, s: s, addr: addr, netns: netns, done: make(chan struct{})}
	sq.wg.Add(1)
	go sq.run()
	s.mu.Lock()
	rules := s.rulesLocked(addr)
	s.mu.Unlock()
	err := iptablesRestoreIn(ctx, netns, rules) // creates the chain
	if err == nil {
		err = iptablesIn(ctx, netns, "-A", "INPUT", "!", "-i", "lo", "-s", subnet.String(), "-j", chainName)
	}
	if err != nil {
		sq.close()
		return err
	}
	s.mu.Lock()
	old := s.queues[addr]
	s.queues[addr] = sq
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return s.sync(ctx)
}

// detach stops shaping the node at addr (it was killed: its namespace is
// gone or going).
func (s *shaper) detach(addr netip.Addr) {
	s.mu.Lock()
	sq := s.queues[addr]
	delete(s.queues, addr)
	s.mu.Unlock()
	if sq != nil {
		sq.close()
	}
}

// traffic returns the counts of the node at addr.
func (s *shaper) traffic(addr netip.Addr) Traffic {
	s.mu.Lock()
	sq := s.queues[addr]
	s.mu.Unlock()
	if sq == nil {
		return Traffic{}
	}
	return Traffic{Passed: sq.passed.Load(), Delayed: sq.delayed.Load(), Dropped: sq.dropped.Load(), Late: sq.late.Load(),
		MaxReadLag: time.Duration(sq.maxReadLag.Load()), MaxReleaseLag: time.Duration(sq.maxReleaseLag.Load())}
}

// queueStats returns the kernel's counters of the queue of the node at
// addr, and how many packets we read from it.
func (s *shaper) queueStats(addr netip.Addr) (QueueStats, uint64, error) {
	s.mu.Lock()
	sq := s.queues[addr]
	s.mu.Unlock()
	if sq == nil {
		return QueueStats{}, 0, fmt.Errorf("no queue for %s (not attached)", addr)
	}
	seen := sq.passed.Load() + sq.delayed.Load() + sq.dropped.Load()
	st, err := readQueueStats(sq.netns, sq.q.num)
	if err != nil {
		return QueueStats{}, 0, fmt.Errorf("queue of %s: %w", addr, err)
	}
	return st, seen, nil
}

// close detaches every node.
func (s *shaper) close() {
	s.mu.Lock()
	qs := s.queues
	s.queues = map[netip.Addr]*squeue{}
	if s.stamps > 0 {
		unix.Close(s.stamps)
	}
	s.stamps = 0
	s.mu.Unlock()
	for _, sq := range qs {
		sq.close()
	}
}

// squeue shapes one node's packets: run reads them from the kernel,
// decides, and gives the held ones their verdict when their time comes.
//
// It runs on a thread of its own at a high priority (shaperNice) and
// waits in the kernel (ppoll on the queue's socket, until the next held
// packet is due), not in Go's scheduler: on a loaded machine a packet
// then waits for no other process's time slice, nor for a Go timer or
// the netpoller to be serviced by threads at normal priority. Under a
// load of 11 on 2 cores, the two goroutines it replaced read packets up
// to 580 ms after their arrival and passed a quarter of them more than
// 10 ms late (docs/PERFORMANCE.md).
type squeue struct {
	q     *nfqueue
	s     *shaper
	addr  netip.Addr
	netns string
	done  chan struct{} // closed by close
	once  sync.Once
	wg    sync.WaitGroup

	held heldHeap // run's own
	seq  uint64   // run's own

	passed, delayed, dropped, late atomic.Uint64
	maxReadLag, maxReleaseLag      atomic.Int64 // nanoseconds
}

// shaperNice is the nice value of the queues' threads: ahead of the
// nodes, the tests and whatever else loads the machine.
const shaperNice = -15

// pollMax bounds each wait, so that run sees close in time.
const pollMax = 50 * time.Millisecond

func (sq *squeue) close() {
	sq.once.Do(func() { close(sq.done) })
	sq.wg.Wait()
}

func (sq *squeue) run() {
	defer sq.wg.Done()
	defer sq.q.Close()
	// Never unlocked: the thread, reniced, ends with this goroutine.
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), shaperNice) // best effort: needs CAP_SYS_NICE
	buf := make([]byte, 64<<10)
	var pkts []packet
	var due []uint32
	fds := []unix.PollFd{{Fd: int32(sq.q.fd), Events: unix.POLLIN}}
	for {
		wait := pollMax
		due, wait = sq.due(time.Now(), due[:0], wait)
		sq.q.Verdicts(due, true, sq.verdictErr)
		select {
		case <-sq.done:
			return
		default:
		}
		ts := unix.NsecToTimespec(int64(wait))
		n, err := unix.Ppoll(fds, &ts, nil)
		if err != nil && err != unix.EINTR {
			sq.s.errLogf("featureenv: queue of %s: poll: %v (packets from it are no longer shaped)", sq.addr, err)
			return
		}
		if n <= 0 {
			continue
		}
		for { // everything the socket holds
			pkts, err = sq.q.ReadNow(buf, pkts[:0])
			if err == unix.EAGAIN || err == unix.EINTR {
				break
			}
			if err != nil {
				sq.s.errLogf("featureenv: queue of %s: %v (packets from it are no longer shaped)", sq.addr, err)
				return
			}
			sq.decide(pkts, time.Now())
		}
	}
}

// decide gives each packet read at now its verdict, or holds it.
func (sq *squeue) decide(pkts []packet, now time.Time) {
	for _, p := range pkts {
		// Held from its arrival when the kernel stamped it: time it
		// waited for us to read it counts toward its delay.
		arrived := now
		if lag := now.Sub(p.arrived); !p.arrived.IsZero() && lag >= 0 && lag < time.Minute {
			arrived = p.arrived
			storeMax(&sq.maxReadLag, lag)
		}
		dst := p.dst
		if !dst.IsValid() {
			dst = sq.addr
		}
		delay, pass := sq.s.decide(p.src, dst)
		switch {
		case !pass:
			sq.dropped.Add(1)
			sq.verdict(p.id, false)
		case delay <= 0:
			sq.passed.Add(1)
			sq.verdict(p.id, true)
		default:
			sq.delayed.Add(1)
			sq.seq++
			heap.Push(&sq.held, held{at: arrived.Add(delay), seq: sq.seq, id: p.id})
		}
	}
}

// due appends to ids the held packets whose time has come at now, in the
// order they were held when their times are equal, and returns them with
// the time until the next one (at most wait).
func (sq *squeue) due(now time.Time, ids []uint32, wait time.Duration) ([]uint32, time.Duration) {
	for len(sq.held) > 0 {
		d := sq.held[0].at.Sub(now)
		if d > 0 {
			return ids, min(d, wait)
		}
		storeMax(&sq.maxReleaseLag, -d)
		if -d > LateBy {
			sq.late.Add(1)
		}
		ids = append(ids, heap.Pop(&sq.held).(held).id)
	}
	return ids, wait
}

func (sq *squeue) verdict(id uint32, pass bool) {
	sq.verdictErr(sq.q.Verdict(id, pass))
}

func (sq *squeue) verdictErr(err error) {
	if err != nil && !isClosed(err) {
		sq.s.errLogf("featureenv: verdict for a packet of %s: %v", sq.addr, err)
	}
}

// held is a packet waiting for its release time.
type held struct {
	at  time.Time
	seq uint64
	id  uint32
}

type heldHeap []held

func (h heldHeap) Len() int { return len(h) }
func (h heldHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h heldHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)   { *h = append(*h, x.(held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// enableTimestamps opens a socket that asks for receive timestamps, which
// makes the kernel stamp every packet it receives (net_enable_timestamp:
// one switch for the whole machine, on while any such socket is open), so
// that queued packets carry their arrival time and a packet read late is
// held only for what remains of its delay. It returns the socket, or -1
// if it could not (packets are then held from when they are read).
func enableTimestamps() int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v time.Duration) {
	for {
		cur := m.Load()
		if int64(v) <= cur || m.CompareAndSwap(cur, int64(v)) {
			return
		}
	}
}
