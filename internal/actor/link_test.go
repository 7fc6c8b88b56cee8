package actor

import (
	"context"
	"sync"
	"testing"
)

// A link dialed by one side and used at once by the other (which finds it
// through the transport before its link handler ran) has exactly one
// reader: messages arrive once and in order.
func TestLinkHasOneReader(t *testing.T) {
	for round := range 50 {
		net := NewMemNetwork()
		a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
		ordered, err := b.sys.Spawn(mustKey(t), "ordered", SpawnOptions{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []int
		ordered.AddBehavior("/test/seq", func(ctx context.Context, m *Message) (any, error) {
			var n int
			m.Decode(&n)
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
			return nil, nil
		})
		b.a.AddBehavior("/test/echo", echo)
		ctx := ctxT(t)
		// b dials a back while a's first frames are on their way.
		go b.a.Send(ctx, a.a.Handle(), "/test/nothing", nil)
		const n = 100
		for i := range n {
			if err := a.a.Send(ctx, ordered.Handle(), "/test/seq", i); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
		for i, v := range got {
			if v != i {
				t.Fatalf("round %d: message %d arrived as %d (out of order or twice): %v", round, i, v, got)
			}
		}
	}
}

// A session whose defining frame could not be sent is defined again by
// the next envelope.
func TestSessionRedefinedAfterFailedSend(t *testing.T) {
	net := NewMemNetwork()
	a, b := newNode(t, net, &testAuth{}, nil), newNode(t, net, &testAuth{}, nil)
	b.a.AddBehavior("/test/echo", echo)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// Fill nothing; a cancelled context makes Send fail before the frame
	// goes out (MemLink checks ctx when the queue is full or closed only),
	// so force the failure by closing the link first.
	w, err := a.sys.linkTo(ctxT(t), b.host.Self())
	if err != nil {
		t.Fatal(err)
	}
	w.l.Close()
	_ = a.a.Send(cancelled, b.a.Handle(), "/test/echo", "lost")
	var out string
	if err := a.a.Invoke(ctxT(t), b.a.Handle(), "/test/echo", "again", &out); err != nil || out != "again" {
		t.Fatalf("Invoke after a failed send = %q, %v", out, err)
	}
}
