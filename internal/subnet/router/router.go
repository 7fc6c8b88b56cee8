package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dmsnet/dms/internal/subnet"
)

// Protocol is the libp2p protocol of the data path.
const Protocol = "/dms/subnet/1"

// QueueLen is how many packets wait for one peer of one deployment; a
// packet past it is dropped ("queue-full").
const QueueLen = 1024

// QueueWait is how long a device's reader waits for room in a full peer
// queue, once per read of the device, before it drops ("queue-full"):
// a writer that fell behind for a moment (the machine is loaded) then
// slows the sending flow down, as a full link would, instead of costing
// it a burst of losses, while a peer that stays slow costs the device's
// other traffic at most this much per read.
const QueueWait = 2 * time.Millisecond

// DNS answers the allocations' DNS queries to the gateway.
type DNS interface {
	// ServePacket answers pkt, an IPv4/UDP packet (or TCP segment) to port 53 of gateway (the
	// subnet's gateway or subnet.Resolver, whichever it was sent to), from names
	// (allocation -> address); it calls reply with the answer (an IPv4/UDP packet from gateway:53, or
	// TCP segments) at once or later from another goroutine (forwarded names), or never. pkt and names
	// are valid only during the call (copy what you keep); reply may be called at most once for a UDP
	// query, once per segment over TCP.
	ServePacket(names map[string]netip.Addr, gateway netip.Addr, pkt []byte, reply func(pkt []byte))
}

// Config is what a Router needs.
type Config struct {
	Host host.Host
	Log  *slog.Logger
	DNS  DNS // nil: DNS packets are dropped ("gateway")
	// Datagram is the UDP socket of the datagram path (dgram.go), which
	// the router then owns (Close closes it); nil: streams only.
	Datagram *net.UDPConn
	// BusyPoll is how long the datagram socket's reader polls for an
	// answer, without sleeping, after packets go out on a quiet socket (a
	// request: nothing sent or received for 1 ms), so that the answer
	// does not wait for a sleeping thread to wake up (busypoll.go). At
	// most 1/8 of the time is spent so, and windows that end with no
	// answer hold off the next ones (5 ms, doubling to 640 ms). 0 or
	// negative: off (the default: on a loaded machine it made the round
	// trip slower, docs/PERFORMANCE.md, Subnet); 500 µs is the window
	// measured. Linux only.
	BusyPoll time.Duration

	timing *timing // nil: defaultTiming (tests shorten it)
}

// Stats counts packets: Forwarded (written to a peer's stream),
// Delivered (written to a local device: from a peer, from another local
// allocation, or a DNS answer) and Dropped by reason, every reason
// present: "spoofed" (a source address its sender may not use),
// "no-route" (no allocation there, broadcast or multicast, or the peer
// unreachable), "gateway" (to the gateway but not DNS), "queue-full" (the
// peer's queue was full), "unauthorized" (a stream from a peer outside
// the table; counted per stream), "malformed" (not a sane IPv4 packet, or
// a bad frame), "bad-datagram" (a datagram too short, that fails to
// open with its session's key, or replayed; a datagram naming no session
// is "unauthorized").
//
// The datagram path's own counts: Sessions (datagram sessions keyed, by
// either side: first setups, rekeys and fresh setups), Fallbacks (times a
// peer's datagram path stopped answering probes and its packets went
// back to the stream) and ReadErrors (failed reads of the datagram
// socket, other than its closing). BusyPolls counts the times the
// socket's reader polled for an answer after an isolated send
// (Config.BusyPoll; the router's, not a deployment's), BusyAnswered
// those that found a datagram before the window ended.
type Stats struct {
	Forwarded, Delivered    uint64
	Datagrams               uint64 // of Forwarded, those sent as datagrams
	Sessions, Fallbacks     uint64
	ReadErrors              uint64
	BusyPolls, BusyAnswered uint64
	Dropped                 map[string]uint64
}

// Router is a node's data path for all its deployments' subnets.
type Router struct {
	host   host.Host
	self   peer.ID
	log    *slog.Logger
	dns    DNS
	dg     *dgram // nil: no datagram socket
	timing timing
	count  counters
	// busyPoll is Config.BusyPoll's window (0: off).
	busyPoll time.Duration
	// lastLog is when a drop of each reason was last logged (unix ns).
	lastLog [nReasons]atomic.Int64
	wg      sync.WaitGroup

	mu     sync.Mutex
	deps   map[string]*deployment // guarded by mu
	closed bool                   // guarded by mu
}

