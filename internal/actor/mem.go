package actor

import (
	"context"
	"fmt"
	"sync"
)

// MemNetwork is an in-memory Transport for tests: hosts in one process,
// links as channel pairs, broadcasts to every subscribed host. It honours the
// Transport contract (ordered links, backpressure, oversized frames refused
// as FrameTooLargeError) so tests of the runtime exercise the same paths as
// libp2p.
type MemNetwork struct {
	// MaxFrame bounds frames like a real transport; default 8 MiB.
	MaxFrame int

	mu    sync.Mutex
	hosts map[string]*MemHost // guarded by mu
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{MaxFrame: 8 << 20, hosts: map[string]*MemHost{}}
}

// Host returns the host with id, creating it.
func (n *MemNetwork) Host(id string) *MemHost {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.hosts[id]
	if h == nil {
		h = &MemHost{net: n, id: id, links: map[string]*memLink{}, subs: map[string]map[int]func(string, []byte){}}
		n.hosts[id] = h
	}
	return h
}

// MemHost is one host of a MemNetwork; it implements Transport.
type MemHost struct {
	net *MemNetwork
	id  string

	mu      sync.Mutex
	handler func(Link)                              // guarded by mu
	links   map[string]*memLink                     // by peer; guarded by mu
	subs    map[string]map[int]func(string, []byte) // guarded by mu
	nextSub int                                     // guarded by mu
	down    bool                                    // guarded by mu
}

var _ Transport = (*MemHost)(nil)

// Self returns the host's ID.
func (h *MemHost) Self() string { return h.id }

// SetLinkHandler registers the function called with links peers open.
func (h *MemHost) SetLinkHandler(fn func(Link)) {
	h.mu.Lock()
	h.handler = fn
	h.mu.Unlock()
}

// Link returns the open link to peer, or opens one.
func (h *MemHost) Link(ctx context.Context, peer string) (Link, error) {
	if peer == h.id {
		return nil, fmt.Errorf("link to self")
	}
	h.net.mu.Lock()
	other := h.net.hosts[peer]
	h.net.mu.Unlock()
	if other == nil {
		return nil, fmt.Errorf("no route to host %s", peer)
	}
	// Lock both hosts in a fixed order, so concurrent opens from both ends
	// agree on one link.
	first, second := h, other
	if first.id > second.id {
		first, second = second, first
	}
	first.mu.Lock()
	second.mu.Lock()
	if h.down || other.down {
		second.mu.Unlock()
		first.mu.Unlock()
		return nil, fmt.Errorf("host %s is down", peer)
	}
	if l := h.links[peer]; l != nil {
		second.mu.Unlock()
		first.mu.Unlock()
		return l, nil
	}
	a, b := newMemLinkPair(h, other)
	h.links[peer] = a
	other.links[h.id] = b
	handler := other.handler
	second.mu.Unlock()
	first.mu.Unlock()
	if handler != nil {
		go handler(b)
	}
	return a, nil
}

// Publish delivers frame to every other host subscribed to topic.
func (h *MemHost) Publish(ctx context.Context, topic string, frame []byte) error {
	if len(frame) > h.net.MaxFrame {
		return fmt.Errorf("message of %d bytes exceeds %d", len(frame), h.net.MaxFrame)
	}
	h.net.mu.Lock()
	hosts := make([]*MemHost, 0, len(h.net.hosts))
	for _, o := range h.net.hosts {
		if o != h {
			hosts = append(hosts, o)
		}
	}
	h.net.mu.Unlock()
	for _, o := range hosts {
		o.mu.Lock()
		var fns []func(string, []byte)
		if !o.down {
			for _, fn := range o.subs[topic] {
				fns = append(fns, fn)
			}
		}
		o.mu.Unlock()
		for _, fn := range fns {
			go fn(h.id, append([]byte(nil), frame...))
		}
	}
	return nil
}

// Subscribe registers fn for topic.
func (h *MemHost) Subscribe(topic string, fn func(string, []byte)) (func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextSub++
	id := h.nextSub
	if h.subs[topic] == nil {
		h.subs[topic] = map[int]func(string, []byte){}
	}
	h.subs[topic][id] = fn
	return func() {
		h.mu.Lock()
		delete(h.subs[topic], id)
		h.mu.Unlock()
	}, nil
}

// SetDown takes the host off the network (down) or back: its links close
// and nobody can reach it. It simulates a crash or a partition in tests.
func (h *MemHost) SetDown(down bool) {
	h.mu.Lock()
	h.down = down
	links := make([]*memLink, 0, len(h.links))
	for _, l := range h.links {
		links = append(links, l)
	}
	h.mu.Unlock()
	if down {
		for _, l := range links {
			l.Close()
		}
	}
}

type memItem struct {
	frame []byte
	err   error
}

// memLink is one end of an in-memory link.
type memLink struct {
	owner, remote *MemHost
	in            chan memItem // frames for this end
	peerIn        chan memItem // frames for the other end
	closed        chan struct{}
	once          *sync.Once
	max           int
}

func newMemLinkPair(a, b *MemHost) (*memLink, *memLink) {
	ab, ba := make(chan memItem, 1024), make(chan memItem, 1024)
	closed, once := make(chan struct{}), &sync.Once{}
	la := &memLink{owner: a, remote: b, in: ba, peerIn: ab, closed: closed, once: once, max: a.net.MaxFrame}
	lb := &memLink{owner: b, remote: a, in: ab, peerIn: ba, closed: closed, once: once, max: a.net.MaxFrame}
	return la, lb
}

func (l *memLink) Peer() string { return l.remote.id }

func (l *memLink) Send(ctx context.Context, frame []byte) error {
	item := memItem{frame: frame} // the link takes the frame
	if len(frame) > l.max {
		head := frame[:min(len(frame), FrameHeadSize)]
		item = memItem{err: &FrameTooLargeError{Size: len(frame), Limit: l.max, Head: append([]byte(nil), head...)}}
	}
	select {
	case <-l.closed:
		return ErrLinkClosed
	default:
	}
	select { // without a wait, ctx.Done is not asked for (it may start a timer)
	case l.peerIn <- item:
		return nil
	default:
	}
	select {
	case l.peerIn <- item:
		return nil
	case <-l.closed:
		return ErrLinkClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether a frame is queued for Recv (ReadyLink).
func (l *memLink) Ready() bool { return len(l.in) > 0 }

func (l *memLink) Recv() ([]byte, error) {
	select {
	case it := <-l.in:
		return it.frame, it.err
	case <-l.closed:
		return nil, ErrLinkClosed
	}
}

func (l *memLink) Close() error {
	l.once.Do(func() {
		close(l.closed)
		for _, h := range []*MemHost{l.owner, l.remote} {
			h.mu.Lock()
			for p, x := range h.links {
				if x.closed == l.closed {
					delete(h.links, p)
				}
			}
			h.mu.Unlock()
		}
	})
	return nil
}
