package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/poll"
)

func TestLinkRoundTrip(t *testing.T) {
	for _, transport := range []string{"tcp", "quic-v1"} {
		t.Run(transport, func(t *testing.T) {
			a, b := newHost(t, testConfig()), newHost(t, testConfig())
			links := accept(a)
			introduce(t, b, a, transport)
			ctx := testCtx(t, 20*time.Second)

			lb, err := b.Link(ctx, a.Self())
			if err != nil {
				t.Fatalf("Link: %v", err)
			}
			if lb.Peer() != a.Self() {
				t.Errorf("dialer's Peer() = %s, want %s", lb.Peer(), a.Self())
			}
			if err := lb.Send(ctx, []byte("ping")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			var la actor.Link
			select {
			case la = <-links:
			case <-ctx.Done():
				t.Fatal("no link reached the handler")
			}
			if la.Peer() != b.Self() {
				t.Errorf("handler's Peer() = %s, want the dialer %s", la.Peer(), b.Self())
			}
			f, err := recvWithin(t, la, 10*time.Second)
			if err != nil || string(f) != "ping" {
				t.Fatalf("Recv = %q, %v; want ping", f, err)
			}
			if err := la.Send(ctx, []byte("pong")); err != nil {
				t.Fatalf("Send back: %v", err)
			}
			f, err = recvWithin(t, lb, 10*time.Second)
			if err != nil || string(f) != "pong" {
				t.Fatalf("Recv back = %q, %v; want pong", f, err)
			}
			// An empty frame is a frame.
			if err := lb.Send(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if f, err := recvWithin(t, la, 10*time.Second); err != nil || len(f) != 0 {
				t.Fatalf("Recv = %q, %v; want an empty frame", f, err)
			}
			// Both sides reuse the one link.
			again, err := a.Link(ctx, b.Self())
			if err != nil || again != la {
				t.Errorf("a.Link(b) = %p, %v; want the link b opened (%p)", again, err, la)
			}
			again, err = b.Link(ctx, a.Self())
			if err != nil || again != lb {
				t.Errorf("b.Link(a) again = %p, %v; want the same link %p", again, err, lb)
			}
		})
	}
}

func TestLinkOrderConcurrentSenders(t *testing.T) {
	ctx, _, _, links, lb := tcpLink(t, 60*time.Second)
	const senders, each = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				f := binary.AppendUvarint([]byte{byte(s)}, uint64(i))
				if err := lb.Send(ctx, f); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	la := <-links
	next := make([]uint64, senders)
	for n := range senders * each {
		f, err := la.Recv()
		if err != nil {
			t.Fatalf("Recv after %d frames: %v", n, err)
		}
		s := int(f[0])
		i, _ := binary.Uvarint(f[1:])
		if i != next[s] {
			t.Fatalf("sender %d: frame %d arrived, want %d", s, i, next[s])
		}
		next[s]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLinkBatchingAndBackpressure fills a link whose receiver does not
// read: the writer blocks on flow control, the queue fills and Send blocks;
// once the receiver reads, the queued frames go out many per write.
func TestLinkBatchingAndBackpressure(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 256
	a, b := newHost(t, testConfig()), newHost(t, cfg)
	links := accept(a)
	introduce(t, b, a, "tcp")
	ctx := testCtx(t, 60*time.Second)
	l, err := b.Link(ctx, a.Self())
	if err != nil {
		t.Fatal(err)
	}
	lb := l.(*link)

	const n = 40_000 // 4 MB: more than the stream's flow-control window
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			frame := bytes.Repeat([]byte{7}, 100) // Send takes the frame
			binary.BigEndian.PutUint32(frame, uint32(i))
			if err := lb.Send(ctx, frame); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	// Once the writer is stuck and the queue full, Send blocks until its
	// context ends. Probe until it does; probes that got in are skipped.
	probes := 0
	poll.Eventually(t, 30*time.Second, "Send blocks on a full queue", func() bool {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		err := lb.Send(short, []byte("probe"))
		if err == nil {
			probes++
			return false
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send on a full queue = %v, want it to block until the deadline", err)
		}
		return true
	})

	la := <-links
	for i := 0; i < n; {
		f, err := la.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if string(f) == "probe" {
			probes--
			continue
		}
		if got := binary.BigEndian.Uint32(f); got != uint32(i) || len(f) != 100 {
			t.Fatalf("frame %d: got number %d, %d bytes", i, got, len(f))
		}
		i++
	}
	for ; probes > 0; probes-- {
		if f, err := la.Recv(); err != nil || string(f) != "probe" {
			t.Fatalf("Recv = %q, %v; want the last probes", f, err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	frames, flushes := lb.frames.Load(), lb.flushes.Load()
	t.Logf("%d frames in %d flushes", frames, flushes)
	if frames < n || flushes > frames/10 {
		t.Errorf("%d frames in %d flushes: want batches of 10 or more under load", frames, flushes)
	}
}

func TestLinkOversizedFrame(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFrame = 1000
	a, b := newHost(t, cfg), newHost(t, testConfig())
	links := accept(a)
	introduce(t, b, a, "")
	ctx := testCtx(t, 20*time.Second)
	lb, err := b.Link(ctx, a.Self())
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 5000)
	copy(big, "head of a big frame")
	for _, f := range [][]byte{[]byte("before"), big, bytes.Repeat([]byte("y"), 1000), []byte("after")} {
		if err := lb.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	la := <-links
	if f, err := la.Recv(); err != nil || string(f) != "before" {
		t.Fatalf("Recv = %q, %v; want before", f, err)
	}
	_, err = la.Recv()
	var tooLarge *actor.FrameTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("Recv of 5000 bytes = %v, want *actor.FrameTooLargeError", err)
	}
	if tooLarge.Size != 5000 || tooLarge.Limit != 1000 || !bytes.Equal(tooLarge.Head, big[:actor.FrameHeadSize]) {
		t.Errorf("error = size %d limit %d head %q…, want 5000, 1000 and the first %d bytes", tooLarge.Size, tooLarge.Limit, tooLarge.Head[:20], actor.FrameHeadSize)
	}
	if f, err := la.Recv(); err != nil || len(f) != 1000 {
		t.Fatalf("Recv of exactly the limit = %d bytes, %v", len(f), err)
	}
	if f, err := la.Recv(); err != nil || string(f) != "after" {
		t.Fatalf("Recv after the oversized frame = %q, %v; want after", f, err)
	}
	// The link still works both ways.
	if err := la.Send(ctx, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if f, err := recvWithin(t, lb, 10*time.Second); err != nil || string(f) != "answer" {
		t.Fatalf("Recv = %q, %v; want answer", f, err)
	}
}

func TestLinkReestablished(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(a *Host, la actor.Link)
	}{
		{"stream reset", func(_ *Host, la actor.Link) { _ = la.(*link).s.Reset() }},
		{"link closed", func(_ *Host, la actor.Link) { _ = la.Close() }},
		{"connection closed", func(a *Host, la actor.Link) {
			_ = a.host.Network().ClosePeer(la.(*link).peer)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, a, b, links, lb := tcpLink(t, 30*time.Second)
			if err := lb.Send(ctx, []byte("one")); err != nil {
				t.Fatal(err)
			}
			la := <-links
			if f, err := la.Recv(); err != nil || string(f) != "one" {
				t.Fatalf("Recv = %q, %v", f, err)
			}

			tc.kill(a, la)
			if _, err := recvWithin(t, lb, 10*time.Second); !errors.Is(err, actor.ErrLinkClosed) {
				t.Fatalf("Recv on the dead link = %v, want ErrLinkClosed", err)
			}
			if err := lb.Send(ctx, []byte("lost")); !errors.Is(err, actor.ErrLinkClosed) {
				t.Fatalf("Send on the dead link = %v, want ErrLinkClosed", err)
			}

			lb2, err := b.Link(ctx, a.Self())
			if err != nil {
				t.Fatalf("Link after the old one died: %v", err)
			}
			if lb2 == lb {
				t.Fatal("Link returned the dead link")
			}
			if err := lb2.Send(ctx, []byte("two")); err != nil {
				t.Fatal(err)
			}
			la2 := <-links
			if f, err := recvWithin(t, la2, 10*time.Second); err != nil || string(f) != "two" {
				t.Fatalf("Recv on the new link = %q, %v", f, err)
			}
		})
	}
}

func TestLinkSingleFlight(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	var opened atomic.Int32
	a.SetLinkHandler(func(l actor.Link) {
		opened.Add(1)
		for {
			if _, err := l.Recv(); err != nil {
				return
			}
		}
	})
	introduce(t, b, a, "tcp")
	ctx := testCtx(t, 20*time.Second)
	const callers = 16
	got := make([]actor.Link, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := b.Link(ctx, a.Self())
			if err != nil {
				t.Errorf("Link: %v", err)
				return
			}
			got[i] = l
			_ = l.Send(ctx, []byte("hi"))
		}()
	}
	wg.Wait()
	for i, l := range got {
		if l != got[0] {
			t.Fatalf("call %d got link %p, call 0 got %p", i, l, got[0])
		}
	}
	poll.Eventually(t, 10*time.Second, "a link reaches the handler", func() bool { return opened.Load() > 0 })
	if n := opened.Load(); n != 1 {
		t.Errorf("%d streams opened, want 1", n)
	}
}

// TestLinkCanceledDialer checks that a caller waiting on another caller's
// dial is not failed by that caller's context.
func TestLinkCanceledDialer(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	echo(a)
	introduce(t, b, a, "tcp")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Link(canceled, a.Self()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Link with a canceled context = %v", err)
	}
	if _, err := b.Link(testCtx(t, 10*time.Second), a.Self()); err != nil {
		t.Fatalf("Link: %v", err)
	}
}

func TestLinkErrors(t *testing.T) {
	a := newHost(t, testConfig())
	ctx := testCtx(t, 10*time.Second)
	for _, id := range []string{"", "not-a-peer", a.Self()} {
		if _, err := a.Link(ctx, id); err == nil {
			t.Errorf("Link(%q) succeeded", id)
		}
	}
	// A peer whose addresses nobody knows cannot be reached (no DHT here).
	other := newHost(t, testConfig())
	if _, err := a.Link(ctx, other.Self()); err == nil {
		t.Error("Link to a peer with no known address succeeded")
	}
	// Links are refused until a handler is set.
	introduce(t, other, a, "tcp")
	l, err := other.Link(ctx, a.Self())
	if err == nil {
		_ = l.Send(ctx, []byte("x"))
		if _, err := recvWithin(t, l, 10*time.Second); !errors.Is(err, actor.ErrLinkClosed) {
			t.Errorf("Recv on a link with no handler at the other end = %v, want ErrLinkClosed", err)
		}
	}
}

func TestLinkClose(t *testing.T) {
	ctx, _, _, links, lb := tcpLink(t, 20*time.Second)
	// Frames queued before Close are delivered.
	for i := range 100 {
		if err := lb.Send(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	recvErr := make(chan error, 1)
	go func() {
		_, err := lb.Recv()
		recvErr <- err
	}()
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-recvErr; !errors.Is(err, actor.ErrLinkClosed) {
		t.Errorf("pending Recv after Close = %v, want ErrLinkClosed", err)
	}
	if err := lb.Send(ctx, []byte("late")); !errors.Is(err, actor.ErrLinkClosed) {
		t.Errorf("Send after Close = %v, want ErrLinkClosed", err)
	}
	la := <-links
	for i := range 100 {
		f, err := recvWithin(t, la, 10*time.Second)
		if err != nil || string(f) != fmt.Sprint(i) {
			t.Fatalf("frame %d = %q, %v", i, f, err)
		}
	}
	if _, err := recvWithin(t, la, 10*time.Second); !errors.Is(err, actor.ErrLinkClosed) {
		t.Errorf("Recv at the other end after Close = %v, want ErrLinkClosed", err)
	}
}

// TestLinkStreamLimit checks that a peer cannot open more than a few actor
// streams: the resource manager refuses the rest.
func TestLinkStreamLimit(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	echo(a)
	connect(t, b, a)
	ctx := testCtx(t, 20*time.Second)
	answered := 0
	for range 3 * actorStreamsInPerPeer {
		s, err := b.host.NewStream(ctx, a.host.ID(), a.proto)
		if err != nil {
			continue
		}
		defer s.Reset()
		if _, err := s.Write([]byte{1, 'x'}); err != nil {
			continue
		}
		reply := make([]byte, 2)
		if _, err := io.ReadFull(s, reply); err == nil {
			answered++
		}
	}
	if answered == 0 || answered > actorStreamsInPerPeer {
		t.Errorf("%d actor streams from one peer answered, want 1 to %d", answered, actorStreamsInPerPeer)
	}
}

// TestCloseWithStuckPeer closes a host whose link's writer is blocked on a
// peer that never reads: Close still returns.
func TestCloseWithStuckPeer(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 64
	a, b := newHost(t, testConfig()), newHost(t, cfg)
	links := accept(a)
	introduce(t, b, a, "tcp")
	ctx := testCtx(t, 60*time.Second)
	l, err := b.Link(ctx, a.Self())
	if err != nil {
		t.Fatal(err)
	}
	lb := l.(*link)
	sent := make(chan error, 1)
	go func() {
		frame := bytes.Repeat([]byte{7}, 1000)
		for range 40_000 {
			if err := lb.Send(ctx, frame); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	poll.Eventually(t, 30*time.Second, "send queue full", func() bool { return len(lb.sendq) == cap(lb.sendq) })
	<-links // never read
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; !errors.Is(err, actor.ErrLinkClosed) {
		t.Errorf("blocked Send after Close = %v, want ErrLinkClosed", err)
	}
}

// TestLinkSendCopy sends frames with SendCopy from one buffer the sender
// overwrites after every call, small ones (in the link's spare buffers,
// reused) and large ones: each arrives as it was when sent, in order.
func TestLinkSendCopy(t *testing.T) {
	ctx, _, _, links, l := tcpLink(t, 60*time.Second)
	lb := l.(actor.CopyingLink)
	sizes := []int{0, 1, 100, spareCap, spareCap + 1, 10 << 10}
	const rounds = 300
	var buf []byte
	want := func(i int) []byte {
		f := make([]byte, sizes[i%len(sizes)])
		for j := range f {
			f[j] = byte(i + j)
		}
		return f
	}
	go func() {
		for i := range rounds {
			buf = append(buf[:0], want(i)...)
			if err := lb.SendCopy(ctx, buf); err != nil {
				t.Error(err)
				return
			}
			clear(buf) // the link holds its own copy
		}
	}()
	la := <-links
	for i := range rounds {
		f, err := recvWithin(t, la, 10*time.Second)
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if !bytes.Equal(f, want(i)) {
			t.Fatalf("frame %d: %d bytes, not the %d sent", i, len(f), sizes[i%len(sizes)])
		}
	}
	if n := len(spareFrames); n == 0 {
		t.Error("no spare buffer kept for reuse")
	}
}

func TestFrameReady(t *testing.T) {
	whole := binary.AppendUvarint(nil, 300)
	whole = append(whole, make([]byte, 300)...)
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, false},
		{"half a length", whole[:1], false},
		{"length only", whole[:2], false},
		{"one byte short", whole[:len(whole)-1], false},
		{"whole frame", whole, true},
		{"whole frame and more", append(whole, 5, 1), true},
		{"empty frame", []byte{0}, true},
		{"overlong length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
	} {
		if got := frameReady(tt.b); got != tt.want {
			t.Errorf("%s: frameReady = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// tcpLink starts hosts a and b, has b open a link to a over TCP within d,
// and returns it with the links a accepts and a context that ends with
// the test or after d.
func tcpLink(t testing.TB, d time.Duration) (ctx context.Context, a, b *Host, links <-chan actor.Link, l actor.Link) {
	t.Helper()
	a, b = newHost(t, testConfig()), newHost(t, testConfig())
	links = accept(a)
	introduce(t, b, a, "tcp")
	ctx = testCtx(t, d)
	l, err := b.Link(ctx, a.Self())
	if err != nil {
		t.Fatal(err)
	}
	return ctx, a, b, links, l
}