// deployment is the state of one deployment's subnet on this node.
type deployment struct {
	id    string
	view  atomic.Pointer[view] // nil once removed
	count counters

	// guarded by Router.mu:
	table *subnet.Table
	atts  map[string]*attachment // by allocation
	outs  map[peer.ID]*outQueue
	ins   map[network.Stream]peer.ID
}

// attachment is an allocation's device, read by its own goroutine.
type attachment struct {
	dep    *deployment
	alloc  string
	dev    subnet.Device
	done   chan struct{} // closed when the read loop has ended
	closed chan struct{} // closed by close
	once   sync.Once
}

func newAttachment(d *deployment, allocation string, dev subnet.Device) *attachment {
	return &attachment{dep: d, alloc: allocation, dev: dev, done: make(chan struct{}), closed: make(chan struct{})}
}

// close closes the device, which ends the read loop.
func (a *attachment) close() {
	a.once.Do(func() {
		close(a.closed)
		_ = a.dev.Close()
	})
}

// New returns a router on cfg.Host, whose stream handler it registers.
func New(cfg Config) (*Router, error) {
	if cfg.Host == nil {
		return nil, errors.New("subnet router: no libp2p host")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		host:   cfg.Host,
		self:   cfg.Host.ID(),
		log:    log.With("component", "subnet"),
		dns:    cfg.DNS,
		deps:   map[string]*deployment{},
		timing: defaultTiming,
	}
	if cfg.timing != nil {
		r.timing = *cfg.timing
	}
	r.busyPoll = max(cfg.BusyPoll, 0)
	if cfg.Datagram != nil {
		g, err := newDgram(r, cfg.Datagram)
		if err != nil {
			return nil, err
		}
		r.dg = g
		r.wg.Add(2)
		go g.receive()
		go g.maintain()
	}
	cfg.Host.SetStreamHandler(Protocol, r.handle)
	cfg.Host.SetStreamHandler(DatagramProtocol, r.handleSetup)
	return r, nil
}

// SetTable installs t (which the caller has opened and checked) for its
// deployment if the router has none or an older Version; it reports
// whether it did. Packets follow the new table at once; the streams to
// peers no longer in it are closed.
func (r *Router) SetTable(t *subnet.Table) bool {
	if t == nil {
		return false
	}
	if err := t.Validate(); err != nil {
		r.log.Warn("subnet table refused", "deployment_id", t.Deployment, "err", err)
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	d := r.deps[t.Deployment]
	if d == nil {
		d = &deployment{
			id:   t.Deployment,
			atts: map[string]*attachment{},
			outs: map[peer.ID]*outQueue{},
			ins:  map[network.Stream]peer.ID{},
		}
		r.deps[t.Deployment] = d
	} else if t.Version <= d.table.Version {
		return false
	}
	c := *t
	c.Routes = slices.Clone(t.Routes)
	d.table = &c
	r.compileLocked(d)
	return true
}

// Table returns a copy of deployment's table, nil when it has none.
func (r *Router) Table(deployment string) *subnet.Table {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.deps[deployment]
	if d == nil {
		return nil
	}
	c := *d.table
	c.Routes = slices.Clone(d.table.Routes)
	return &c
}

// Attach connects allocation's device to its deployment's subnet and
// starts reading it; a device attached earlier for the allocation is
// closed. The deployment's table must route the allocation to this node.
func (r *Router) Attach(deployment, allocation string, dev subnet.Device) error {
	r.mu.Lock()
	d := r.deps[deployment]
	if d == nil || r.closed {
		r.mu.Unlock()
		return fmt.Errorf("subnet: attach %s of deployment %s: no routing table", allocation, deployment)
	}
	i := slices.IndexFunc(d.table.Routes, func(rt subnet.Route) bool { return rt.Allocation == allocation })
	if i < 0 || d.table.Routes[i].Peer != r.self.String() {
		r.mu.Unlock()
		return fmt.Errorf("subnet: attach %s of deployment %s: the table (version %d) routes it to no allocation of this node", allocation, deployment, d.table.Version)
	}
	old := d.atts[allocation]
	if old != nil && old.dev == dev {
		r.mu.Unlock()
		return nil
	}
	a := newAttachment(d, allocation, dev)
	d.atts[allocation] = a
	r.compileLocked(d)
	r.wg.Add(1)
	go r.readDevice(a)
	r.mu.Unlock()
	if old != nil {
		old.close()
		<-old.done
	}
	return nil
}

// Detach closes allocation's device and waits for its reader to end.
func (r *Router) Detach(deployment, allocation string) {
	r.mu.Lock()
	d := r.deps[deployment]
	var a *attachment
	if d != nil {
		if a = d.atts[allocation]; a != nil {
			delete(d.atts, allocation)
			r.compileLocked(d)
		}
	}
	r.mu.Unlock()
	if a != nil {
		a.close()
		<-a.done
	}
}

// Remove ends deployment's subnet on this node: its devices are closed,
// its streams reset and its table forgotten.
func (r *Router) Remove(deployment string) {
	r.mu.Lock()
	d := r.deps[deployment]
	if d == nil {
		r.mu.Unlock()
		return
	}
	delete(r.deps, deployment)
	d.view.Store(nil)
	if r.dg != nil {
		r.dg.prune(d, nil)
	}
	atts := d.atts
	for _, o := range d.outs {
		o.close()
	}
	for s := range d.ins {
		_ = s.Reset()
	}
	d.atts, d.outs, d.ins = nil, nil, nil
	r.mu.Unlock()
	for _, a := range atts {
		a.close()
	}
	for _, a := range atts {
		<-a.done
	}
}

// Stats returns the node's counters over all deployments, removed ones
// included.
func (r *Router) Stats() Stats {
	st := r.count.stats()
	if g := r.dg; g != nil && g.poll != nil {
		st.BusyPolls, st.BusyAnswered = g.poll.polls.Load(), g.poll.answered.Load()
	}
	return st
}

// DeploymentStats returns the counters of one deployment while it has a
// table (zero otherwise).
func (r *Router) DeploymentStats(deployment string) Stats {
	r.mu.Lock()
	d := r.deps[deployment]
	r.mu.Unlock()
	if d == nil {
		return new(counters).stats()
	}
	return d.count.stats()
}

// Close removes every deployment and unregisters the stream handler.
func (r *Router) Close() error {
	if r.host != nil {
		r.host.RemoveStreamHandler(Protocol)
		r.host.RemoveStreamHandler(DatagramProtocol)
	}
	r.mu.Lock()
	r.closed = true
	ids := make([]string, 0, len(r.deps))
	for id := range r.deps {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.Remove(id)
	}
	if r.dg != nil && r.dg.done != nil {
		r.dg.closeDone.Do(func() { close(r.dg.done) })
	}
	if r.dg != nil && r.dg.conn != nil {
		_ = r.dg.conn.Close()
	}
	r.wg.Wait()
	return nil
}

// compileLocked rebuilds d's view from its table and attachments, starts
// a queue for each new remote peer, and closes the queues and inbound
// streams of peers that left the table.
func (r *Router) compileLocked(d *deployment) {
	t := d.table
	v := &view{
		gateway: u32(subnet.Gateway(t.Subnet)),
		bcast:   u32(t.Subnet.Addr()) | (1<<(32-t.Subnet.Bits()) - 1),
		gwAddr:  subnet.Gateway(t.Subnet),
		names:   t.Names(),
		index:   make(map[uint32]int32, len(t.Routes)),
		routes:  make([]route, len(t.Routes)),
		peers:   map[peer.ID]*outQueue{},
	}
	for i, rt := range t.Routes {
		id, err := peer.Decode(rt.Peer)
		if err != nil { // Validate checked it
			continue
		}
		v.index[u32(rt.Addr)] = int32(i)
		e := &v.routes[i]
		e.peer = id
		if id == r.self {
			e.att = d.atts[rt.Allocation]
			continue
		}
		o := d.outs[id]
		if o == nil {
			o = r.newOutQueue(d, id)
			d.outs[id] = o
		}
		e.out = o
		v.peers[id] = o
	}
	for id, o := range d.outs {
		if v.peers[id] == nil {
			o.close()
			delete(d.outs, id)
		}
	}
	for s, id := range d.ins {
		if v.peers[id] == nil {
			_ = s.Reset()
			delete(d.ins, s)
		}
	}
	d.view.Store(v)
	if r.dg != nil {
		r.dg.prune(d, v)
	}
}

// drop counts a dropped packet and logs it at debug level, at most once a
// second per reason.
func (r *Router) drop(d *deployment, why reason, pkt []byte) {
	r.count.dropped[why].Add(1)
	if d != nil {
		d.count.dropped[why].Add(1)
	}
	if !r.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	now, last := time.Now().UnixNano(), r.lastLog[why].Load()
	if now-last < int64(time.Second) || !r.lastLog[why].CompareAndSwap(last, now) {
		return
	}
	id := ""
	if d != nil {
		id = d.id
	}
	attrs := []any{"reason", why.String(), "deployment_id", id, "dropped", r.count.dropped[why].Load()}
	if len(pkt) >= 20 {
		attrs = append(attrs, "src", netip.AddrFrom4([4]byte(pkt[12:16])), "dst", netip.AddrFrom4([4]byte(pkt[16:20])))
	}
	r.log.Debug("subnet packet dropped", attrs...)
}
